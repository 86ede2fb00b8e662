//! The shared handle the router and controller hold: samples in, pokes in, counts out to a
//! Scaler, time from a Clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kiln_api::load::{Activation, LoadSample, LoadSink, RevisionKey, Scaler};
use kiln_autoscaler::{Autoscaler, AutoscalerConfig, RevisionScaling, SharedAutoscaler};

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<(String, u32)>>>);

impl Scaler for Recorder {
    fn scale(&self, revision: &RevisionKey, replicas: u32) {
        self.0
            .lock()
            .unwrap()
            .push((revision.to_string(), replicas));
    }
}

impl Recorder {
    fn take(&self) -> Vec<(String, u32)> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

struct Fixture {
    shared: SharedAutoscaler<Recorder, Box<dyn Fn() -> Duration + Send + Sync>>,
    scaled: Recorder,
    clock: Arc<AtomicU64>,
    key: RevisionKey,
}

impl Fixture {
    fn new() -> Self {
        let clock = Arc::new(AtomicU64::new(0));
        let reader = Arc::clone(&clock);
        let read: Box<dyn Fn() -> Duration + Send + Sync> =
            Box::new(move || Duration::from_secs(reader.load(Ordering::SeqCst)));
        let scaled = Recorder::default();
        let autoscaler = Autoscaler::new(AutoscalerConfig::default()).unwrap();
        Self {
            shared: SharedAutoscaler::new(autoscaler, scaled.clone(), read),
            scaled,
            clock,
            key: RevisionKey::new("default", "mlp-predictor-00001"),
        }
    }

    fn at(&self, secs: u64) -> &Self {
        self.clock.store(secs, Ordering::SeqCst);
        self
    }
}

#[test]
fn a_new_revision_is_sent_its_initial_scale() {
    let f = Fixture::new();
    let scaling = RevisionScaling {
        initial_scale: Some(2),
        ..Default::default()
    };
    assert_eq!(
        f.shared.upsert_revision(f.key.clone(), &scaling).unwrap(),
        2
    );
    assert_eq!(f.scaled.take(), vec![(f.key.to_string(), 2)]);
}

#[test]
fn ticks_send_only_changed_counts() {
    let f = Fixture::new();
    let three = RevisionScaling {
        initial_scale: Some(3),
        ..Default::default()
    };
    f.shared.upsert_revision(f.key.clone(), &three).unwrap();
    f.shared.set_ready(&f.key, 3);
    f.scaled.take();
    for s in 1..=10 {
        f.shared.record(LoadSample {
            revision: f.key.clone(),
            at: Duration::from_secs(s),
            average_concurrency: 140.0,
            requests_per_second: 0.0,
        });
    }
    assert_eq!(
        f.scaled.take(),
        vec![],
        "2 wanted of 3: no surge, samples decide nothing"
    );
    assert_eq!(f.at(10).shared.tick()[0].outcome.replicas, 2);
    f.shared.set_ready(&f.key, 2);
    assert_eq!(f.at(12).shared.tick()[0].outcome.replicas, 2);
    assert_eq!(
        f.scaled.take(),
        vec![(f.key.to_string(), 2)],
        "the second tick changed nothing"
    );
}

#[test]
fn a_poke_at_zero_reaches_the_scaler_without_a_tick() {
    let f = Fixture::new();
    f.shared
        .upsert_revision(f.key.clone(), &RevisionScaling::default())
        .unwrap();
    f.shared.set_ready(&f.key, 1);
    for s in (2..=100).step_by(2) {
        f.at(s).shared.tick();
    }
    f.shared.set_ready(&f.key, 0);
    assert_eq!(
        f.scaled.take().last(),
        Some(&(f.key.to_string(), 0)),
        "idle: at zero"
    );

    f.at(101).shared.poke(&f.key);
    assert_eq!(f.scaled.take(), vec![(f.key.to_string(), 1)]);
    f.shared.poke(&f.key);
    assert_eq!(
        f.scaled.take(),
        vec![],
        "already scaling: nothing more to send"
    );
}

#[test]
fn samples_and_pokes_for_unknown_revisions_are_ignored() {
    let f = Fixture::new();
    let stranger = RevisionKey::new("default", "nobody");
    f.shared.poke(&stranger);
    f.shared.record(LoadSample {
        revision: stranger.clone(),
        at: Duration::from_secs(1),
        average_concurrency: 5.0,
        requests_per_second: 5.0,
    });
    assert!(f.shared.with(|a| a.revision(&stranger).is_none()));
    assert_eq!(f.scaled.take(), vec![]);
}

#[test]
fn a_surging_sample_reaches_the_scaler_without_a_tick() {
    let f = Fixture::new();
    f.shared
        .upsert_revision(f.key.clone(), &RevisionScaling::default())
        .unwrap();
    f.shared.set_ready(&f.key, 1);
    f.scaled.take();
    f.shared.record(LoadSample {
        revision: f.key.clone(),
        at: Duration::from_secs(1),
        average_concurrency: 700.0,
        requests_per_second: 0.0,
    });
    assert_eq!(f.scaled.take(), vec![(f.key.to_string(), 10)]);
}

#[test]
fn the_handle_serves_as_the_routers_load_sink_and_activation() {
    let f = Fixture::new();
    let shared = Arc::new(f.shared);
    let sink: Arc<dyn LoadSink> = shared.clone();
    let activation: Arc<dyn Activation> = shared.clone();
    let scaling = RevisionScaling {
        initial_scale: Some(0),
        ..Default::default()
    };
    let err = shared.upsert_revision(f.key.clone(), &scaling).unwrap_err();
    assert_eq!(
        err.key(),
        "autoscaling.knative.dev/initial-scale",
        "zero needs allowing"
    );
    shared
        .upsert_revision(f.key.clone(), &RevisionScaling::default())
        .unwrap();
    f.scaled.take();
    sink.record(LoadSample {
        revision: f.key.clone(),
        at: Duration::from_secs(1),
        average_concurrency: 0.0,
        requests_per_second: 0.0,
    });
    activation.poke(&f.key);
    assert_eq!(f.scaled.take(), vec![], "one replica already asked for");
}

#[test]
fn a_scale_down_undone_within_a_tick_never_reaches_the_scaler() {
    let f = Fixture::new();
    let scaling = |max: u32| RevisionScaling {
        initial_scale: Some(2),
        max_scale: Some(max),
        ..Default::default()
    };
    f.shared
        .upsert_revision(f.key.clone(), &scaling(3))
        .unwrap();
    f.shared.set_ready(&f.key, 2);
    assert_eq!(f.scaled.take(), vec![(f.key.to_string(), 2)]);

    // A decision for 1, then at once one for 2 again: the backend hears of neither.
    f.shared
        .upsert_revision(f.key.clone(), &scaling(1))
        .unwrap();
    f.shared
        .upsert_revision(f.key.clone(), &scaling(3))
        .unwrap();
    assert_eq!(f.scaled.take(), vec![], "the scale-down was coalesced away");

    // A scale-down that holds for a whole tick is sent.
    f.shared
        .upsert_revision(f.key.clone(), &scaling(1))
        .unwrap();
    f.at(2).shared.tick();
    assert_eq!(f.scaled.take(), vec![], "not a whole tick yet");
    f.at(4).shared.tick();
    assert_eq!(f.scaled.take(), vec![(f.key.to_string(), 1)]);

    // A scale-up is never held.
    f.shared
        .upsert_revision(f.key.clone(), &scaling(3))
        .unwrap();
    f.shared.set_ready(&f.key, 1);
    f.shared.poke(&f.key);
    f.shared.record(LoadSample {
        revision: f.key.clone(),
        at: Duration::from_secs(5),
        average_concurrency: 1000.0,
        requests_per_second: 0.0,
    });
    assert_eq!(f.scaled.take(), vec![(f.key.to_string(), 3)]);
}
