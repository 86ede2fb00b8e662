//! The autoscaler behind a lock, with a clock and a [`Scaler`]: implements the router's
//! [`LoadSink`] and [`Activation`] traits.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use kiln_api::load::{Activation, LoadSample, LoadSink, RevisionKey, Scaler};

use crate::autoscaler::{Autoscaler, ScaleDecision};
use crate::error::ConfigError;
use crate::spec::RevisionScaling;

/// Where the time comes from: the same epoch as the router's [`LoadSample::at`].
pub trait Clock: Send + Sync + 'static {
    /// The time since the shared epoch.
    fn now(&self) -> Duration;
}

impl<F> Clock for F
where
    F: Fn() -> Duration + Send + Sync + 'static,
{
    fn now(&self) -> Duration {
        self()
    }
}

/// [`Autoscaler`] shared between the data plane and the controller.
///
/// - The router holds it as its [`LoadSink`] (samples) and [`Activation`] (pokes).
/// - The controller calls [`SharedAutoscaler::upsert_revision`] for each revision,
///   [`SharedAutoscaler::set_ready`] when the backend reports ready replicas, and
///   [`SharedAutoscaler::tick`] every [`Autoscaler::tick_interval`].
/// - Every changed count goes to the [`Scaler`], also from a poke or a surging
///   sample (see [`Autoscaler::record`]); the call is made under the
///   lock so that counts reach the scaler in the order they were decided. The scaler must
///   therefore return quickly (hand the count to a task, for instance).
pub struct SharedAutoscaler<S, C> {
    inner: Mutex<Autoscaler>,
    scaler: S,
    clock: C,
}

impl<S: Scaler, C: Clock> SharedAutoscaler<S, C> {
    /// Wraps `autoscaler`, sending counts to `scaler` and reading time from `clock`.
    pub fn new(autoscaler: Autoscaler, scaler: S, clock: C) -> Self {
        Self {
            inner: Mutex::new(autoscaler),
            scaler,
            clock,
        }
    }

    /// Adds or updates a revision (see [`Autoscaler::upsert_revision`]) and sends its count to
    /// the scaler.
    pub fn upsert_revision(
        &self,
        revision: RevisionKey,
        scaling: &RevisionScaling,
    ) -> Result<u32, ConfigError> {
        let now = self.clock.now();
        let mut inner = self.lock();
        let replicas = inner.upsert_revision(revision.clone(), scaling, now)?;
        self.scaler.scale(&revision, replicas);
        Ok(replicas)
    }

    /// Forgets a revision.
    pub fn remove_revision(&self, revision: &RevisionKey) -> bool {
        self.lock().remove_revision(revision)
    }

    /// Sets a revision's ready replica count.
    pub fn set_ready(&self, revision: &RevisionKey, ready: u32) -> bool {
        self.lock().set_ready(revision, ready)
    }

    /// Decides every revision now, sends the changed counts to the scaler and returns all
    /// decisions.
    pub fn tick(&self) -> Vec<ScaleDecision> {
        let now = self.clock.now();
        let mut inner = self.lock();
        let decisions = inner.tick(now);
        for d in decisions.iter().filter(|d| d.outcome.changed) {
            self.scaler.scale(&d.revision, d.outcome.replicas);
        }
        decisions
    }

    /// Runs `f` on the autoscaler under the lock (for inspection).
    pub fn with<R>(&self, f: impl FnOnce(&Autoscaler) -> R) -> R {
        f(&self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, Autoscaler> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<S: Scaler, C: Clock> LoadSink for SharedAutoscaler<S, C> {
    fn record(&self, sample: LoadSample) {
        let mut inner = self.lock();
        if let Some(d) = inner.record(&sample)
            && d.outcome.changed
        {
            self.scaler.scale(&d.revision, d.outcome.replicas);
        }
    }
}

impl<S: Scaler, C: Clock> Activation for SharedAutoscaler<S, C> {
    fn poke(&self, revision: &RevisionKey) {
        let now = self.clock.now();
        let mut inner = self.lock();
        if let Some(d) = inner.poke(revision, now)
            && d.outcome.changed
        {
            self.scaler.scale(&d.revision, d.outcome.replicas);
        }
    }
}
