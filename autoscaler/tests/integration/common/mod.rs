//! A scripted clock for one revision: one sample per second, a tick every two seconds.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use kiln_api::load::{LoadSample, RevisionKey};
use kiln_autoscaler::{
    AutoscalerConfig, Outcome, RevisionAutoscaler, RevisionScaling, ScalingSpec,
};

/// Settings as (key, value) pairs, as in a ConfigMap or annotations.
pub type Pairs<'a> = &'a [(&'a str, &'a str)];

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub fn key() -> RevisionKey {
    RevisionKey::new("default", "model-predictor-00001")
}

/// A spec from `config-autoscaler` keys and `autoscaling.knative.dev/` annotations (names
/// without the prefix).
pub fn spec(config: &[(&str, &str)], annotations: &[(&str, &str)]) -> ScalingSpec {
    let config = AutoscalerConfig::from_config_map(config.iter().copied()).expect("valid config");
    let annotations: Vec<(String, String)> = annotations
        .iter()
        .map(|(k, v)| (format!("autoscaling.knative.dev/{k}"), (*v).to_owned()))
        .collect();
    RevisionScaling::from_annotations(annotations.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .expect("valid annotations")
        .resolve(&config)
        .expect("valid spec")
}

pub fn sample(at: u64, value: f64) -> LoadSample {
    LoadSample {
        revision: key(),
        at: secs(at),
        average_concurrency: value,
        requests_per_second: value,
    }
}

/// One revision driven second by second. Replicas are ready as soon as they are asked for,
/// unless `instant_ready` is false.
pub struct Script {
    pub rev: RevisionAutoscaler,
    pub now: u64,
    pub tick_every: u64,
    pub instant_ready: bool,
    pub history: Vec<(u64, Outcome)>,
}

impl Script {
    pub fn new(spec: ScalingSpec) -> Self {
        let mut rev = RevisionAutoscaler::new(spec, secs(0));
        rev.set_ready(rev.replicas());
        Self {
            rev,
            now: 0,
            tick_every: 2,
            instant_ready: true,
            history: Vec::new(),
        }
    }

    /// `seconds` seconds with a sample of `value` (concurrency and rps alike) each second.
    pub fn play(&mut self, seconds: u64, value: f64) -> &mut Self {
        for _ in 0..seconds {
            self.step(Some(value));
        }
        self
    }

    /// `seconds` seconds without any sample.
    pub fn silence(&mut self, seconds: u64) -> &mut Self {
        for _ in 0..seconds {
            self.step(None);
        }
        self
    }

    fn step(&mut self, value: Option<f64>) {
        self.now += 1;
        if let Some(v) = value {
            self.rev.record(&sample(self.now, v));
        }
        if self.now.is_multiple_of(self.tick_every) {
            let outcome = self.rev.tick(secs(self.now));
            if self.instant_ready {
                self.rev.set_ready(outcome.replicas);
            }
            self.history.push((self.now, outcome));
        }
    }

    pub fn replicas(&self) -> u32 {
        self.rev.replicas()
    }

    pub fn last(&self) -> Outcome {
        self.history.last().expect("at least one tick").1
    }

    /// The replica counts answered at each tick since time `from` (inclusive).
    pub fn counts_since(&self, from: u64) -> Vec<u32> {
        self.history
            .iter()
            .filter(|(t, _)| *t >= from)
            .map(|(_, o)| o.replicas)
            .collect()
    }

    /// The first tick time at which the answer was `replicas`.
    pub fn first_tick_at(&self, replicas: u32) -> Option<u64> {
        self.history
            .iter()
            .find(|(_, o)| o.replicas == replicas)
            .map(|(t, _)| *t)
    }
}
