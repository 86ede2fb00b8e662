//! `InferenceService` manifests: KServe's own examples load, every refusal names its field.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kiln_api::inference_service::{
    ComponentStatus, Condition, ConditionStatus, InferenceServiceStatus, Loaded, ManifestErrors,
    ModelFormat, Protocol, ReplicaCounts, ScaleMetric, TrafficTarget, ValidatedService, load_path,
    load_str, parse_str, validate,
};

fn manifests(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/manifests")
        .join(rel)
}

fn load_one(text: &str) -> (ValidatedService, Loaded) {
    let loaded = load_str(text, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.services.len(), 1, "{loaded:?}");
    (loaded.services[0].clone(), loaded)
}

fn refuse(text: &str) -> ManifestErrors {
    match load_str(text, None) {
        Ok(loaded) => panic!("accepted: {loaded:?}"),
        Err(e) => e,
    }
}

/// A minimal valid service with `predictor` lines spliced in (indented by 4).
fn with_predictor(extra: &str) -> String {
    format!(
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: m\n\
         spec:\n  predictor:\n{extra}    model:\n      modelFormat: {{name: onnx}}\n      \
         storageUri: s3://models/m\n"
    )
}

#[test]
fn kserve_docs_onnx_model_form_loads() {
    let loaded = load_path(&manifests("valid/onnx-model.yaml")).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let s = &loaded.services[0];
    assert_eq!(s.name, "style-sample");
    assert_eq!(s.namespace, "default");
    assert_eq!(s.servable.model_format, ModelFormat::Onnx);
    assert_eq!(s.servable.protocol, Protocol::V2);
    assert_eq!(
        s.servable.storage_uri,
        "gs://kfserving-examples/models/onnx"
    );
    assert_eq!(s.host("example.com"), "style-sample.default.example.com");
    assert_eq!(s.revision_name(1), "style-sample-predictor-00001");
}

#[test]
fn old_onnx_shorthand_loads() {
    let loaded = load_path(&manifests("valid/onnx-shorthand.yaml")).unwrap();
    let s = &loaded.services[0];
    assert_eq!(s.servable.model_format, ModelFormat::Onnx);
    assert_eq!(s.servable.storage_uri, "gs://kfserving-examples/onnx/style");
    assert_eq!(
        s.servable.protocol,
        Protocol::V1,
        "KServe's default protocol"
    );
}

#[test]
fn pytorch_shorthand_means_torchscript() {
    let (s, _) = load_one(
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {name: p}\n\
         spec:\n  predictor:\n    pytorch:\n      storageUri: s3://models/resnet\n",
    );
    assert_eq!(s.servable.model_format, ModelFormat::PyTorch);
}

#[test]
fn torchscript_on_triton_gets_a_gpu_env_and_a_warning_for_runtime_version() {
    let loaded = load_path(&manifests("valid/torchscript-triton.yaml")).unwrap();
    let s = &loaded.services[0].servable;
    assert_eq!(s.model_format, ModelFormat::PyTorch);
    assert_eq!(s.runtime.as_deref(), Some("kserve-tritonserver"));
    assert_eq!(s.gpus, 1);
    assert_eq!(s.protocol, Protocol::V2);
    assert_eq!(s.resources.limits["memory"], "4Gi");
    assert_eq!(s.env, vec![("OMP_NUM_THREADS".into(), "1".into())]);
    let fields: Vec<&str> = loaded.warnings.iter().map(|w| w.field.as_str()).collect();
    assert_eq!(fields, ["spec.predictor.model.runtimeVersion"]);
}

#[test]
fn multi_document_file_skips_other_kinds_with_a_warning() {
    let path = manifests("valid/multi.yaml");
    let loaded = load_path(&path).unwrap();
    let names: Vec<&str> = loaded.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["mnist-s3", "mlp"]);
    assert_eq!(loaded.services[0].document.index, Some(2));
    assert_eq!(loaded.services[1].document.index, Some(3));
    assert_eq!(
        loaded.services[0].document.file.as_deref(),
        Some(path.as_path())
    );
    assert!(loaded.services[0].document.line.is_some());

    let skipped: Vec<String> = loaded
        .warnings
        .iter()
        .filter(|w| w.field == "kind")
        .map(|w| w.message.clone())
        .collect();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(skipped[0].starts_with("Secret (v1)"), "{skipped:?}");
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.field == "spec.predictor.serviceAccountName")
    );

    let mlp = &loaded.services[1];
    assert_eq!(mlp.namespace, "models");
    assert_eq!(mlp.labels["team"], "vision");
    let s = &mlp.servable;
    assert_eq!(s.min_replicas, 0);
    assert_eq!(s.max_replicas, Some(4));
    assert_eq!(s.scale_target, Some(8));
    assert_eq!(s.scale_metric, Some(ScaleMetric::Concurrency));
    assert_eq!(s.container_concurrency, 16);
    assert_eq!(s.timeout, Some(Duration::from_secs(30)));
    assert_eq!(s.canary_traffic_percent, Some(10));
    assert_eq!(s.protocol, Protocol::GrpcV2);
    assert_eq!(s.annotations["autoscaling.knative.dev/window"], "60s");
}

#[test]
fn a_folder_loads_every_manifest_in_name_order() {
    let loaded = load_path(&manifests("valid")).unwrap();
    let names: Vec<&str> = loaded.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "mnist-s3",
            "mlp",
            "style-sample",
            "style-sample-old",
            "sdk-onnx",
            "torchscript-cifar10"
        ]
    );
}

#[test]
fn the_manifest_kserves_python_sdk_writes_loads() {
    // V1beta1InferenceService(api_version=constants.KSERVE_V1BETA1, kind=constants.KSERVE_KIND,
    //   metadata=client.V1ObjectMeta(name=..., namespace=...),
    //   spec=V1beta1InferenceServiceSpec(predictor=V1beta1PredictorSpec(
    //     model=V1beta1ModelSpec(model_format=V1beta1ModelFormat(name="onnx"),
    //       storage_uri=..., protocol_version="v2"))))
    // as `yaml.dump(ApiClient().sanitize_for_serialization(isvc))` writes it: keys sorted.
    let yaml = r#"apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: sdk-model
  namespace: kserve-test
spec:
  predictor:
    model:
      modelFormat:
        name: onnx
      protocolVersion: v2
      storageUri: gs://kfserving-examples/models/onnx
"#;
    let (s, loaded) = load_one(yaml);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(
        (s.name.as_str(), s.namespace.as_str()),
        ("sdk-model", "kserve-test")
    );
    assert_eq!(s.servable.protocol, Protocol::V2);

    // And the JSON the SDK sends to the API server.
    let loaded = load_path(&manifests("valid/python-sdk.json")).unwrap();
    assert_eq!(loaded.services[0].namespace, "kserve-test");
    assert_eq!(
        loaded.services[0].servable.annotations["sidecar.istio.io/inject"],
        "false"
    );
}

#[test]
fn min_replicas_absent_means_one_and_zero_allows_scale_to_zero() {
    let (s, _) = load_one(&with_predictor(""));
    assert_eq!(s.servable.min_replicas, 1);
    assert_eq!(s.servable.max_replicas, None);
    assert_eq!(s.servable.container_concurrency, 0);
    assert_eq!(s.servable.gpus, 0);
    assert_eq!(s.servable.timeout, None);
    assert_eq!(s.servable.scale_metric, None);

    let (s, _) = load_one(&with_predictor("    minReplicas: 0\n    maxReplicas: 0\n"));
    assert_eq!(s.servable.min_replicas, 0);
    assert_eq!(s.servable.max_replicas, None, "0 means no limit");
}

#[test]
fn unknown_fields_warn_with_their_path() {
    let text = with_predictor("    foo: 1\n").replace("  name: m\n", "  name: m\n  colour: red\n");
    let (_, loaded) = load_one(&text);
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "<input>, document 1 (line 1): metadata.colour: unknown field, ignored",
            "<input>, document 1 (line 1): spec.predictor.foo: unknown field, ignored",
        ]
    );
}

#[test]
fn unknown_model_format_is_refused_by_field() {
    let e = load_path(&manifests("invalid/unknown-format.yaml")).unwrap_err();
    assert!(e.has_field("spec.predictor.model.modelFormat.name"), "{e}");
    assert!(e.to_string().contains("\"sklearn\""), "{e}");

    let e = refuse(&with_predictor("    sklearn:\n      storageUri: gs://x\n"));
    assert!(e.has_field("spec.predictor.sklearn"), "{e}");
}

#[test]
fn malformed_yaml_names_the_file_and_line() {
    let path = manifests("invalid/malformed.yaml");
    let e = load_path(&path).unwrap_err();
    assert_eq!(e.errors.len(), 1, "{e}");
    let error = &e.errors[0];
    assert_eq!(error.document.file.as_deref(), Some(path.as_path()));
    let line = error.document.line.expect("a line");
    assert!((8..=10).contains(&line), "line {line}: {e}");
    let text = e.to_string();
    assert!(text.contains("malformed.yaml"), "{text}");
    assert!(text.contains(&format!("(line {line})")), "{text}");
}

#[test]
fn min_replicas_above_max_replicas_is_refused() {
    let e = load_path(&manifests("invalid/min-over-max.yaml")).unwrap_err();
    assert!(e.has_field("spec.predictor.minReplicas"), "{e}");
    assert!(
        e.to_string().contains("(5) is more than maxReplicas (2)"),
        "{e}"
    );
}

#[test]
fn canary_percent_150_is_refused() {
    let e = load_path(&manifests("invalid/canary-150.yaml")).unwrap_err();
    assert!(e.has_field("spec.predictor.canaryTrafficPercent"), "{e}");
}

#[test]
fn cpu_scale_metric_is_refused_with_a_reason() {
    let e = load_path(&manifests("invalid/cpu-metric.yaml")).unwrap_err();
    assert!(e.has_field("spec.predictor.scaleMetric"), "{e}");
    assert!(e.to_string().contains("KPA"), "{e}");
}

#[test]
fn transformer_is_refused() {
    let e = load_path(&manifests("invalid/transformer.yaml")).unwrap_err();
    assert_eq!(e.errors.len(), 1, "{e}");
    assert!(e.has_field("spec.transformer"), "{e}");
}

#[test]
fn every_problem_in_a_folder_is_reported_at_once() {
    let e = load_path(&manifests("invalid")).unwrap_err();
    let fields: Vec<&str> = e.errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.predictor.canaryTrafficPercent",
            "spec.predictor.scaleMetric",
            "",
            "spec.predictor.minReplicas",
            "spec.transformer",
            "spec.predictor.model.modelFormat.name",
        ],
        "{e}"
    );
}

#[test]
fn several_problems_in_one_document_are_all_reported() {
    let text = with_predictor(
        "    minReplicas: -1\n    maxReplicas: -2\n    scaleTarget: 0\n    timeout: 0\n    \
         containerConcurrency: 5000\n    canaryTrafficPercent: -5\n",
    )
    .replace("name: m\n", "name: Bad_Name\n");
    let e = refuse(&text);
    for field in [
        "metadata.name",
        "spec.predictor.minReplicas",
        "spec.predictor.maxReplicas",
        "spec.predictor.scaleTarget",
        "spec.predictor.timeout",
        "spec.predictor.containerConcurrency",
        "spec.predictor.canaryTrafficPercent",
    ] {
        assert!(e.has_field(field), "{field}: {e}");
    }
}

#[test]
fn fields_kiln_cannot_honour_are_refused_by_name() {
    let cases = [
        (
            with_predictor("").replace("s3://models/m", "pvc://claim/model"),
            "spec.predictor.model.storageUri",
        ),
        (
            with_predictor("").replace("s3://models/m", "s3://models/m/model.mar"),
            "spec.predictor.model.storageUri",
        ),
        (
            with_predictor("").replace("s3://models/m", "hdfs://models/m"),
            "spec.predictor.model.storageUri",
        ),
        (
            with_predictor("").replace("{name: onnx}", "{name: onnx}\n      runtime: kserve-torchserve"),
            "spec.predictor.model.runtime",
        ),
        (
            with_predictor("").replace("{name: onnx}", "{name: onnx}\n      runtime: kserve-mlserver"),
            "spec.predictor.model.runtime",
        ),
        (
            with_predictor("").replace("{name: onnx}", "{name: onnx}\n      protocolVersion: grpc-v1"),
            "spec.predictor.model.protocolVersion",
        ),
        (
            with_predictor("").replace(
                "{name: onnx}",
                "{name: onnx}\n      storage: {key: localMinIO, path: models/m}",
            ),
            "spec.predictor.model.storage",
        ),
        (
            with_predictor("").replace("{name: onnx}", "{name: onnx}\n      image: my/server:1"),
            "spec.predictor.model.image",
        ),
        (
            with_predictor("    workerSpec: {pipelineParallelSize: 2}\n"),
            "spec.predictor.workerSpec",
        ),
        (
            with_predictor("    containers: [{name: c, image: x}]\n"),
            "spec.predictor.containers",
        ),
        (
            with_predictor("    resources: {limits: {nvidia.com/gpu: \"1.5\"}}\n"),
            "spec.predictor.resources.limits.nvidia.com/gpu",
        ),
        (
            with_predictor("    resources: {limits: {amd.com/gpu: 1}}\n"),
            "spec.predictor.resources.limits.amd.com/gpu",
        ),
        (
            with_predictor("    env: [{name: K, valueFrom: {secretKeyRef: {name: s, key: k}}}]\n"),
            "spec.predictor.env[0].valueFrom",
        ),
        (
            with_predictor("    scaleMetric: memory\n"),
            "spec.predictor.scaleMetric",
        ),
        (
            with_predictor("").replace(
                "  name: m\n",
                "  name: m\n  annotations:\n    autoscaling.knative.dev/class: hpa.autoscaling.knative.dev\n",
            ),
            "metadata.annotations.autoscaling.knative.dev/class",
        ),
        (
            with_predictor("").replace(
                "  name: m\n",
                "  name: m\n  annotations:\n    autoscaling.knative.dev/window: soon\n",
            ),
            "metadata.annotations.autoscaling.knative.dev/window",
        ),
        (
            with_predictor("").replace("v1beta1", "v1alpha2"),
            "apiVersion",
        ),
        (
            with_predictor("").replace("  name: m\n", "  generateName: m-\n"),
            "metadata.generateName",
        ),
        (
            with_predictor("    minReplicas: two\n"),
            "spec.predictor.minReplicas",
        ),
        (
            with_predictor("").replace("s3://models/m", "5"),
            "spec.predictor.model.storageUri",
        ),
        (
            with_predictor("").replace(
                "s3://models/m",
                "s3://models/m\n      env: [{name: A, value: 1}]",
            ),
            "spec.predictor.model.env[0].value",
        ),
    ];
    for (text, field) in cases {
        let e = refuse(&text);
        assert!(e.has_field(field), "expected {field}, got: {e}\n{text}");
    }
}

#[test]
fn explainer_at_spec_level_is_refused() {
    let text = with_predictor("").replace("spec:\n", "spec:\n  explainer: {art: {}}\n");
    assert!(refuse(&text).has_field("spec.explainer"));
}

#[test]
fn two_models_or_none_are_refused() {
    let e = refuse(&with_predictor("    onnx: {storageUri: s3://x}\n"));
    assert!(e.has_field("spec.predictor"), "{e}");
    let e = refuse(
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {name: m}\n\
         spec:\n  predictor:\n    minReplicas: 1\n",
    );
    assert!(e.has_field("spec.predictor"), "{e}");
}

#[test]
fn a_service_defined_twice_is_refused() {
    let one = with_predictor("");
    let e = refuse(&format!("{one}---\n{one}"));
    assert!(e.has_field("metadata.name"), "{e}");
    assert_eq!(e.errors[0].document.index, Some(1));
}

#[test]
fn env_and_resources_merge_with_the_models_winning() {
    let text = with_predictor(
        "    env: [{name: A, value: \"1\"}, {name: B, value: \"2\"}]\n    \
         resources: {limits: {cpu: \"1\", nvidia.com/gpu: 1}}\n",
    )
    .replace(
        "storageUri: s3://models/m\n",
        "storageUri: s3://models/m\n      env: [{name: B, value: \"3\"}, {name: C}]\n      \
         resources: {limits: {cpu: \"2\"}, requests: {nvidia.com/gpu: 1}}\n",
    );
    let (s, _) = load_one(&text);
    assert_eq!(
        s.servable.env,
        [
            ("A".to_owned(), "1".to_owned()),
            ("B".to_owned(), "3".to_owned()),
            ("C".to_owned(), String::new())
        ]
    );
    assert_eq!(s.servable.resources.limits["cpu"], "2");
    assert_eq!(s.servable.gpus, 1);
}

#[test]
fn spec_hash_changes_only_with_the_revision_template() {
    let base = load_one(&with_predictor("")).0.servable;
    let hash = base.spec_hash();
    assert_eq!(hash.len(), 64);
    assert!(hash.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(load_one(&with_predictor("")).0.servable.spec_hash(), hash);

    // Scaling, annotations and traffic change the running revision, not the template.
    for same in [
        with_predictor("    minReplicas: 0\n    maxReplicas: 3\n"),
        with_predictor("    scaleTarget: 5\n    scaleMetric: rps\n"),
        with_predictor("    canaryTrafficPercent: 20\n"),
        with_predictor("").replace(
            "  name: m\n",
            "  name: m\n  annotations: {autoscaling.knative.dev/target: \"7\"}\n",
        ),
    ] {
        assert_eq!(load_one(&same).0.servable.spec_hash(), hash, "{same}");
    }
    for different in [
        with_predictor("").replace("s3://models/m", "s3://models/m2"),
        with_predictor("").replace("{name: onnx}", "{name: onnx}\n      protocolVersion: v2"),
        with_predictor("").replace("{name: onnx}", "{name: onnx}\n      runtime: kiln"),
        with_predictor("    env: [{name: A, value: \"1\"}]\n"),
        with_predictor("    resources: {limits: {nvidia.com/gpu: 1}}\n"),
        with_predictor("    containerConcurrency: 4\n"),
        with_predictor("    timeout: 60\n"),
    ] {
        assert_ne!(
            load_one(&different).0.servable.spec_hash(),
            hash,
            "{different}"
        );
    }
}

#[test]
fn a_parsed_object_serialises_back_with_api_version_and_kind() {
    let parsed = parse_str(&with_predictor("    minReplicas: 0\n"), None).unwrap();
    let service = &parsed.services[0].service;
    assert_eq!(service.name(), "m");
    assert_eq!(service.namespace(), "default");
    assert!(service.annotations().is_empty());
    assert_eq!(service.spec.predictor.min_replicas, Some(0));
    let json = serde_json::to_value(service).unwrap();
    assert_eq!(json["apiVersion"], "serving.kserve.io/v1beta1");
    assert_eq!(json["kind"], "InferenceService");
    assert_eq!(json["metadata"]["name"], "m");
    assert_eq!(json["spec"]["predictor"]["minReplicas"], 0);
    assert_eq!(
        json["spec"]["predictor"]["model"]["modelFormat"]["name"],
        "onnx"
    );
    assert_eq!(
        json["spec"]["predictor"]["model"]["storageUri"],
        "s3://models/m"
    );
    assert!(validate(service).is_ok());
}

#[test]
fn status_round_trips_in_kserves_shape() {
    let kserve = serde_json::json!({
        "url": "http://mnist.default.example.com",
        "address": {"url": "http://mnist.default.svc.cluster.local"},
        "conditions": [
            {"type": "PredictorReady", "status": "True",
             "lastTransitionTime": "2026-01-01T00:00:00Z"},
            {"type": "Ready", "status": "False", "reason": "RevisionMissing",
             "message": "waiting for mnist-predictor-00002",
             "lastTransitionTime": "2026-01-01T00:00:01Z"}
        ],
        "components": {"predictor": {
            "latestCreatedRevision": "mnist-predictor-00002",
            "latestReadyRevision": "mnist-predictor-00001",
            "latestRolledoutRevision": "mnist-predictor-00001",
            "previousRolledoutRevision": "mnist-predictor-00000",
            "traffic": [
                {"revisionName": "mnist-predictor-00002", "percent": 10, "tag": "latest",
                 "latestRevision": true},
                {"revisionName": "mnist-predictor-00001", "percent": 90, "tag": "prev",
                 "latestRevision": false}
            ],
            "kilnReplicas": {
                "mnist-predictor-00001": {"desired": 2, "ready": 2},
                "mnist-predictor-00002": {"desired": 1, "ready": 0}
            }
        }}
    });
    let status: InferenceServiceStatus = serde_json::from_value(kserve.clone()).unwrap();
    assert!(!status.is_ready());
    let predictor = status.predictor().unwrap();
    assert_eq!(predictor.traffic[0].percent, Some(10));
    assert_eq!(
        predictor.kiln_replicas["mnist-predictor-00002"],
        ReplicaCounts {
            desired: 1,
            ready: 0
        }
    );
    assert_eq!(serde_json::to_value(&status).unwrap(), kserve);
}

#[test]
fn status_conditions_keep_their_transition_time_while_unchanged() {
    let mut status = InferenceServiceStatus::default();
    let mut ready = Condition::new("Ready", ConditionStatus::Unknown);
    ready.last_transition_time = Some("t0".into());
    assert!(status.set_condition(ready.clone()));
    ready.last_transition_time = Some("t1".into());
    assert!(
        !status.set_condition(ready.clone()),
        "same status: no change"
    );
    assert_eq!(
        status
            .condition("Ready")
            .unwrap()
            .last_transition_time
            .as_deref(),
        Some("t0")
    );
    ready.status = ConditionStatus::True;
    assert!(status.set_condition(ready));
    assert!(status.is_ready());

    let predictor: &mut ComponentStatus = status.predictor_mut();
    predictor.traffic.push(TrafficTarget {
        revision_name: Some("m-predictor-00001".into()),
        percent: Some(100),
        latest_revision: Some(true),
        ..TrafficTarget::default()
    });
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["conditions"][0]["status"], "True");
    assert_eq!(
        json["components"]["predictor"]["traffic"][0]["revisionName"],
        "m-predictor-00001"
    );
    assert!(
        json["components"]["predictor"]
            .get("kilnReplicas")
            .is_none()
    );
}

#[cfg(feature = "kube")]
#[test]
fn the_crd_is_kserves_inference_service() {
    use kube::{CustomResourceExt, Resource};

    use kiln_api::inference_service::InferenceService;

    assert_eq!(
        InferenceService::api_version(&()),
        "serving.kserve.io/v1beta1"
    );
    assert_eq!(InferenceService::kind(&()), "InferenceService");
    let crd = serde_json::to_value(InferenceService::crd()).unwrap();
    assert_eq!(
        crd["metadata"]["name"],
        "inferenceservices.serving.kserve.io"
    );
    assert_eq!(crd["spec"]["group"], "serving.kserve.io");
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    assert_eq!(crd["spec"]["names"]["kind"], "InferenceService");
    assert_eq!(crd["spec"]["names"]["shortNames"][0], "isvc");
    let version = &crd["spec"]["versions"][0];
    assert_eq!(version["name"], "v1beta1");
    assert!(version["subresources"]["status"].is_object(), "{version}");
    let spec = &version["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let predictor = &spec["properties"]["predictor"]["properties"];
    assert!(predictor["minReplicas"].is_object(), "{spec}");
    assert!(
        predictor["model"]["properties"]["storageUri"].is_object(),
        "{spec}"
    );
    assert_eq!(
        spec["properties"]["transformer"]["x-kubernetes-preserve-unknown-fields"],
        true
    );
    let status = &version["schema"]["openAPIV3Schema"]["properties"]["status"];
    assert!(
        status["properties"]["components"]["properties"]["predictor"]["properties"]["kilnReplicas"]
            .is_object(),
        "{status}"
    );
}

#[test]
fn empty_documents_are_skipped_and_odd_ones_refused() {
    let one = with_predictor("");
    let loaded = load_str(&format!("---\n# nothing here\n---\n{one}---\n"), None).unwrap();
    assert_eq!(loaded.services.len(), 1);
    assert_eq!(loaded.services[0].document.index, Some(1));
    assert_eq!(loaded.services[0].document.line, Some(4));

    let e = refuse("- just\n- a list\n");
    assert!(e.has_field(""), "{e}");
    let e = refuse(&one.replace("kind: InferenceService\n", ""));
    assert!(e.has_field("kind"), "{e}");
    let e = refuse(&one.replace("apiVersion: serving.kserve.io/v1beta1\n", ""));
    assert!(e.has_field("apiVersion"), "{e}");
}

#[test]
fn missing_files_and_empty_folders_are_named() {
    let missing = manifests("no-such-file.yaml");
    let e = load_path(&missing).unwrap_err();
    assert_eq!(
        e.errors[0].document.file.as_deref(),
        Some(missing.as_path())
    );
    assert_eq!(e.errors[0].document.index, None);

    let empty = std::env::temp_dir().join(format!("kiln-api-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let e = load_path(&empty).unwrap_err();
    std::fs::remove_dir(&empty).unwrap();
    assert!(
        e.to_string().contains("no .yaml, .yml or .json file"),
        "{e}"
    );
}

#[test]
fn objects_built_in_code_validate_like_manifests() {
    use kiln_api::inference_service::{
        InferenceService, InferenceServiceSpec, ModelFormatRef, ModelSpec, PredictorSpec,
    };

    let spec = InferenceServiceSpec {
        predictor: PredictorSpec {
            model: Some(ModelSpec {
                model_format: Some(ModelFormatRef {
                    name: "pytorch".into(),
                    version: None,
                }),
                storage_uri: Some("file:///models/resnet".into()),
                ..ModelSpec::default()
            }),
            min_replicas: Some(0),
            ..PredictorSpec::default()
        },
        ..InferenceServiceSpec::default()
    };
    let service = InferenceService::new("resnet", spec.clone()).with_namespace("vision");
    assert_eq!(service.namespace(), "vision");
    let servable = validate(&service).unwrap();
    assert_eq!(servable.model_format, ModelFormat::PyTorch);
    assert_eq!(servable.min_replicas, 0);

    let mut with_transformer = InferenceService::new("resnet", spec);
    with_transformer.spec.transformer = Some(serde_json::json!({"containers": []}));
    let errors = validate(&with_transformer).unwrap_err();
    assert_eq!(errors[0].field, "spec.transformer");
}
