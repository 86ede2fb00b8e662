//! All revisions: routes samples, ready counts and pokes to each revision's state machine,
//! and answers replica counts at every tick.

use std::collections::BTreeMap;
use std::time::Duration;

use kiln_api::load::{LoadSample, RevisionKey};

use crate::config::AutoscalerConfig;
use crate::error::ConfigError;
use crate::revision::{Outcome, RevisionAutoscaler};
use crate::spec::RevisionScaling;

/// One revision's answer at a tick or poke.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleDecision {
    /// The revision.
    pub revision: RevisionKey,
    /// What the decision did.
    pub outcome: Outcome,
}

/// The autoscaler for every revision, single-threaded and clock-free: each call takes the
/// time. Wrap it in [`crate::SharedAutoscaler`] to plug it into the router's traits.
#[derive(Debug, Clone)]
pub struct Autoscaler {
    config: AutoscalerConfig,
    revisions: BTreeMap<RevisionKey, RevisionAutoscaler>,
    decide_on_surge: bool,
}

impl Autoscaler {
    /// An autoscaler with no revisions, after checking `config`.
    pub fn new(config: AutoscalerConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            revisions: BTreeMap::new(),
            decide_on_surge: true,
        })
    }

    /// The cluster-wide settings.
    pub fn config(&self) -> &AutoscalerConfig {
        &self.config
    }

    /// How often [`Autoscaler::tick`] should run (`tick-interval`).
    pub fn tick_interval(&self) -> Duration {
        self.config.tick_interval
    }

    /// Adds a revision, created at `now`, or updates an existing one's settings (keeping its
    /// load history and state). Returns the replica count it should run now: for a new
    /// revision, its initial scale.
    pub fn upsert_revision(
        &mut self,
        revision: RevisionKey,
        scaling: &RevisionScaling,
        now: Duration,
    ) -> Result<u32, ConfigError> {
        let spec = scaling.resolve(&self.config)?;
        let state = self
            .revisions
            .entry(revision)
            .and_modify(|state| state.set_spec(spec.clone()))
            .or_insert_with(|| RevisionAutoscaler::new(spec, now));
        Ok(state.replicas())
    }

    /// Forgets a revision; returns whether it was known.
    pub fn remove_revision(&mut self, revision: &RevisionKey) -> bool {
        self.revisions.remove(revision).is_some()
    }

    /// One revision's state, if known.
    pub fn revision(&self, revision: &RevisionKey) -> Option<&RevisionAutoscaler> {
        self.revisions.get(revision)
    }

    /// Whether a sample that shows a surge decides at once (see [`Autoscaler::record`]). On by
    /// default.
    pub fn decide_on_surge(&self) -> bool {
        self.decide_on_surge
    }

    /// Turns deciding on a surging sample on or off; off is Knative's exact timing (decisions
    /// only at ticks and pokes).
    pub fn set_decide_on_surge(&mut self, on: bool) {
        self.decide_on_surge = on;
    }

    /// Records a sample. Samples for unknown revisions are dropped.
    ///
    /// When the sample shows a surge, that is the panic window wants at least the panic
    /// threshold (200%) times the replicas last asked for, the revision decides at once, at
    /// `sample.at`, and the decision is returned; Knative would wait for its next tick. Turn
    /// this off with [`Autoscaler::set_decide_on_surge`].
    pub fn record(&mut self, sample: &LoadSample) -> Option<ScaleDecision> {
        let state = self.revisions.get_mut(&sample.revision)?;
        state.record(sample);
        if !(self.decide_on_surge && state.is_surging(sample.at)) {
            return None;
        }
        Some(ScaleDecision {
            revision: sample.revision.clone(),
            outcome: state.tick(sample.at),
        })
    }

    /// Sets a revision's ready replica count; returns `false` for an unknown revision.
    pub fn set_ready(&mut self, revision: &RevisionKey, ready: u32) -> bool {
        match self.revisions.get_mut(revision) {
            Some(state) => {
                state.set_ready(ready);
                true
            }
            None => false,
        }
    }

    /// A request waits for `revision`: when it is at zero, decides at once. Returns the new
    /// decision when the poke scaled the revision from zero, `None` otherwise (unknown
    /// revision, or replicas already asked for).
    pub fn poke(&mut self, revision: &RevisionKey, now: Duration) -> Option<ScaleDecision> {
        let outcome = self.revisions.get_mut(revision)?.poke(now)?;
        Some(ScaleDecision {
            revision: revision.clone(),
            outcome,
        })
    }

    /// Decides every revision at `now`, in key order.
    pub fn tick(&mut self, now: Duration) -> Vec<ScaleDecision> {
        self.revisions
            .iter_mut()
            .map(|(revision, state)| ScaleDecision {
                revision: revision.clone(),
                outcome: state.tick(now),
            })
            .collect()
    }
}
