//! The set of revisions: adding, updating and removing them.

use std::time::Duration;

use kiln_api::load::{LoadSample, RevisionKey};
use kiln_autoscaler::{Autoscaler, AutoscalerConfig, RevisionScaling, ScaleMetric};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn sample(key: &RevisionKey, at: u64, concurrency: f64, rps: f64) -> LoadSample {
    LoadSample {
        revision: key.clone(),
        at: secs(at),
        average_concurrency: concurrency,
        requests_per_second: rps,
    }
}

/// One revision at two ready replicas with 60 s of concurrency 140 (2 x target 70).
fn busy() -> (Autoscaler, RevisionKey) {
    let mut a = Autoscaler::new(AutoscalerConfig::default()).unwrap();
    let key = RevisionKey::new("default", "m-predictor-00001");
    let two = RevisionScaling {
        initial_scale: Some(2),
        ..Default::default()
    };
    assert_eq!(a.upsert_revision(key.clone(), &two, secs(0)).unwrap(), 2);
    a.set_ready(&key, 2);
    for t in 1..=60 {
        a.record(&sample(&key, t, 140.0, 14.0));
    }
    (a, key)
}

#[test]
fn updating_a_revisions_settings_keeps_its_load_history() {
    let (mut a, key) = busy();
    let shorter = RevisionScaling {
        window: Some(secs(30)),
        ..Default::default()
    };
    assert_eq!(
        a.upsert_revision(key.clone(), &shorter, secs(60)).unwrap(),
        2
    );
    let d = &a.tick(secs(60))[0];
    assert_eq!(d.outcome.decision.stable_average, 140.0);
    assert_eq!(d.outcome.replicas, 2);
    assert_eq!(a.revision(&key).unwrap().spec().stable_window, secs(30));
}

#[test]
fn changing_the_metric_starts_from_empty_windows() {
    let (mut a, key) = busy();
    let rps = RevisionScaling {
        metric: Some(ScaleMetric::Rps),
        ..Default::default()
    };
    a.upsert_revision(key.clone(), &rps, secs(60)).unwrap();
    a.record(&sample(&key, 61, 140.0, 14.0));
    let d = &a.tick(secs(61))[0];
    assert_eq!(
        d.outcome.decision.stable_average, 14.0,
        "rps, not the old concurrency"
    );
}

#[test]
fn invalid_settings_leave_the_revision_unchanged() {
    let (mut a, key) = busy();
    let bad = RevisionScaling {
        window: Some(secs(2)),
        ..Default::default()
    };
    let err = a.upsert_revision(key.clone(), &bad, secs(60)).unwrap_err();
    assert_eq!(err.key(), "autoscaling.knative.dev/window");
    assert_eq!(a.revision(&key).unwrap().spec().stable_window, secs(60));
}

#[test]
fn a_removed_revision_is_no_longer_decided() {
    let (mut a, key) = busy();
    assert!(a.remove_revision(&key));
    assert!(!a.remove_revision(&key));
    assert!(a.tick(secs(60)).is_empty());
    assert!(!a.set_ready(&key, 1));
    assert_eq!(a.record(&sample(&key, 61, 1e6, 1e6)), None);
    assert_eq!(a.poke(&key, secs(61)), None);
}

#[test]
fn each_revision_is_decided_on_its_own_load() {
    let (mut a, busy_key) = busy();
    let idle_key = RevisionKey::new("default", "m-predictor-00002");
    a.upsert_revision(idle_key.clone(), &RevisionScaling::default(), secs(0))
        .unwrap();
    a.set_ready(&idle_key, 1);
    let decisions = a.tick(secs(60));
    let count = |k: &RevisionKey| {
        decisions
            .iter()
            .find(|d| &d.revision == k)
            .map(|d| d.outcome.replicas)
    };
    assert_eq!(count(&busy_key), Some(2));
    assert_eq!(
        count(&idle_key),
        Some(1),
        "idle, but not yet a stable window active"
    );
}
