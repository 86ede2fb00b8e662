//! The decider: desired replicas from windowed load, Knative's `autoscaler.Scale`, with the
//! clock passed in.

use std::time::Duration;

use crate::delay::DelayWindow;
use crate::spec::ScalingSpec;
use crate::window::Window;

/// What one decision saw and decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    /// Desired replicas, before scale-to-zero handling, initial scale and min/max bounds.
    pub desired: u32,
    /// Average of the metric over the stable window.
    pub stable_average: f64,
    /// Average of the metric over the panic window.
    pub panic_average: f64,
    /// Whether the decider is in panic mode after this decision.
    pub panicking: bool,
}

/// One revision's decider: stable and panic windows, panic state and the scale-down delay.
///
/// It implements Knative's KPA decision exactly (see the crate docs for the formulas); it
/// does not apply scale-to-zero timing, initial scale or min/max bounds, which
/// [`crate::RevisionAutoscaler`] layers on top.
#[derive(Debug, Clone)]
pub struct Decider {
    spec: ScalingSpec,
    stable: Window,
    panic: Window,
    /// The last decision that was over the panic threshold, while panicking.
    panic_time: Option<Duration>,
    /// The highest count decided during the current panic.
    max_panic_pods: u32,
    delay: Option<DelayWindow>,
}

impl Decider {
    /// A decider with empty windows.
    pub fn new(spec: ScalingSpec) -> Self {
        Self {
            stable: Window::new(spec.stable_window.as_secs()),
            panic: Window::new(spec.panic_window.as_secs()),
            delay: delay_window(spec.scale_down_delay),
            panic_time: None,
            max_panic_pods: 0,
            spec,
        }
    }

    /// The spec in force.
    pub fn spec(&self) -> &ScalingSpec {
        &self.spec
    }

    /// Replaces the spec, keeping the samples that fit the new windows; a new metric starts
    /// from empty windows (the old values measured something else).
    pub fn set_spec(&mut self, spec: ScalingSpec) {
        if spec.metric != self.spec.metric {
            self.stable = Window::new(spec.stable_window.as_secs());
            self.panic = Window::new(spec.panic_window.as_secs());
        } else if spec.stable_window != self.spec.stable_window {
            self.stable = self.stable.resized(spec.stable_window.as_secs());
        }
        if spec.metric == self.spec.metric && spec.panic_window != self.spec.panic_window {
            self.panic = self.panic.resized(spec.panic_window.as_secs());
        }
        if spec.scale_down_delay != self.spec.scale_down_delay {
            self.delay = delay_window(spec.scale_down_delay);
        }
        self.spec = spec;
    }

    /// Records the metric's value for the second that ended at `at`.
    pub fn record(&mut self, at: Duration, value: f64) {
        self.stable.record(at.as_secs(), value);
        self.panic.record(at.as_secs(), value);
    }

    /// Whether the decider is in panic mode.
    pub fn is_panicking(&self) -> bool {
        self.panic_time.is_some()
    }

    /// Whether the panic window at `now` wants at least the panic threshold times `replicas`
    /// (at least one): load has outrun what was asked for. Changes nothing.
    pub fn is_surging(&self, now: Duration, replicas: u32) -> bool {
        let replicas = f64::from(replicas.max(1));
        let panic_wanted = (self.panic.average(now.as_secs()) / self.spec.target).ceil();
        panic_wanted / replicas >= self.spec.panic_threshold
    }

    /// Decides at `now` with `ready` ready replicas.
    pub fn decide(&mut self, now: Duration, ready: u32) -> Decision {
        let spec = &self.spec;
        let ready = f64::from(ready.max(1));
        let second = now.as_secs();
        let stable_average = self.stable.average(second);
        let panic_average = self.panic.average(second);

        let max_up = (spec.max_scale_up_rate * ready).ceil();
        let max_down = (ready / spec.max_scale_down_rate).floor();
        let stable_wanted = (stable_average / spec.target).ceil();
        let panic_wanted = (panic_average / spec.target).ceil();
        let mut desired_stable = to_count(stable_wanted.max(max_down).min(max_up));
        let mut desired_panic = to_count(panic_wanted.max(max_down).min(max_up));
        // Activation scale applies when there is demand, not merely a rate-limited count.
        if spec.activation_scale > 1 {
            if stable_wanted > 0.0 {
                desired_stable = desired_stable.max(spec.activation_scale);
            }
            if panic_wanted > 0.0 {
                desired_panic = desired_panic.max(spec.activation_scale);
            }
        }

        let over_threshold = panic_wanted / ready >= spec.panic_threshold;
        if over_threshold {
            self.panic_time = Some(now);
        } else if self
            .panic_time
            .is_some_and(|since| since + spec.stable_window < now)
        {
            self.panic_time = None;
            self.max_panic_pods = 0;
        }

        let mut desired = desired_stable;
        if self.panic_time.is_some() {
            desired = desired.max(desired_panic);
            self.max_panic_pods = self.max_panic_pods.max(desired);
            desired = self.max_panic_pods;
        }
        if let Some(delay) = &mut self.delay {
            desired = delay.record(now, desired);
        }
        Decision {
            desired,
            stable_average,
            panic_average,
            panicking: self.panic_time.is_some(),
        }
    }
}

fn delay_window(delay: Duration) -> Option<DelayWindow> {
    (!delay.is_zero()).then(|| DelayWindow::new(delay))
}

/// A non-negative whole float as a replica count, saturating.
fn to_count(value: f64) -> u32 {
    if value >= f64::from(u32::MAX) {
        u32::MAX
    } else if value > 0.0 {
        value as u32
    } else {
        0
    }
}
