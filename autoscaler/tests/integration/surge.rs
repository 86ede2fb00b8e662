//! Kiln's one timing change to Knative: a sample that shows a surge decides at once.

use std::time::Duration;

use kiln_api::load::{LoadSample, RevisionKey};
use kiln_autoscaler::{Autoscaler, AutoscalerConfig, RevisionScaling};

fn sample(key: &RevisionKey, at: u64, concurrency: f64) -> LoadSample {
    LoadSample {
        revision: key.clone(),
        at: Duration::from_secs(at),
        average_concurrency: concurrency,
        requests_per_second: 0.0,
    }
}

/// An autoscaler with one revision at one ready replica and 100 s of load 70 (target 70).
fn settled() -> (Autoscaler, RevisionKey) {
    let mut autoscaler = Autoscaler::new(AutoscalerConfig::default()).unwrap();
    let key = RevisionKey::new("default", "burst-predictor-00001");
    autoscaler
        .upsert_revision(key.clone(), &RevisionScaling::default(), Duration::ZERO)
        .unwrap();
    autoscaler.set_ready(&key, 1);
    for t in 1..=100 {
        assert_eq!(
            autoscaler.record(&sample(&key, t, 70.0)),
            None,
            "steady load at {t}"
        );
        if t % 2 == 0 {
            autoscaler.tick(Duration::from_secs(t));
        }
    }
    (autoscaler, key)
}

#[test]
fn a_surging_sample_decides_at_once_without_waiting_for_the_tick() {
    let (mut autoscaler, key) = settled();
    // Panic window 96..=101: (5 x 70 + 1400) / 6 = 292 -> 5 replicas, 5 x the 1 asked for.
    let d = autoscaler
        .record(&sample(&key, 101, 1400.0))
        .expect("surge");
    assert_eq!((d.outcome.replicas, d.outcome.changed), (5, true));
    assert!(d.outcome.decision.panicking);

    // (4 x 70 + 2 x 1400) / 6 = 514 -> 8: less than twice the 5 asked for, so wait for the tick.
    assert_eq!(autoscaler.record(&sample(&key, 102, 1400.0)), None);
    // (3 x 70 + 3 x 1400) / 6 = 735 -> 11: more than twice 5, decide again.
    let d = autoscaler
        .record(&sample(&key, 103, 1400.0))
        .expect("second surge");
    assert_eq!(d.outcome.replicas, 11);
}

#[test]
fn with_decide_on_surge_off_only_ticks_decide_as_in_knative() {
    let (mut autoscaler, key) = settled();
    autoscaler.set_decide_on_surge(false);
    assert!(!autoscaler.decide_on_surge());
    assert_eq!(autoscaler.record(&sample(&key, 101, 1400.0)), None);
    assert_eq!(autoscaler.record(&sample(&key, 102, 1400.0)), None);
    let ticked = autoscaler.tick(Duration::from_secs(102));
    // The tick sees (4 x 70 + 2 x 1400) / 6 = 514 -> 8.
    assert_eq!(ticked[0].outcome.replicas, 8);
}
