//! Cluster-wide settings: Knative's `config-autoscaler` ConfigMap, keys verbatim, with
//! Knative's defaults and ranges.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::error::ConfigError;
use crate::parse;
use kiln_api::duration::format_duration;

/// Shortest stable window, and shortest scale-to-zero grace period (Knative's `WindowMin`).
pub const WINDOW_MIN: Duration = Duration::from_secs(6);
/// Longest stable window, scale-down delay and retention period (Knative's `WindowMax`).
pub const WINDOW_MAX: Duration = Duration::from_secs(3600);
/// Smallest per-replica target (Knative's `TargetMin`).
pub const TARGET_MIN: f64 = 0.01;
/// The only pod-autoscaler class this crate implements (the manifest validator's constant).
pub use kiln_api::inference_service::validate::KPA_CLASS;

/// Knative's `config-autoscaler`: the defaults every revision starts from.
///
/// Build it with [`Default`] (Knative's defaults) and change fields, then call
/// [`AutoscalerConfig::validate`]; or read it from a ConfigMap's `data` with
/// [`AutoscalerConfig::from_config_map`] or serde (both validate). Serde accepts the keys
/// verbatim (`stable-window: 60s`), values as strings (as in a ConfigMap) or as YAML/JSON
/// numbers and booleans; keys starting with `_` (such as `_example`) are ignored and any other
/// unknown key is an error.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoscalerConfig {
    /// `stable-window` (60s): the averaging window for stable-mode decisions; [6s, 1h].
    pub stable_window: Duration,
    /// `panic-window-percentage` (10): the panic window as a percentage of the stable
    /// window; [1, 100].
    pub panic_window_percentage: f64,
    /// `panic-threshold-percentage` (200): panic when the panic window wants this percentage
    /// of the ready replicas; [110, 1000].
    pub panic_threshold_percentage: f64,
    /// `max-scale-up-rate` (1000): at most this many times the ready replicas per decision;
    /// above 1.
    pub max_scale_up_rate: f64,
    /// `max-scale-down-rate` (2): at least the ready replicas divided by this per decision;
    /// above 1.
    pub max_scale_down_rate: f64,
    /// `container-concurrency-target-default` (100): per-replica concurrency when the revision
    /// sets no container concurrency and no target.
    pub container_concurrency_target_default: f64,
    /// `container-concurrency-target-percentage` (70): the target utilisation, applied to the
    /// per-replica total for both metrics; (0, 100].
    pub container_concurrency_target_percentage: f64,
    /// `requests-per-second-target-default` (200): per-replica total for the `rps` metric.
    pub requests_per_second_target_default: f64,
    /// `target-burst-capacity` (200): accepted and validated, not acted on (see the crate docs).
    pub target_burst_capacity: f64,
    /// `activator-capacity` (100): accepted and validated, not acted on (see the crate docs).
    pub activator_capacity: f64,
    /// `scale-to-zero-grace-period` (30s): how long an inactive revision keeps its last
    /// replica before it goes to zero; at least 6s.
    pub scale_to_zero_grace_period: Duration,
    /// `scale-to-zero-pod-retention-period` (0s): the minimum time the last replica stays
    /// after the revision went inactive; [0s, 1h].
    pub scale_to_zero_pod_retention_period: Duration,
    /// `scale-down-delay` (0s): decisions are the maximum over this window; [0s, 1h], whole
    /// seconds.
    pub scale_down_delay: Duration,
    /// `tick-interval` (2s): how often the controller should call `tick`; above 0.
    pub tick_interval: Duration,
    /// `initial-scale` (1): replicas a new revision gets before it has been ready once.
    pub initial_scale: u32,
    /// `allow-zero-initial-scale` (false): whether `initial-scale` may be 0.
    pub allow_zero_initial_scale: bool,
    /// `enable-scale-to-zero` (true): whether any revision may go to zero replicas.
    pub enable_scale_to_zero: bool,
    /// `activation-scale` (1): the least replicas a revision gets whenever it has demand.
    pub activation_scale: u32,
    /// `min-scale` (0): default lower bound on replicas.
    pub min_scale: u32,
    /// `max-scale` (0 = unbounded): default upper bound on replicas.
    pub max_scale: u32,
    /// `max-scale-limit` (0 = none): the largest `max-scale` (and `min-scale`) a revision may
    /// ask for.
    pub max_scale_limit: u32,
}

impl Default for AutoscalerConfig {
    fn default() -> Self {
        Self {
            stable_window: Duration::from_secs(60),
            panic_window_percentage: 10.0,
            panic_threshold_percentage: 200.0,
            max_scale_up_rate: 1000.0,
            max_scale_down_rate: 2.0,
            container_concurrency_target_default: 100.0,
            container_concurrency_target_percentage: 70.0,
            requests_per_second_target_default: 200.0,
            target_burst_capacity: 200.0,
            activator_capacity: 100.0,
            scale_to_zero_grace_period: Duration::from_secs(30),
            scale_to_zero_pod_retention_period: Duration::ZERO,
            scale_down_delay: Duration::ZERO,
            tick_interval: Duration::from_secs(2),
            initial_scale: 1,
            allow_zero_initial_scale: false,
            enable_scale_to_zero: true,
            activation_scale: 1,
            min_scale: 0,
            max_scale: 0,
            max_scale_limit: 0,
        }
    }
}

const KNOWN_KEYS: &str = "stable-window, panic-window-percentage, panic-threshold-percentage, \
    max-scale-up-rate, max-scale-down-rate, container-concurrency-target-default, \
    container-concurrency-target-percentage, requests-per-second-target-default, \
    target-burst-capacity, activator-capacity, scale-to-zero-grace-period, \
    scale-to-zero-pod-retention-period, scale-down-delay, tick-interval, initial-scale, \
    allow-zero-initial-scale, enable-scale-to-zero, activation-scale, min-scale, max-scale, \
    max-scale-limit, pod-autoscaler-class";

impl AutoscalerConfig {
    /// Reads a ConfigMap's `data` (Knative's keys, string values) on top of the defaults,
    /// then validates the result.
    pub fn from_config_map<'a, I>(data: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut config = Self::default();
        for (key, value) in data {
            config.set(key, value)?;
        }
        config.validate()?;
        Ok(config)
    }

    /// Sets one key from its text, as it would appear in the ConfigMap. Does not validate
    /// ranges; call [`AutoscalerConfig::validate`] once all keys are set.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        match key {
            "stable-window" => self.stable_window = parse::duration(key, value)?,
            "panic-window-percentage" => self.panic_window_percentage = parse::float(key, value)?,
            "panic-threshold-percentage" => {
                self.panic_threshold_percentage = parse::float(key, value)?;
            }
            "max-scale-up-rate" => self.max_scale_up_rate = parse::float(key, value)?,
            "max-scale-down-rate" => self.max_scale_down_rate = parse::float(key, value)?,
            "container-concurrency-target-default" => {
                self.container_concurrency_target_default = parse::float(key, value)?;
            }
            "container-concurrency-target-percentage" => {
                self.container_concurrency_target_percentage = parse::float(key, value)?;
            }
            "requests-per-second-target-default" => {
                self.requests_per_second_target_default = parse::float(key, value)?;
            }
            "target-burst-capacity" => self.target_burst_capacity = parse::float(key, value)?,
            "activator-capacity" => self.activator_capacity = parse::float(key, value)?,
            "scale-to-zero-grace-period" => {
                self.scale_to_zero_grace_period = parse::duration(key, value)?;
            }
            "scale-to-zero-pod-retention-period" => {
                self.scale_to_zero_pod_retention_period = parse::duration(key, value)?;
            }
            "scale-down-delay" => self.scale_down_delay = parse::duration(key, value)?,
            "tick-interval" => self.tick_interval = parse::duration(key, value)?,
            "initial-scale" => self.initial_scale = parse::count(key, value)?,
            "allow-zero-initial-scale" => {
                self.allow_zero_initial_scale = parse::boolean(key, value)?;
            }
            "enable-scale-to-zero" => self.enable_scale_to_zero = parse::boolean(key, value)?,
            "activation-scale" => self.activation_scale = parse::count(key, value)?,
            "min-scale" => self.min_scale = parse::count(key, value)?,
            "max-scale" => self.max_scale = parse::count(key, value)?,
            "max-scale-limit" => self.max_scale_limit = parse::count(key, value)?,
            "pod-autoscaler-class" => {
                if value.trim() != KPA_CLASS {
                    return Err(ConfigError::range(key, value, format!("{KPA_CLASS:?}")));
                }
            }
            _ if key.starts_with('_') => {}
            _ => {
                return Err(ConfigError::UnknownKey {
                    key: key.to_owned(),
                    hint: KNOWN_KEYS,
                });
            }
        }
        Ok(())
    }

    /// Checks every value against Knative's ranges; the error names the first key found out
    /// of range and the range it must lie in.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_stable_window("stable-window", self.stable_window)?;
        check_panic_window_percentage("panic-window-percentage", self.panic_window_percentage)?;
        check_panic_threshold_percentage(
            "panic-threshold-percentage",
            self.panic_threshold_percentage,
        )?;
        check_above_one("max-scale-up-rate", self.max_scale_up_rate)?;
        check_above_one("max-scale-down-rate", self.max_scale_down_rate)?;
        let utilisation = self.container_concurrency_target_percentage;
        if !(utilisation > 0.0 && utilisation <= 100.0) {
            return Err(ConfigError::range(
                "container-concurrency-target-percentage",
                utilisation,
                "in (0, 100]",
            ));
        }
        let target = self.container_concurrency_target_default * utilisation / 100.0;
        if target < TARGET_MIN {
            return Err(ConfigError::range(
                "container-concurrency-target-default",
                self.container_concurrency_target_default,
                format!(
                    "such that container-concurrency-target-default x \
                     container-concurrency-target-percentage is at least {TARGET_MIN}"
                ),
            ));
        }
        if self.requests_per_second_target_default * utilisation / 100.0 < TARGET_MIN {
            return Err(ConfigError::range(
                "requests-per-second-target-default",
                self.requests_per_second_target_default,
                format!(
                    "such that requests-per-second-target-default x \
                     container-concurrency-target-percentage is at least {TARGET_MIN}"
                ),
            ));
        }
        if self.target_burst_capacity < 0.0 && self.target_burst_capacity != -1.0 {
            return Err(ConfigError::range(
                "target-burst-capacity",
                self.target_burst_capacity,
                "at least 0, or -1",
            ));
        }
        if self.activator_capacity < 1.0 {
            return Err(ConfigError::range(
                "activator-capacity",
                self.activator_capacity,
                "at least 1",
            ));
        }
        if self.scale_to_zero_grace_period < WINDOW_MIN {
            return Err(ConfigError::range(
                "scale-to-zero-grace-period",
                format_duration(self.scale_to_zero_grace_period),
                format!("at least {}", format_duration(WINDOW_MIN)),
            ));
        }
        check_retention(
            "scale-to-zero-pod-retention-period",
            self.scale_to_zero_pod_retention_period,
        )?;
        check_scale_down_delay("scale-down-delay", self.scale_down_delay)?;
        if self.tick_interval.is_zero() {
            return Err(ConfigError::range("tick-interval", "0s", "above 0s"));
        }
        check_initial_scale(
            "initial-scale",
            self.initial_scale,
            self.allow_zero_initial_scale,
        )?;
        check_activation_scale("activation-scale", self.activation_scale)?;
        check_scale_bounds(
            ("min-scale", self.min_scale),
            ("max-scale", self.max_scale),
            self.max_scale_limit,
        )
    }
}

impl<'de> Deserialize<'de> for AutoscalerConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Scalar {
            Bool(bool),
            Int(i64),
            Float(f64),
            Text(String),
        }
        let data = BTreeMap::<String, Scalar>::deserialize(deserializer)?;
        let text: Vec<(String, String)> = data
            .into_iter()
            .map(|(key, value)| {
                let value = match value {
                    Scalar::Bool(b) => b.to_string(),
                    Scalar::Int(i) => i.to_string(),
                    Scalar::Float(f) => f.to_string(),
                    Scalar::Text(s) => s,
                };
                (key, value)
            })
            .collect();
        Self::from_config_map(text.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .map_err(serde::de::Error::custom)
    }
}

pub(crate) fn check_stable_window(key: &str, window: Duration) -> Result<(), ConfigError> {
    let allowed = || {
        format!(
            "in [{}, {}], in whole seconds",
            format_duration(WINDOW_MIN),
            format_duration(WINDOW_MAX)
        )
    };
    if window < WINDOW_MIN || window > WINDOW_MAX || window.subsec_nanos() != 0 {
        return Err(ConfigError::range(key, format_duration(window), allowed()));
    }
    Ok(())
}

pub(crate) fn check_panic_window_percentage(key: &str, value: f64) -> Result<(), ConfigError> {
    if !(1.0..=100.0).contains(&value) {
        return Err(ConfigError::range(key, value, "in [1, 100]"));
    }
    Ok(())
}

pub(crate) fn check_panic_threshold_percentage(key: &str, value: f64) -> Result<(), ConfigError> {
    if !(110.0..=1000.0).contains(&value) {
        return Err(ConfigError::range(key, value, "in [110, 1000]"));
    }
    Ok(())
}

fn check_above_one(key: &str, value: f64) -> Result<(), ConfigError> {
    if value <= 1.0 {
        return Err(ConfigError::range(key, value, "above 1"));
    }
    Ok(())
}

pub(crate) fn check_retention(key: &str, value: Duration) -> Result<(), ConfigError> {
    if value > WINDOW_MAX {
        let allowed = format!("in [0s, {}]", format_duration(WINDOW_MAX));
        return Err(ConfigError::range(key, format_duration(value), allowed));
    }
    Ok(())
}

pub(crate) fn check_scale_down_delay(key: &str, value: Duration) -> Result<(), ConfigError> {
    if value > WINDOW_MAX || value.subsec_nanos() != 0 {
        let allowed = format!("in [0s, {}], in whole seconds", format_duration(WINDOW_MAX));
        return Err(ConfigError::range(key, format_duration(value), allowed));
    }
    Ok(())
}

pub(crate) fn check_initial_scale(
    key: &str,
    value: u32,
    allow_zero: bool,
) -> Result<(), ConfigError> {
    if value == 0 && !allow_zero {
        return Err(ConfigError::range(
            key,
            value,
            "at least 1 (0 needs allow-zero-initial-scale: true)",
        ));
    }
    Ok(())
}

pub(crate) fn check_activation_scale(key: &str, value: u32) -> Result<(), ConfigError> {
    if value < 1 {
        return Err(ConfigError::range(key, value, "at least 1"));
    }
    Ok(())
}

pub(crate) fn check_scale_bounds(
    (min_key, min): (&str, u32),
    (max_key, max): (&str, u32),
    limit: u32,
) -> Result<(), ConfigError> {
    if limit > 0 && max > limit {
        return Err(ConfigError::range(
            max_key,
            max,
            format!("in [0, {limit}] (max-scale-limit)"),
        ));
    }
    if limit > 0 && min > limit {
        return Err(ConfigError::range(
            min_key,
            min,
            format!("in [0, {limit}] (max-scale-limit)"),
        ));
    }
    if max > 0 && min > max {
        return Err(ConfigError::range(
            min_key,
            min,
            format!("at most {max_key} ({max})"),
        ));
    }
    Ok(())
}
