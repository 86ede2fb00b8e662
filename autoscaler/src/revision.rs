//! One revision's state machine: the decider plus Knative's scale-to-zero timing, initial
//! scale, activation on a poke and min/max bounds.

use std::time::Duration;

use kiln_api::load::LoadSample;

use crate::kpa::{Decider, Decision};
use crate::spec::{ScaleMetric, ScalingSpec};

/// Where a revision stands with respect to zero (Knative's PodAutoscaler `Active` condition).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// Replicas are wanted but none is ready yet.
    Activating,
    /// Ready replicas serve the revision; `since` is when it became active.
    Active {
        /// When the revision became active.
        since: Duration,
    },
    /// The decider wanted zero; `since` is when the revision went inactive. It reaches zero
    /// once the grace and retention periods have passed since then.
    Inactive {
        /// When the revision went inactive.
        since: Duration,
    },
}

/// What a decision did to one revision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// The replica count the backend should run now.
    pub replicas: u32,
    /// Whether `replicas` differs from the previous answer.
    pub changed: bool,
    /// The decider's view, before scale-to-zero timing and bounds.
    pub decision: Decision,
    /// The revision's activity after the decision.
    pub activity: Activity,
}

/// One revision: fed samples and ready counts, asked for replica counts at each tick or poke.
#[derive(Debug, Clone)]
pub struct RevisionAutoscaler {
    decider: Decider,
    ready: u32,
    replicas: u32,
    activity: Activity,
    /// Whether the revision has had `initial_scale` ready replicas once.
    initialized: bool,
}

impl RevisionAutoscaler {
    /// A new revision created at `now`: it asks for the initial scale (bounded by min/max).
    pub fn new(spec: ScalingSpec, now: Duration) -> Self {
        let initial = spec.bound(spec.initial_scale);
        let activity = if initial == 0 {
            Activity::Inactive { since: now }
        } else {
            Activity::Activating
        };
        Self {
            initialized: spec.initial_scale == 0,
            decider: Decider::new(spec),
            ready: 0,
            replicas: initial,
            activity,
        }
    }

    /// The spec in force.
    pub fn spec(&self) -> &ScalingSpec {
        self.decider.spec()
    }

    /// Replaces the spec, keeping the load history.
    pub fn set_spec(&mut self, spec: ScalingSpec) {
        self.decider.set_spec(spec);
    }

    /// The replica count last answered.
    pub fn replicas(&self) -> u32 {
        self.replicas
    }

    /// The ready replica count last reported.
    pub fn ready(&self) -> u32 {
        self.ready
    }

    /// Where the revision stands with respect to zero.
    pub fn activity(&self) -> Activity {
        self.activity
    }

    /// Whether the decider is in panic mode.
    pub fn is_panicking(&self) -> bool {
        self.decider.is_panicking()
    }

    /// Records one second of load; the spec's metric picks the value.
    pub fn record(&mut self, sample: &LoadSample) {
        let value = match self.spec().metric {
            ScaleMetric::Concurrency => sample.average_concurrency,
            ScaleMetric::Rps => sample.requests_per_second,
        };
        self.decider.record(sample.at, value);
    }

    /// Whether the panic window wants at least the panic threshold times the replicas last
    /// asked for (see [`Decider::is_surging`]).
    pub fn is_surging(&self, now: Duration) -> bool {
        self.decider.is_surging(now, self.replicas)
    }

    /// Sets how many replicas are ready (serving), as the backend reports it.
    pub fn set_ready(&mut self, ready: u32) {
        self.ready = ready;
    }

    /// The regular decision, made every tick.
    pub fn tick(&mut self, now: Duration) -> Outcome {
        self.update_activity(now);
        let decision = self.decider.decide(now, self.ready);
        let wanted = self.scale_to_zero(now, decision.desired);
        self.settle(wanted, decision)
    }

    /// A request waits for this revision: counts as demand of one for the second under way
    /// (the one the router's next sample, stamped at its end, will describe) and, when the
    /// revision is at zero, decides at once, with at least `max(1, activation-scale)` replicas.
    /// Returns `None` when the revision already has replicas (or is getting them).
    pub fn poke(&mut self, now: Duration) -> Option<Outcome> {
        self.decider
            .record(Duration::from_secs(now.as_secs() + 1), 1.0);
        if self.replicas > 0 {
            return None;
        }
        self.update_activity(now);
        let decision = self.decider.decide(now, self.ready);
        let spec = self.spec();
        let wanted = decision.desired.max(spec.activation_scale).max(1);
        self.activity = Activity::Activating;
        Some(self.settle(Some(wanted), decision))
    }

    /// Knative's `computeActiveCondition`, reduced to what scale to zero needs: a revision
    /// with enough ready replicas is active.
    fn update_activity(&mut self, now: Duration) {
        let needed = self.spec().min_scale.max(1);
        if self.activity == Activity::Activating && self.ready >= needed {
            self.activity = Activity::Active { since: now };
        }
        if !self.initialized && self.ready >= self.spec().initial_scale {
            self.initialized = true;
        }
    }

    /// Knative's `handleScaleToZero`: `None` keeps the current count.
    fn scale_to_zero(&mut self, now: Duration, desired: u32) -> Option<u32> {
        let spec = self.decider.spec();
        if desired > 0 {
            if matches!(self.activity, Activity::Inactive { .. }) {
                self.activity = Activity::Activating;
            }
            return Some(desired);
        }
        if !spec.enable_scale_to_zero {
            return Some(1);
        }
        if spec.min_scale > 0 {
            return Some(0);
        }
        match self.activity {
            Activity::Activating => None,
            Activity::Active { since } if now.saturating_sub(since) >= spec.stable_window => {
                self.activity = Activity::Inactive { since: now };
                None
            }
            Activity::Active { .. } => Some(1),
            Activity::Inactive { since } => {
                let wait = spec
                    .scale_to_zero_grace_period
                    .max(spec.scale_to_zero_pod_retention_period);
                (now.saturating_sub(since) >= wait).then_some(0)
            }
        }
    }

    /// Initial scale and bounds, then remembers the answer.
    fn settle(&mut self, wanted: Option<u32>, decision: Decision) -> Outcome {
        let spec = self.decider.spec();
        let mut replicas = wanted.unwrap_or(self.replicas);
        if !self.initialized {
            replicas = replicas.max(spec.initial_scale);
        }
        let replicas = spec.bound(replicas);
        let changed = replicas != self.replicas;
        self.replicas = replicas;
        Outcome {
            replicas,
            changed,
            decision,
            activity: self.activity,
        }
    }
}
