//! `kiln-autoscaler`: Knative's KPA decisions from observed load, with time passed in.
//!
//! No I/O and no clock of its own: load comes in as [`kiln_api::load::LoadSample`]s, ready
//! replica counts come from the backend, every call takes the time (a
//! [`std::time::Duration`] since the epoch the router's samples use), and replica counts go
//! out as return values or through a [`kiln_api::load::Scaler`].
//!
//! # Wiring
//!
//! ```
//! use std::time::Duration;
//! use kiln_api::load::{LoadSample, RevisionKey};
//! use kiln_autoscaler::{Autoscaler, AutoscalerConfig, RevisionScaling};
//!
//! let mut autoscaler = Autoscaler::new(AutoscalerConfig::default()).unwrap();
//! let key = RevisionKey::new("default", "mlp-predictor-00001");
//! let t = Duration::from_secs;
//! // A new revision asks for its initial scale (1).
//! assert_eq!(autoscaler.upsert_revision(key.clone(), &RevisionScaling::default(), t(0)).unwrap(), 1);
//! autoscaler.set_ready(&key, 1);
//! // The router reports 140 requests in flight, every second...
//! for s in 1..=10 {
//!     autoscaler.record(&LoadSample {
//!         revision: key.clone(), at: t(s), average_concurrency: 140.0, requests_per_second: 700.0,
//!     });
//! }
//! // ...and at the next tick the revision wants 140 / (100 x 70%) = 2 replicas.
//! let decisions = autoscaler.tick(t(10));
//! assert_eq!(decisions[0].outcome.replicas, 2);
//! ```
//!
//! The controller either drives an [`Autoscaler`] itself (`record`, `set_ready`, `poke`,
//! `tick(now)`) or wraps it in a [`SharedAutoscaler`], which implements the router's
//! [`kiln_api::load::LoadSink`] and [`kiln_api::load::Activation`] traits, reads a [`Clock`],
//! and sends changed counts to a [`kiln_api::load::Scaler`], from ticks, pokes and surging
//! samples alike.
//!
//! # Semantics (Knative Serving's KPA)
//!
//! - [`window`]: one value per second per revision; a window's average counts silent seconds
//!   as zero, averages over the time since the first sample until the window fills, and is
//!   zero when the last sample is a window old.
//! - [`spec`]: `total` is `containerConcurrency` when set, else
//!   `container-concurrency-target-default` (or `requests-per-second-target-default` for `rps`);
//!   a `target` annotation or KServe `scaleTarget` overrides it, capped at
//!   `containerConcurrency`; the target is `total x utilisation`.
//! - [`kpa`]: with `ready = max(1, ready replicas)`, desired is `ceil(stable / target)` and
//!   `ceil(panic / target)`, each bounded to `[floor(ready / max-scale-down-rate),
//!   ceil(max-scale-up-rate x ready)]`; panic starts when `ceil(panic / target) / ready >=
//!   threshold`, each tick over it extends it, it ends a stable window after the last such
//!   tick, and in panic the count never falls. Then the scale-down delay takes the maximum
//!   over its window.
//! - [`revision`]: scale to zero as Knative's KPA reconciler does it: a decision of zero turns
//!   an active revision (active for at least a stable window) inactive, keeps its last
//!   replica, and applies zero once `max(scale-to-zero-grace-period,
//!   scale-to-zero-pod-retention-period)` has passed since; until it has been ready at its
//!   initial scale once, a revision keeps at least `initial-scale`; min/max bound every
//!   answer; a poke at zero decides at once with at least `max(1, activation-scale)`.
//!
//! # Where Kiln differs from Knative, and why
//!
//! - **One sample per revision per second, not per pod.** The router measures the revision's
//!   whole concurrency, including requests held while it has no replica, so there is no
//!   scraping, no per-pod averaging and no activator stat merging. Two values for one second
//!   keep the larger (Knative adds the stats of one scrape); the router sends one per second.
//! - **A poke counts as demand of one** (concurrency and rps) for the second under way (the
//!   one the router's next sample will describe), in both windows. Knative's activator
//!   reports the held request's concurrency, which has the same effect: the poked revision
//!   will not go back to zero before a stable window plus the grace period has passed.
//! - **A surging sample decides at once.** When a sample shows that the panic window wants at
//!   least the panic threshold (200%) times the replicas last asked for, the revision decides
//!   at the sample's time instead of at the next tick, so a burst is answered up to one tick
//!   sooner. Without it, a step that starts just before a tick is diluted over the panic
//!   window at that tick and the fleet comes a tick later; the step trace then misses its
//!   goal (see `benches/RESULTS-autoscaler.md`). Knative's exact timing is one call away:
//!   [`Autoscaler::set_decide_on_surge`]`(false)`.
//! - **No activator mode switching**: `target-burst-capacity` and `activator-capacity` are
//!   accepted and validated but not acted on; Kiln's router always counts held requests, so
//!   there is no excess burst capacity to compute.
//! - **The grace period runs from the moment the revision goes inactive**, as Knative's
//!   conservative path does; Knative can shorten it when the activator was already in the
//!   path (proxy mode). Kiln has no separate proxy-mode clock.
//! - **Activation time-out**: Knative scales a revision that fails to activate within its
//!   progress deadline back to zero. Here an activating revision keeps its count; the
//!   controller, which sees start-up failures, owns that decision.
//! - **Reachability**: Knative ignores min-scale and the scale-down rate for revisions that
//!   receive no traffic (unreachable). Kiln has no such signal here; the controller removes
//!   revisions that are no longer routed.
//! - **Activation scale applies when the windows show demand** (`ceil(average / target) > 0`),
//!   not to a count that is above zero only because of the scale-down rate limit; otherwise a
//!   revision with `activation-scale` above 1 could never halve its way down to zero.
//! - **Initial scale** is kept until the revision has had `initial-scale` ready replicas once
//!   (Knative: until its scale target is initialised, which is the same condition).
//! - **KServe defaults**: [`RevisionScaling::with_predictor`] applies KServe's
//!   `minReplicas: 1` default when neither `minReplicas` nor `min-scale` is given, as KServe
//!   does; `scaleMetric` `cpu`/`memory` are rejected (they need the HPA).
//! - **Unknown keys are errors** (Knative ignores them), except ConfigMap keys starting with
//!   `_` such as `_example`, so that a typo cannot silently leave a default in place.
//! - The panic window is rounded **up** to whole seconds (Knative's bucket count is rounded up
//!   too), and is at least one second.

mod autoscaler;
pub mod config;
pub mod delay;
mod error;
pub mod kpa;
mod parse;
pub mod revision;
mod shared;
pub mod spec;
pub mod window;

pub use autoscaler::{Autoscaler, ScaleDecision};
pub use config::AutoscalerConfig;
pub use error::ConfigError;
pub use kiln_api::load::ScaleMetric;
pub use kpa::{Decider, Decision};
pub use revision::{Activity, Outcome, RevisionAutoscaler};
pub use shared::{Clock, SharedAutoscaler};
pub use spec::{PredictorScaling, RevisionScaling, ScalingSpec};
