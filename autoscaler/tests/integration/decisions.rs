//! The KPA's decisions on scripted load: one sample per second, a tick every two seconds.

use crate::common;

use common::{Pairs, Script, key, sample, secs, spec};
use kiln_api::load::LoadSample;
use kiln_autoscaler::{
    Activity, Decider, PredictorScaling, RevisionAutoscaler, RevisionScaling, ScalingSpec,
};

#[test]
fn steady_load_settles_at_load_over_seventy_percent_of_the_target() {
    // (annotations, concurrency, replicas): default total 100, utilisation 70% -> target 70.
    let cases: &[(Pairs<'_>, f64, u32)] = &[
        (&[], 70.0, 1),
        (&[], 70.5, 2),
        (&[], 140.0, 2),
        (&[], 700.0, 10),
        (&[], 1000.0, 15),
        (&[("target", "10")], 100.0, 15),
        (&[("target-utilization-percentage", "50")], 100.0, 2),
    ];
    for &(annotations, load, expected) in cases {
        let mut s = Script::new(spec(&[], annotations));
        s.play(300, load);
        assert_eq!(
            s.counts_since(240),
            vec![expected; 31],
            "{annotations:?} at {load}"
        );
    }
}

#[test]
fn a_burst_enters_panic_and_scales_up_at_the_next_tick() {
    let mut s = Script::new(spec(&[], &[]));
    s.play(120, 70.0);
    assert_eq!((s.replicas(), s.last().decision.panicking), (1, false));

    s.play(2, 700.0);
    // Panic window 117..=122: (4 x 70 + 2 x 700) / 6 = 280 -> 4 replicas, 4 / 1 >= 200%.
    // The stable window alone would say ceil(91 / 70) = 2.
    let burst = s.last();
    assert!(burst.decision.panicking);
    assert_eq!(burst.replicas, 4);
    assert_eq!(
        (burst.decision.stable_average / 70.0).ceil(),
        2.0,
        "stable mode would have been slower"
    );

    s.play(4, 700.0);
    assert_eq!(
        s.counts_since(124),
        vec![7, 10],
        "full size within one panic window"
    );
}

#[test]
fn panic_never_scales_down_and_ends_a_stable_window_after_the_last_tick_over_threshold() {
    let mut s = Script::new(spec(&[], &[]));
    s.play(120, 70.0).play(20, 700.0).play(60, 70.0);
    // Only the tick at 122 was over the threshold (4 wanted of 1 ready); later ticks were not.
    let in_panic: Vec<_> = s
        .history
        .iter()
        .filter(|(t, _)| (122..=182).contains(t))
        .collect();
    assert!(in_panic.iter().all(|(_, o)| o.decision.panicking));
    let counts: Vec<u32> = in_panic.iter().map(|(_, o)| o.replicas).collect();
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
    assert_eq!(*counts.last().unwrap(), 10, "held through the drop at 141");

    let after = s.history.iter().find(|(t, _)| *t == 184).unwrap().1;
    assert!(!after.decision.panicking, "122 + 60s has passed");
    // Stable: (16 x 700 + 44 x 70) / 60 = 238 -> 4, but at most halved: 10 / 2 = 5.
    assert_eq!(after.replicas, 5);
}

#[test]
fn each_decision_scales_down_at_most_to_ready_over_max_scale_down_rate() {
    // (max-scale-down-rate, ready before each decision with no load, expected answers)
    let cases: &[(&str, &[u32], &[u32])] = &[
        ("2", &[20, 10, 5, 2, 1], &[10, 5, 2, 1, 0]),
        ("4", &[20, 5, 1], &[5, 1, 0]),
        ("1.5", &[9, 6, 4], &[6, 4, 2]),
    ];
    for &(rate, ready, expected) in cases {
        let mut d = Decider::new(spec(&[("max-scale-down-rate", rate)], &[]));
        d.record(secs(1), 0.0);
        let got: Vec<u32> = ready
            .iter()
            .enumerate()
            .map(|(i, &r)| d.decide(secs(2 + 2 * i as u64), r).desired)
            .collect();
        assert_eq!(got, expected, "rate {rate}");
    }
}

#[test]
fn each_decision_scales_up_at_most_to_ready_times_max_scale_up_rate() {
    // (max-scale-up-rate, ready, answer) for a load that wants 100 replicas.
    let cases = [
        ("2", 3, 6),
        ("2", 6, 12),
        ("2", 0, 2),
        ("1.5", 3, 5),
        ("1000", 1, 100),
    ];
    for (rate, ready, expected) in cases {
        let mut d = Decider::new(spec(&[("max-scale-up-rate", rate)], &[]));
        d.record(secs(2), 7000.0);
        assert_eq!(
            d.decide(secs(2), ready).desired,
            expected,
            "rate {rate}, ready {ready}"
        );
    }
}

#[test]
fn scale_down_waits_for_the_scale_down_delay() {
    // (scale-down-delay, first tick with fewer than 10 replicas after the drop at 200)
    let cases = [("0s", 202), ("10s", 210), ("30s", 230)];
    for (delay, first_lower) in cases {
        let mut s = Script::new(spec(&[], &[("window", "6s"), ("scale-down-delay", delay)]));
        s.play(200, 700.0).play(120, 70.0);
        assert_eq!(s.replicas(), 1, "{delay}: settles at the new load");
        let lower = s.history.iter().find(|(t, o)| *t > 200 && o.replicas < 10);
        assert_eq!(lower.map(|(t, _)| *t), Some(first_lower), "{delay}");
    }
}

#[test]
fn scale_up_is_not_delayed_by_the_scale_down_delay() {
    let mut s = Script::new(spec(&[], &[("scale-down-delay", "60s")]));
    s.play(100, 70.0).play(6, 1400.0);
    assert_eq!(s.replicas(), 20);
}

#[test]
fn an_idle_revision_reaches_zero_a_stable_window_plus_the_grace_period_after_its_last_load() {
    // (config, annotations, silent instead of zero samples, first tick answering 0)
    type Case<'a> = (
        &'a [(&'a str, &'a str)],
        &'a [(&'a str, &'a str)],
        bool,
        Option<u64>,
    );
    let cases: &[Case<'_>] = &[
        (&[], &[], false, Some(100 + 60 + 30)),
        (&[], &[], true, Some(100 + 60 + 30)),
        (
            &[("scale-to-zero-grace-period", "10s")],
            &[],
            false,
            Some(100 + 60 + 10),
        ),
        (
            &[],
            &[("scale-to-zero-pod-retention-period", "1m")],
            false,
            Some(100 + 60 + 60),
        ),
        (&[], &[("window", "20s")], false, Some(100 + 20 + 30)),
        (&[("enable-scale-to-zero", "false")], &[], false, None),
        (&[], &[("min-scale", "1")], false, None),
    ];
    for &(config, annotations, silent, expected) in cases {
        let mut s = Script::new(spec(config, annotations));
        s.play(100, 10.0);
        if silent {
            s.silence(300);
        } else {
            s.play(300, 0.0);
        }
        assert_eq!(
            s.first_tick_at(0),
            expected,
            "{config:?} {annotations:?} silent={silent}"
        );
        let before: Vec<u32> = s.counts_since(100).into_iter().take(10).collect();
        assert!(
            before.iter().all(|&n| n == 1),
            "keeps one replica meanwhile: {before:?}"
        );
        if expected.is_some() {
            assert_eq!(s.replicas(), 0, "and stays at zero");
        }
    }
}

#[test]
fn a_new_revision_without_traffic_keeps_its_initial_replica_for_a_stable_window_plus_grace() {
    let mut s = Script::new(spec(&[], &[]));
    s.silence(200);
    // Active from the first tick (t = 2), inactive a stable window later, zero after grace.
    assert_eq!(s.first_tick_at(0), Some(2 + 60 + 30));
}

#[test]
fn a_poke_at_zero_asks_for_capacity_at_once_and_holds_it_a_stable_window_plus_grace() {
    // (activation-scale, replicas asked for by the poke, first tick back at zero): the poke's
    // demand leaves the stable window at 161; 3 replicas take one more tick to halve to 1.
    for (activation, expected, zero_at) in [("1", 1, 162 + 30), ("3", 3, 164 + 30)] {
        let mut s = Script::new(spec(&[], &[("activation-scale", activation)]));
        s.silence(100);
        assert_eq!(s.replicas(), 0);

        let poked = s.rev.poke(secs(101)).expect("at zero, a poke decides");
        assert_eq!((poked.replicas, poked.changed), (expected, true));
        assert_eq!(s.rev.activity(), Activity::Activating);
        assert_eq!(s.rev.poke(secs(101)), None, "replicas already asked for");
        s.rev.set_ready(expected);

        s.silence(199);
        assert_eq!(
            s.history
                .iter()
                .find(|(t, o)| *t > 101 && o.replicas == 0)
                .map(|(t, _)| *t),
            Some(zero_at),
            "activation {activation}"
        );
    }
}

#[test]
fn max_and_min_scale_bound_every_answer() {
    let mut capped = Script::new(spec(&[], &[("max-scale", "5")]));
    capped.play(60, 1400.0);
    assert_eq!(capped.counts_since(2), vec![5; 30]);

    let mut floored = Script::new(spec(&[], &[("min-scale", "2")]));
    floored.silence(300);
    assert_eq!(floored.counts_since(2), vec![2; 150]);
}

#[test]
fn initial_scale_holds_until_reached_once() {
    let mut s = Script::new(spec(&[], &[("initial-scale", "3")]));
    assert_eq!(s.replicas(), 3);
    s.instant_ready = false;
    s.rev.set_ready(0);
    s.silence(40);
    assert_eq!(
        s.counts_since(0),
        vec![3; 20],
        "not ready yet: keep asking for 3"
    );
    s.rev.set_ready(3);
    s.silence(2);
    assert_eq!(s.replicas(), 1, "ready once: now the load decides");
}

#[test]
fn zero_initial_scale_starts_at_zero_when_allowed() {
    let spec = spec(
        &[("allow-zero-initial-scale", "true")],
        &[("initial-scale", "0")],
    );
    let rev = RevisionAutoscaler::new(spec, secs(0));
    assert_eq!(rev.replicas(), 0);
    assert!(matches!(rev.activity(), Activity::Inactive { .. }));
}

#[test]
fn activation_scale_is_the_least_count_whenever_there_is_demand() {
    let mut s = Script::new(spec(&[], &[("activation-scale", "3")]));
    s.play(100, 1.0);
    assert_eq!(s.replicas(), 3);
    s.play(100, 300.0);
    assert_eq!(s.replicas(), 5, "above activation scale the load decides");
    s.play(200, 0.0);
    assert_eq!(s.replicas(), 0, "no demand, no activation scale");
}

#[test]
fn container_concurrency_is_the_total_and_caps_the_target() {
    let resolve = |scaling: RevisionScaling| scaling.resolve(&Default::default()).unwrap();
    let cc = |n| RevisionScaling {
        container_concurrency: Some(n),
        ..Default::default()
    };
    // (settings, per-replica target)
    let cases: Vec<(RevisionScaling, f64)> = vec![
        (cc(10), 7.0),
        (cc(0), 70.0),
        (
            RevisionScaling {
                target: Some(50.0),
                ..cc(10)
            },
            7.0,
        ),
        (
            RevisionScaling {
                target: Some(5.0),
                ..cc(10)
            },
            3.5,
        ),
        (
            RevisionScaling {
                target_utilization_percentage: Some(100.0),
                ..cc(10)
            },
            10.0,
        ),
        (
            RevisionScaling::default()
                .with_predictor(&PredictorScaling {
                    scale_target: Some(5),
                    container_concurrency: Some(20),
                    ..Default::default()
                })
                .unwrap(),
            3.5,
        ),
    ];
    for (scaling, target) in cases {
        let spec = resolve(scaling.clone());
        assert!(
            (spec.target - target).abs() < 1e-9,
            "{scaling:?}: {}",
            spec.target
        );
    }

    let mut s = Script::new(resolve(cc(10)));
    s.play(200, 70.0);
    assert_eq!(s.replicas(), 10, "70 in flight over 7 per replica");
}

#[test]
fn the_rps_metric_scales_on_requests_per_second() {
    // (metric annotation, replicas for 700 rps at concurrency 7)
    for (metric, expected) in [("rps", 5), ("concurrency", 1)] {
        let spec: ScalingSpec = spec(&[], &[("metric", metric)]);
        let mut rev = RevisionAutoscaler::new(spec, secs(0));
        rev.set_ready(1);
        for t in 1..=200 {
            rev.record(&LoadSample {
                revision: key(),
                at: secs(t),
                average_concurrency: 7.0,
                requests_per_second: 700.0,
            });
            if t % 2 == 0 {
                let n = rev.tick(secs(t)).replicas;
                rev.set_ready(n);
            }
        }
        assert_eq!(rev.replicas(), expected, "{metric}: 700 rps over 200 x 70%");
    }
}

#[test]
fn seconds_without_samples_count_as_zero_load() {
    // 140 every other second averages 70: one replica, where 140 every second needs two.
    let mut rev = RevisionAutoscaler::new(spec(&[], &[]), secs(0));
    rev.set_ready(1);
    for t in 1..=200 {
        if t % 2 == 0 {
            rev.record(&sample(t, 140.0));
            let n = rev.tick(secs(t)).replicas;
            rev.set_ready(n);
        }
    }
    assert_eq!(rev.replicas(), 1);
}

#[test]
fn kserve_min_replicas_defaults_to_one_and_zero_allows_scale_to_zero() {
    let resolve = |p: PredictorScaling| {
        RevisionScaling::default()
            .with_predictor(&p)
            .unwrap()
            .resolve(&Default::default())
            .unwrap()
    };
    assert_eq!(resolve(PredictorScaling::default()).min_scale, 1);
    let zero = resolve(PredictorScaling {
        min_replicas: Some(0),
        max_replicas: Some(4),
        ..Default::default()
    });
    assert_eq!((zero.min_scale, zero.max_scale), (0, 4));
}
