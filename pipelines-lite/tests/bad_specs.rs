//! Specs Kiln cannot honour are refused before anything runs, with the field named.

mod common;

use std::sync::Arc;

use common::Bench;
use kiln_pipelines::{PipelineFile, StartError, TokioClock, run_pipeline};

#[tokio::test]
async fn an_unknown_field_is_named_with_its_path() {
    let b = Bench::new();
    let yaml = b.compile("typed").replace(
        "pipelineInfo:\n  name: typed\n",
        "pipelineInfo:\n  name: typed\n  futureField: 1\n",
    );
    let err = PipelineFile::parse(&yaml).unwrap_err().to_string();
    assert!(
        err.contains("pipelineInfo") && err.contains("futureField"),
        "{err}"
    );

    let yaml = b.compile("typed").replace(
        "      double:\n        cachingOptions:\n",
        "      double:\n        timeoutPolicy: 10s\n        cachingOptions:\n",
    );
    let err = PipelineFile::parse(&yaml).unwrap_err().to_string();
    assert!(
        err.contains("root.dag.tasks.double") && err.contains("timeoutPolicy"),
        "{err}"
    );
}

#[tokio::test]
async fn a_condition_outside_the_cel_subset_is_refused_and_nothing_runs() {
    let b = Bench::new();
    let yaml = b.compile("artifacts");
    let bad = yaml.replacen("condition: int(inputs", "condition: size(inputs", 1);
    assert_ne!(bad, yaml);
    let file = PipelineFile::parse(&bad).unwrap();
    let err = run_pipeline(file, b.options(&[]), Arc::new(TokioClock))
        .await
        .unwrap_err();
    assert!(matches!(err, StartError::Invalid(_)), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("triggerPolicy.condition") && text.contains("function `size`"),
        "{text}"
    );
    assert!(!b.path("state/runs").exists(), "a run started");
}

#[tokio::test]
async fn a_missing_required_input_is_refused_and_nothing_runs() {
    let b = Bench::new();
    let mut file = PipelineFile::parse(&b.compile("typed")).unwrap();
    let dag = file.spec.root.dag.as_mut().unwrap();
    dag.tasks
        .get_mut("double")
        .unwrap()
        .inputs
        .parameters
        .remove("i");
    let err = run_pipeline(file, b.options(&[]), Arc::new(TokioClock))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("root.dag.tasks.double.inputs.parameters") && text.contains("`i`"),
        "{text}"
    );
    assert!(!b.path("state/runs").exists(), "a run started");
}

#[tokio::test]
async fn a_platform_spec_that_needs_a_volume_is_refused_and_placement_only_warns() {
    let b = Bench::new();
    let yaml = b.compile("typed");
    let volume = format!(
        "{yaml}---\nplatforms:\n  kubernetes:\n    deploymentSpec:\n      executors:\n        exec-double:\n          pvcMount:\n          - mountPath: /data\n            pvcName: data\n"
    );
    let err = run_pipeline(
        PipelineFile::parse(&volume).unwrap(),
        b.options(&[]),
        Arc::new(TokioClock),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("platforms.kubernetes.deploymentSpec.executors.exec-double.pvcMount"),
        "{err}"
    );

    let placement = format!(
        "{yaml}---\nplatforms:\n  kubernetes:\n    deploymentSpec:\n      executors:\n        exec-double:\n          nodeSelector:\n            labels:\n              gpu: 'true'\n"
    );
    let run = run_pipeline(
        PipelineFile::parse(&placement).unwrap(),
        b.options(&[]),
        Arc::new(TokioClock),
    )
    .await
    .unwrap();
    assert!(
        run.warnings
            .iter()
            .any(|w| w.contains("exec-double.nodeSelector")),
        "{:?}",
        run.warnings
    );
}
