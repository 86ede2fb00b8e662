//! The autoscaler behind a lock, with a clock and a [`Scaler`]: implements the router's
//! [`LoadSink`] and [`Activation`] traits.

use std::collections::HashMap;
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
/// - Decisions are coalesced so that the scaler never stops a replica only to start a fresh
///   one a moment later: a scale-up (a poke from zero included) is sent at once, but a
///   scale-down is held until it has been the decision for a whole tick interval with no
///   scale-up meanwhile; a scale-up in that time cancels it.
pub struct SharedAutoscaler<S, C> {
    inner: Mutex<State>,
    scaler: S,
    clock: C,
}

/// The autoscaler and what the scaler has been told.
struct State {
    autoscaler: Autoscaler,
    /// The count last sent per revision.
    sent: HashMap<RevisionKey, u32>,
    /// A scale-down not sent yet: the tick from which it may be.
    held: HashMap<RevisionKey, u64>,
    /// Ticks so far.
    ticks: u64,
}

impl<S: Scaler, C: Clock> SharedAutoscaler<S, C> {
    /// Wraps `autoscaler`, sending counts to `scaler` and reading time from `clock`.
    pub fn new(autoscaler: Autoscaler, scaler: S, clock: C) -> Self {
        Self {
            inner: Mutex::new(State {
                autoscaler,
                sent: HashMap::new(),
                held: HashMap::new(),
                ticks: 0,
            }),
            scaler,
            clock,
        }
    }

    /// Tells the scaler `replicas` for `revision` under the coalescing rule (see the type's
    /// docs). `at_tick`: the decision is a tick's (a scale-down decided by tick n may be sent
    /// from tick n+1 on; one decided between ticks n and n+1, from tick n+2: a whole interval
    /// either way).
    fn send(&self, state: &mut State, revision: &RevisionKey, replicas: u32, at_tick: bool) {
        let last = state.sent.get(revision).copied();
        if last.is_some_and(|last| replicas < last) {
            let release = state.ticks + if at_tick { 1 } else { 2 };
            let release = *state.held.entry(revision.clone()).or_insert(release);
            if state.ticks < release {
                return; // held: a scale-up within a tick would undo it
            }
        }
        state.held.remove(revision);
        if last != Some(replicas) {
            state.sent.insert(revision.clone(), replicas);
            self.scaler.scale(revision, replicas);
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
        let mut state = self.lock();
        let replicas = state
            .autoscaler
            .upsert_revision(revision.clone(), scaling, now)?;
        self.send(&mut state, &revision, replicas, false);
        Ok(replicas)
    }

    /// Forgets a revision.
    pub fn remove_revision(&self, revision: &RevisionKey) -> bool {
        let mut state = self.lock();
        state.sent.remove(revision);
        state.held.remove(revision);
        state.autoscaler.remove_revision(revision)
    }

    /// Sets a revision's ready replica count.
    pub fn set_ready(&self, revision: &RevisionKey, ready: u32) -> bool {
        self.lock().autoscaler.set_ready(revision, ready)
    }

    /// Decides every revision now, sends the counts that differ from what the scaler was
    /// last told (scale-downs once held for a tick) and returns all decisions.
    pub fn tick(&self) -> Vec<ScaleDecision> {
        let now = self.clock.now();
        let mut state = self.lock();
        let decisions = state.autoscaler.tick(now);
        state.ticks += 1;
        for d in &decisions {
            self.send(&mut state, &d.revision, d.outcome.replicas, true);
        }
        decisions
    }

    /// Runs `f` on the autoscaler under the lock (for inspection).
    pub fn with<R>(&self, f: impl FnOnce(&Autoscaler) -> R) -> R {
        f(&self.lock().autoscaler)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<S: Scaler, C: Clock> LoadSink for SharedAutoscaler<S, C> {
    fn record(&self, sample: LoadSample) {
        let mut state = self.lock();
        if let Some(d) = state.autoscaler.record(&sample)
            && d.outcome.changed
        {
            self.send(&mut state, &d.revision, d.outcome.replicas, false);
        }
    }
}

impl<S: Scaler, C: Clock> Activation for SharedAutoscaler<S, C> {
    fn poke(&self, revision: &RevisionKey) {
        let now = self.clock.now();
        let mut state = self.lock();
        if let Some(d) = state.autoscaler.poke(revision, now)
            && d.outcome.changed
        {
            self.send(&mut state, &d.revision, d.outcome.replicas, false);
        }
    }
}
