//! Knative's `config-autoscaler` keys, annotations and KServe fields: parsing, defaults and
//! validation errors that name the key and the allowed range.

use std::time::Duration;

/// Settings as (key, value) pairs, as in a ConfigMap or annotations.
type Pairs<'a> = &'a [(&'a str, &'a str)];

use kiln_autoscaler::{
    AutoscalerConfig, ConfigError, PredictorScaling, RevisionScaling, ScaleMetric, ScalingSpec,
};

#[test]
fn defaults_are_knatives() {
    let spec = ScalingSpec::default();
    assert_eq!(spec.metric, ScaleMetric::Concurrency);
    assert_eq!((spec.total, spec.target), (100.0, 70.0));
    assert_eq!(spec.stable_window, Duration::from_secs(60));
    assert_eq!(spec.panic_window, Duration::from_secs(6));
    assert_eq!(spec.panic_threshold, 2.0);
    assert_eq!(
        (spec.max_scale_up_rate, spec.max_scale_down_rate),
        (1000.0, 2.0)
    );
    assert_eq!(spec.scale_to_zero_grace_period, Duration::from_secs(30));
    assert_eq!(spec.scale_down_delay, Duration::ZERO);
    assert_eq!(
        (spec.min_scale, spec.max_scale, spec.initial_scale),
        (0, 0, 1)
    );
    assert_eq!(
        AutoscalerConfig::default().tick_interval,
        Duration::from_secs(2)
    );
}

#[test]
fn reads_a_knative_config_map_with_string_values() {
    let yaml = r#"
        _example: "long comment block, ignored"
        stable-window: "1m"
        panic-window-percentage: "20.0"
        panic-threshold-percentage: "300.0"
        max-scale-up-rate: "10"
        max-scale-down-rate: "4.0"
        container-concurrency-target-default: "50"
        container-concurrency-target-percentage: "80"
        requests-per-second-target-default: "150"
        target-burst-capacity: "211"
        activator-capacity: "100.0"
        scale-to-zero-grace-period: "45s"
        scale-to-zero-pod-retention-period: "1m30s"
        scale-down-delay: "15s"
        tick-interval: "1s"
        initial-scale: "0"
        allow-zero-initial-scale: "true"
        enable-scale-to-zero: "true"
        activation-scale: "2"
        min-scale: "0"
        max-scale: "20"
        max-scale-limit: "100"
        pod-autoscaler-class: "kpa.autoscaling.knative.dev"
    "#;
    let config: AutoscalerConfig = kiln_api::yaml::from_str(yaml).unwrap();
    assert_eq!(config.stable_window, Duration::from_secs(60));
    assert_eq!(config.panic_window_percentage, 20.0);
    assert_eq!(config.panic_threshold_percentage, 300.0);
    assert_eq!(config.max_scale_down_rate, 4.0);
    assert_eq!(config.container_concurrency_target_percentage, 80.0);
    assert_eq!(
        config.scale_to_zero_pod_retention_period,
        Duration::from_secs(90)
    );
    assert_eq!(config.scale_down_delay, Duration::from_secs(15));
    assert_eq!(config.tick_interval, Duration::from_secs(1));
    assert_eq!((config.initial_scale, config.max_scale), (0, 20));

    let spec = RevisionScaling::default().resolve(&config).unwrap();
    assert_eq!(spec.target, 40.0, "50 x 80%");
    assert_eq!(spec.panic_window, Duration::from_secs(12));
    assert_eq!(spec.panic_threshold, 3.0);
}

#[test]
fn reads_numbers_and_booleans_from_json() {
    let json = r#"{"stable-window": "90s", "max-scale-up-rate": 2, "enable-scale-to-zero": false}"#;
    let config: AutoscalerConfig = serde_json::from_str(json).unwrap();
    assert_eq!(config.stable_window, Duration::from_secs(90));
    assert_eq!(config.max_scale_up_rate, 2.0);
    assert!(!config.enable_scale_to_zero);
}

#[test]
fn a_deserialization_error_names_the_key_and_range() {
    let err = kiln_api::yaml::from_str::<AutoscalerConfig>("stable-window: 2h").unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("stable-window") && message.contains("[6s, 1h]"),
        "{message}"
    );
}

#[test]
fn config_errors_name_the_key_and_the_allowed_range() {
    // (settings, key in the error, text of the allowed range or expected form)
    let cases: &[(Pairs<'_>, &str, &str)] = &[
        (&[("stable-window", "5s")], "stable-window", "in [6s, 1h]"),
        (&[("stable-window", "2h")], "stable-window", "in [6s, 1h]"),
        (
            &[("stable-window", "60500ms")],
            "stable-window",
            "whole seconds",
        ),
        (&[("stable-window", "sixty")], "stable-window", "a duration"),
        (
            &[("panic-window-percentage", "0.5")],
            "panic-window-percentage",
            "in [1, 100]",
        ),
        (
            &[("panic-threshold-percentage", "100")],
            "panic-threshold-percentage",
            "in [110, 1000]",
        ),
        (
            &[("panic-threshold-percentage", "1001")],
            "panic-threshold-percentage",
            "in [110, 1000]",
        ),
        (
            &[("max-scale-up-rate", "1")],
            "max-scale-up-rate",
            "above 1",
        ),
        (
            &[("max-scale-down-rate", "1.0")],
            "max-scale-down-rate",
            "above 1",
        ),
        (
            &[("container-concurrency-target-percentage", "0")],
            "container-concurrency-target-percentage",
            "in (0, 100]",
        ),
        (
            &[("container-concurrency-target-percentage", "101")],
            "container-concurrency-target-percentage",
            "in (0, 100]",
        ),
        (
            &[("container-concurrency-target-default", "0")],
            "container-concurrency-target-default",
            "at least 0.01",
        ),
        (
            &[("requests-per-second-target-default", "0")],
            "requests-per-second-target-default",
            "at least 0.01",
        ),
        (
            &[("scale-to-zero-grace-period", "5s")],
            "scale-to-zero-grace-period",
            "at least 6s",
        ),
        (
            &[("scale-to-zero-pod-retention-period", "2h")],
            "scale-to-zero-pod-retention-period",
            "in [0s, 1h]",
        ),
        (
            &[("scale-down-delay", "1500ms")],
            "scale-down-delay",
            "whole seconds",
        ),
        (&[("tick-interval", "0s")], "tick-interval", "above 0s"),
        (
            &[("initial-scale", "0")],
            "initial-scale",
            "allow-zero-initial-scale",
        ),
        (&[("initial-scale", "-1")], "initial-scale", "at least 0"),
        (
            &[("activation-scale", "0")],
            "activation-scale",
            "at least 1",
        ),
        (
            &[("min-scale", "5"), ("max-scale", "3")],
            "min-scale",
            "at most max-scale (3)",
        ),
        (
            &[("max-scale", "10"), ("max-scale-limit", "5")],
            "max-scale",
            "in [0, 5]",
        ),
        (
            &[("enable-scale-to-zero", "yes")],
            "enable-scale-to-zero",
            "true or false",
        ),
        (
            &[("target-burst-capacity", "-2")],
            "target-burst-capacity",
            "at least 0, or -1",
        ),
        (
            &[("pod-autoscaler-class", "hpa.autoscaling.knative.dev")],
            "pod-autoscaler-class",
            "kpa.autoscaling.knative.dev",
        ),
        (&[("stable-windw", "60s")], "stable-windw", "stable-window"),
    ];
    for &(settings, key, allowed) in cases {
        let err = AutoscalerConfig::from_config_map(settings.iter().copied()).unwrap_err();
        assert_eq!(err.key(), key, "{settings:?}");
        assert!(err.to_string().contains(allowed), "{settings:?}: {err}");
    }
}

#[test]
fn annotation_errors_name_the_annotation_and_the_allowed_range() {
    let cases: &[(Pairs<'_>, &str, &str)] = &[
        (&[("target", "0")], "target", "at least 0.01"),
        (&[("target", "lots")], "target", "a number"),
        (
            &[("target-utilization-percentage", "0")],
            "target-utilization-percentage",
            "in [1, 100]",
        ),
        (&[("metric", "cpu")], "metric", "concurrency or rps"),
        (&[("window", "3s")], "window", "in [6s, 1h]"),
        (
            &[("panic-window-percentage", "101")],
            "panic-window-percentage",
            "in [1, 100]",
        ),
        (
            &[("panic-threshold-percentage", "109")],
            "panic-threshold-percentage",
            "in [110, 1000]",
        ),
        (
            &[("min-scale", "3"), ("max-scale", "2")],
            "min-scale",
            "at most",
        ),
        (&[("min-scale", "-1")], "min-scale", "at least 0"),
        (
            &[("initial-scale", "0")],
            "initial-scale",
            "allow-zero-initial-scale",
        ),
        (
            &[("scale-down-delay", "2h")],
            "scale-down-delay",
            "in [0s, 1h]",
        ),
        (
            &[("activation-scale", "0")],
            "activation-scale",
            "at least 1",
        ),
        (
            &[("scale-to-zero-pod-retention-period", "-1s")],
            "scale-to-zero-pod-retention-period",
            "a duration",
        ),
        (
            &[("class", "hpa.autoscaling.knative.dev")],
            "class",
            "kpa.autoscaling.knative.dev",
        ),
        (&[("max-scale-ratio", "3")], "max-scale-ratio", "known:"),
    ];
    for &(annotations, name, allowed) in cases {
        let annotations: Vec<(String, String)> = annotations
            .iter()
            .map(|(k, v)| (format!("autoscaling.knative.dev/{k}"), (*v).to_owned()))
            .collect();
        let result = RevisionScaling::from_annotations(
            annotations.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        )
        .and_then(|scaling| scaling.resolve(&AutoscalerConfig::default()));
        let err = result.unwrap_err();
        assert_eq!(
            err.key(),
            format!("autoscaling.knative.dev/{name}"),
            "{annotations:?}"
        );
        assert!(err.to_string().contains(allowed), "{annotations:?}: {err}");
    }
}

#[test]
fn annotations_outside_the_autoscaling_prefix_are_ignored() {
    let scaling = RevisionScaling::from_annotations([
        ("serving.kserve.io/deploymentMode", "Serverless"),
        ("autoscaling.knative.dev/target", "10"),
        ("autoscaling.knative.dev/target-burst-capacity", "0"),
    ])
    .unwrap();
    assert_eq!(scaling.target, Some(10.0));
}

#[test]
fn kserve_field_errors_name_the_field() {
    let cases: Vec<(PredictorScaling, &str, &str)> = vec![
        (
            PredictorScaling {
                min_replicas: Some(3),
                max_replicas: Some(2),
                ..Default::default()
            },
            "minReplicas",
            "at most maxReplicas (2)",
        ),
        (
            PredictorScaling {
                scale_metric: Some("cpu".into()),
                ..Default::default()
            },
            "scaleMetric",
            "concurrency or rps",
        ),
        (
            PredictorScaling {
                scale_target: Some(0),
                ..Default::default()
            },
            "scaleTarget",
            "at least 1",
        ),
        (
            PredictorScaling {
                container_concurrency: Some(1001),
                ..Default::default()
            },
            "containerConcurrency",
            "in [0, 1000]",
        ),
    ];
    for (predictor, key, allowed) in cases {
        let err: ConfigError = RevisionScaling::default()
            .with_predictor(&predictor)
            .and_then(|s| s.resolve(&AutoscalerConfig::default()))
            .unwrap_err();
        assert_eq!(err.key(), key, "{predictor:?}");
        assert!(err.to_string().contains(allowed), "{predictor:?}: {err}");
    }
}

#[test]
fn kserve_fields_win_over_annotations() {
    let scaling = RevisionScaling::from_annotations([
        ("autoscaling.knative.dev/min-scale", "2"),
        ("autoscaling.knative.dev/target", "50"),
        ("autoscaling.knative.dev/metric", "concurrency"),
    ])
    .unwrap()
    .with_predictor(&PredictorScaling {
        min_replicas: Some(0),
        scale_target: Some(20),
        scale_metric: Some("rps".into()),
        ..Default::default()
    })
    .unwrap();
    let spec = scaling.resolve(&AutoscalerConfig::default()).unwrap();
    assert_eq!(
        (spec.min_scale, spec.metric, spec.total),
        (0, ScaleMetric::Rps, 20.0)
    );
}

#[test]
fn the_panic_window_is_at_least_one_second() {
    let scaling = RevisionScaling {
        window: Some(Duration::from_secs(6)),
        panic_window_percentage: Some(1.0),
        ..Default::default()
    };
    let spec = scaling.resolve(&AutoscalerConfig::default()).unwrap();
    assert_eq!(spec.panic_window, Duration::from_secs(1));
}

/// The manifest validator (kiln-api) and the autoscaler read a duration annotation with
/// the same grammar: each value is accepted by both or refused by both (they used to
/// disagree on `+60s` and `1μs`).
#[test]
fn manifests_and_the_autoscaler_agree_on_every_duration() {
    let key = "autoscaling.knative.dev/scale-down-delay";
    for (value, valid) in [
        ("90s", true),
        ("1m30s", true),
        ("+60s", true),
        ("2000000\u{3bc}s", true),
        ("2000000\u{b5}s", true),
        ("0", true),
        ("60", false),
        ("-5s", false),
        ("5d", false),
        ("", false),
    ] {
        let manifest = format!(
            "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  \
             name: m\n  annotations:\n    {key}: \"{value}\"\nspec:\n  predictor:\n    model:\n      \
             modelFormat: {{name: onnx}}\n      storageUri: file:///m\n"
        );
        let validated = kiln_api::inference_service::load_str(&manifest, None);
        let scaled = RevisionScaling::from_annotations([(key, value)])
            .and_then(|s| s.resolve(&AutoscalerConfig::default()));
        assert_eq!(
            validated.is_ok(),
            valid,
            "manifest with {value:?}: {validated:?}"
        );
        assert_eq!(
            scaled.is_ok(),
            valid,
            "autoscaler with {value:?}: {scaled:?}"
        );
    }
}
