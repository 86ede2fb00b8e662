//! Per-revision settings: Knative's `autoscaling.knative.dev/*` annotations and KServe's
//! predictor fields on top of [`AutoscalerConfig`], resolved into one [`ScalingSpec`].

use std::time::Duration;

use crate::config::{
    AutoscalerConfig, KPA_CLASS, TARGET_MIN, check_activation_scale, check_initial_scale,
    check_panic_threshold_percentage, check_panic_window_percentage, check_retention,
    check_scale_bounds, check_scale_down_delay, check_stable_window,
};
use crate::error::ConfigError;
use crate::parse;

/// The prefix of Knative's autoscaling annotations.
pub use kiln_api::inference_service::validate::AUTOSCALING_PREFIX as ANNOTATION_PREFIX;

pub use kiln_api::load::{CONTAINER_CONCURRENCY_MAX, ScaleMetric};

/// One revision's own settings; `None` takes the value from [`AutoscalerConfig`].
///
/// Fill it from annotations with [`RevisionScaling::from_annotations`], from KServe's
/// predictor fields with [`RevisionScaling::with_predictor`], or directly.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RevisionScaling {
    /// The revision's `containerConcurrency` (0 or `None`: unlimited); [0, 1000].
    pub container_concurrency: Option<u32>,
    /// `autoscaling.knative.dev/metric`: `concurrency` or `rps`.
    pub metric: Option<ScaleMetric>,
    /// `autoscaling.knative.dev/target`: per-replica total (before utilisation); at least 0.01.
    pub target: Option<f64>,
    /// `autoscaling.knative.dev/target-utilization-percentage`; [1, 100].
    pub target_utilization_percentage: Option<f64>,
    /// `autoscaling.knative.dev/window`: the stable window; [6s, 1h].
    pub window: Option<Duration>,
    /// `autoscaling.knative.dev/panic-window-percentage`; [1, 100].
    pub panic_window_percentage: Option<f64>,
    /// `autoscaling.knative.dev/panic-threshold-percentage`; [110, 1000].
    pub panic_threshold_percentage: Option<f64>,
    /// `autoscaling.knative.dev/min-scale`.
    pub min_scale: Option<u32>,
    /// `autoscaling.knative.dev/max-scale` (0: unbounded).
    pub max_scale: Option<u32>,
    /// `autoscaling.knative.dev/initial-scale`.
    pub initial_scale: Option<u32>,
    /// `autoscaling.knative.dev/scale-down-delay`; [0s, 1h].
    pub scale_down_delay: Option<Duration>,
    /// `autoscaling.knative.dev/activation-scale`; at least 1.
    pub activation_scale: Option<u32>,
    /// `autoscaling.knative.dev/scale-to-zero-pod-retention-period`; [0s, 1h].
    pub scale_to_zero_pod_retention_period: Option<Duration>,
}

/// KServe's predictor fields that drive scaling, as plain values.
///
/// KServe turns these into the annotations above; [`RevisionScaling::with_predictor`] does the
/// same, including KServe's default of `minReplicas: 1`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PredictorScaling {
    /// `minReplicas` (KServe's default 1; 0 allows scale to zero).
    pub min_replicas: Option<u32>,
    /// `maxReplicas` (0: unbounded).
    pub max_replicas: Option<u32>,
    /// `scaleTarget`: per-replica target of the scale metric.
    pub scale_target: Option<u32>,
    /// `scaleMetric`: `concurrency` or `rps` (`cpu` and `memory` need the HPA, which Kiln does
    /// not have).
    pub scale_metric: Option<String>,
    /// `containerConcurrency`: hard per-replica limit (0: unlimited).
    pub container_concurrency: Option<u32>,
}

/// Annotations Knative defines that this autoscaler accepts and does not act on.
const IGNORED_ANNOTATIONS: [&str; 2] = ["target-burst-capacity", "window-algorithm"];

impl RevisionScaling {
    /// Reads the `autoscaling.knative.dev/*` annotations among `annotations`; others are
    /// ignored. Values are validated with Knative's ranges; an unknown `autoscaling.knative.dev/`
    /// key is an error.
    pub fn from_annotations<'a, I>(annotations: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut out = Self::default();
        for (key, value) in annotations {
            let Some(name) = key.strip_prefix(ANNOTATION_PREFIX) else {
                continue;
            };
            match name {
                "target" => out.target = Some(parse::float(key, value)?),
                "target-utilization-percentage" => {
                    out.target_utilization_percentage = Some(parse::float(key, value)?);
                }
                "metric" => {
                    let metric = value.parse().map_err(|_| {
                        ConfigError::range(key, value, "concurrency or rps (the KPA's metrics)")
                    })?;
                    out.metric = Some(metric);
                }
                "window" => out.window = Some(parse::duration(key, value)?),
                "panic-window-percentage" => {
                    out.panic_window_percentage = Some(parse::float(key, value)?);
                }
                "panic-threshold-percentage" => {
                    out.panic_threshold_percentage = Some(parse::float(key, value)?);
                }
                "min-scale" | "minScale" => out.min_scale = Some(parse::count(key, value)?),
                "max-scale" | "maxScale" => out.max_scale = Some(parse::count(key, value)?),
                "initial-scale" => out.initial_scale = Some(parse::count(key, value)?),
                "scale-down-delay" => out.scale_down_delay = Some(parse::duration(key, value)?),
                "activation-scale" => out.activation_scale = Some(parse::count(key, value)?),
                "scale-to-zero-pod-retention-period" => {
                    out.scale_to_zero_pod_retention_period = Some(parse::duration(key, value)?);
                }
                "class" => {
                    if value.trim() != KPA_CLASS {
                        return Err(ConfigError::range(key, value, format!("{KPA_CLASS:?}")));
                    }
                }
                _ if IGNORED_ANNOTATIONS.contains(&name) => {}
                _ => {
                    return Err(ConfigError::UnknownKey {
                        key: key.to_owned(),
                        hint: "known: target, target-utilization-percentage, metric, window, \
                               panic-window-percentage, panic-threshold-percentage, min-scale, \
                               max-scale, initial-scale, scale-down-delay, activation-scale, \
                               scale-to-zero-pod-retention-period, class",
                    });
                }
            }
        }
        Ok(out)
    }

    /// Applies KServe's predictor fields on top, as KServe does: a field that is set wins over
    /// the annotation, and with neither `minReplicas` nor a `min-scale` annotation the minimum is
    /// KServe's default, 1.
    pub fn with_predictor(mut self, predictor: &PredictorScaling) -> Result<Self, ConfigError> {
        if let Some(min) = predictor.min_replicas {
            self.min_scale = Some(min);
        } else if self.min_scale.is_none() {
            self.min_scale = Some(1);
        }
        if let Some(max) = predictor.max_replicas {
            self.max_scale = Some(max);
        }
        if let Some(metric) = &predictor.scale_metric {
            let parsed = metric.parse().map_err(|_| {
                ConfigError::range(
                    "scaleMetric",
                    metric,
                    "concurrency or rps (cpu and memory need the HPA)",
                )
            })?;
            self.metric = Some(parsed);
        }
        if let Some(target) = predictor.scale_target {
            if target == 0 {
                return Err(ConfigError::range("scaleTarget", target, "at least 1"));
            }
            self.target = Some(f64::from(target));
        }
        if let Some(cc) = predictor.container_concurrency {
            self.container_concurrency = Some(cc);
        }
        if let (Some(min), Some(max)) = (predictor.min_replicas, predictor.max_replicas)
            && max > 0
            && min > max
        {
            return Err(ConfigError::range(
                "minReplicas",
                min,
                format!("at most maxReplicas ({max})"),
            ));
        }
        Ok(self)
    }

    /// Resolves these settings against the cluster defaults, checking each against Knative's
    /// ranges. Errors name the annotation (or `containerConcurrency`) at fault.
    pub fn resolve(&self, config: &AutoscalerConfig) -> Result<ScalingSpec, ConfigError> {
        let key = |name: &str| format!("{ANNOTATION_PREFIX}{name}");
        let container_concurrency = self.container_concurrency.unwrap_or(0);
        if container_concurrency > CONTAINER_CONCURRENCY_MAX {
            return Err(ConfigError::range(
                "containerConcurrency",
                container_concurrency,
                format!("in [0, {CONTAINER_CONCURRENCY_MAX}]"),
            ));
        }
        let metric = self.metric.unwrap_or_default();
        let mut total = match metric {
            ScaleMetric::Concurrency if container_concurrency > 0 => {
                f64::from(container_concurrency)
            }
            ScaleMetric::Concurrency => config.container_concurrency_target_default,
            ScaleMetric::Rps => config.requests_per_second_target_default,
        };
        if let Some(target) = self.target {
            if target < TARGET_MIN {
                return Err(ConfigError::range(
                    &key("target"),
                    target,
                    format!("at least {TARGET_MIN}"),
                ));
            }
            total = target;
            if metric == ScaleMetric::Concurrency && container_concurrency > 0 {
                total = total.min(f64::from(container_concurrency));
            }
        }
        let utilisation = match self.target_utilization_percentage {
            Some(p) if !(1.0..=100.0).contains(&p) => {
                return Err(ConfigError::range(
                    &key("target-utilization-percentage"),
                    p,
                    "in [1, 100]",
                ));
            }
            Some(p) => p,
            None => config.container_concurrency_target_percentage,
        } / 100.0;

        let stable_window = match self.window {
            Some(w) => {
                check_stable_window(&key("window"), w)?;
                w
            }
            None => config.stable_window,
        };
        let panic_window_percentage = match self.panic_window_percentage {
            Some(p) => {
                check_panic_window_percentage(&key("panic-window-percentage"), p)?;
                p
            }
            None => config.panic_window_percentage,
        };
        let panic_threshold_percentage = match self.panic_threshold_percentage {
            Some(p) => {
                check_panic_threshold_percentage(&key("panic-threshold-percentage"), p)?;
                p
            }
            None => config.panic_threshold_percentage,
        };
        let scale_down_delay = match self.scale_down_delay {
            Some(d) => {
                check_scale_down_delay(&key("scale-down-delay"), d)?;
                d
            }
            None => config.scale_down_delay,
        };
        let retention = match self.scale_to_zero_pod_retention_period {
            Some(d) => {
                check_retention(&key("scale-to-zero-pod-retention-period"), d)?;
                d
            }
            None => config.scale_to_zero_pod_retention_period,
        };
        let initial_scale = match self.initial_scale {
            Some(n) => {
                check_initial_scale(&key("initial-scale"), n, config.allow_zero_initial_scale)?;
                n
            }
            None => config.initial_scale,
        };
        let activation_scale = match self.activation_scale {
            Some(n) => {
                check_activation_scale(&key("activation-scale"), n)?;
                n
            }
            None => config.activation_scale,
        };
        let min_scale = self.min_scale.unwrap_or(config.min_scale);
        let max_scale = self.max_scale.unwrap_or(config.max_scale);
        check_scale_bounds(
            (&key("min-scale"), min_scale),
            (&key("max-scale"), max_scale),
            config.max_scale_limit,
        )?;

        Ok(ScalingSpec {
            metric,
            total,
            target: (total * utilisation).max(TARGET_MIN),
            stable_window,
            panic_window: panic_window(stable_window, panic_window_percentage),
            panic_threshold: panic_threshold_percentage / 100.0,
            max_scale_up_rate: config.max_scale_up_rate,
            max_scale_down_rate: config.max_scale_down_rate,
            scale_down_delay,
            min_scale,
            max_scale,
            initial_scale,
            activation_scale,
            enable_scale_to_zero: config.enable_scale_to_zero,
            scale_to_zero_grace_period: config.scale_to_zero_grace_period,
            scale_to_zero_pod_retention_period: retention,
        })
    }
}

/// The panic window: `stable x percentage / 100`, rounded up to whole seconds, at least 1 s.
fn panic_window(stable: Duration, percentage: f64) -> Duration {
    let seconds = (stable.as_secs_f64() * percentage / 100.0).ceil().max(1.0);
    Duration::from_secs_f64(seconds)
}

/// Everything the decider needs for one revision, resolved and validated.
///
/// Made by [`RevisionScaling::resolve`]; [`ScalingSpec::default`] is Knative's defaults for a
/// revision with no settings of its own.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingSpec {
    /// The metric scaled on.
    pub metric: ScaleMetric,
    /// Per-replica total of the metric (containerConcurrency, target or default).
    pub total: f64,
    /// Per-replica target: `total x utilisation`, at least 0.01.
    pub target: f64,
    /// Stable window.
    pub stable_window: Duration,
    /// Panic window (whole seconds, at least 1 s).
    pub panic_window: Duration,
    /// Panic threshold as a ratio of desired to ready replicas (2.0 for 200%).
    pub panic_threshold: f64,
    /// Most growth per decision, as a ratio of ready replicas.
    pub max_scale_up_rate: f64,
    /// Most shrinkage per decision, as a divisor of ready replicas.
    pub max_scale_down_rate: f64,
    /// Decisions are the maximum over this window.
    pub scale_down_delay: Duration,
    /// Lower bound on replicas.
    pub min_scale: u32,
    /// Upper bound on replicas (0: unbounded).
    pub max_scale: u32,
    /// Replicas before the revision has been ready once.
    pub initial_scale: u32,
    /// Least replicas whenever there is demand.
    pub activation_scale: u32,
    /// Whether the revision may go to zero at all.
    pub enable_scale_to_zero: bool,
    /// Time an inactive revision keeps its last replica.
    pub scale_to_zero_grace_period: Duration,
    /// Least time the last replica stays after the revision went inactive.
    pub scale_to_zero_pod_retention_period: Duration,
}

impl Default for ScalingSpec {
    fn default() -> Self {
        RevisionScaling::default()
            .resolve(&AutoscalerConfig::default())
            .expect("Knative's defaults are valid")
    }
}

impl ScalingSpec {
    /// `n` bounded to `[min_scale, max_scale]` (no upper bound when `max_scale` is 0).
    pub fn bound(&self, n: u32) -> u32 {
        let n = n.max(self.min_scale);
        if self.max_scale > 0 {
            n.min(self.max_scale)
        } else {
            n
        }
    }
}
