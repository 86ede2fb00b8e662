//! A spec in the shape the SDK writes, by hand, with `sh` steps only: the engine is exercised
//! even where the kfp SDK is not installed.

use std::sync::Arc;

use kiln_pipelines::{PipelineFile, RunOptions, RunState, TaskState, TokioClock, run_pipeline};
use serde_json::json;

const SPEC: &str = r#"
components:
  comp-count:
    executorLabel: exec-count
    inputDefinitions:
      artifacts:
        text:
          artifactType: {schemaTitle: system.Dataset, schemaVersion: 0.0.1}
    outputDefinitions:
      parameters:
        n: {parameterType: NUMBER_INTEGER}
  comp-write:
    executorLabel: exec-write
    inputDefinitions:
      parameters:
        word: {parameterType: STRING}
        times: {parameterType: NUMBER_INTEGER, defaultValue: 2.0, isOptional: true}
    outputDefinitions:
      artifacts:
        text:
          artifactType: {schemaTitle: system.Dataset, schemaVersion: 0.0.1}
  comp-big:
    executorLabel: exec-big
    inputDefinitions:
      parameters:
        n: {parameterType: NUMBER_INTEGER}
  comp-condition-1:
    dag:
      tasks:
        big:
          cachingOptions: {enableCache: true}
          componentRef: {name: comp-big}
          inputs:
            parameters:
              n: {componentInputParameter: pipelinechannel--count-n}
          taskInfo: {name: big}
    inputDefinitions:
      parameters:
        pipelinechannel--count-n: {parameterType: NUMBER_INTEGER}
deploymentSpec:
  executors:
    exec-write:
      container:
        image: alpine
        command: [sh, -c, 'for i in $(seq "$1"); do echo "$0"; done > "$2"']
        args: ["{{$.inputs.parameters['word']}}", "{{$.inputs.parameters['times']}}", "{{$.outputs.artifacts['text'].path}}"]
    exec-count:
      container:
        image: alpine
        command: [sh, -c, 'wc -l < "$0" | tr -d " " > "$1"']
        args: ["{{$.inputs.artifacts['text'].path}}", "{{$.outputs.parameters['n'].output_file}}"]
    exec-big:
      container:
        image: alpine
        command: [sh, -c, 'echo "big: $0"']
        args: ["{{$.inputs.parameters['n']}}"]
pipelineInfo:
  name: handwritten
root:
  dag:
    tasks:
      write:
        cachingOptions: {enableCache: true}
        componentRef: {name: comp-write}
        inputs:
          parameters:
            word: {componentInputParameter: word}
        taskInfo: {name: write}
      count:
        cachingOptions: {enableCache: true}
        componentRef: {name: comp-count}
        dependentTasks: [write]
        inputs:
          artifacts:
            text: {taskOutputArtifact: {producerTask: write, outputArtifactKey: text}}
        taskInfo: {name: count}
      condition-1:
        componentRef: {name: comp-condition-1}
        dependentTasks: [count]
        inputs:
          parameters:
            pipelinechannel--count-n: {taskOutputParameter: {producerTask: count, outputParameterKey: n}}
        taskInfo: {name: condition-1}
        triggerPolicy:
          condition: int(inputs.parameter_values['pipelinechannel--count-n']) > 2
  inputDefinitions:
    parameters:
      word: {parameterType: STRING, defaultValue: hello, isOptional: true}
schemaVersion: 2.1.0
sdkVersion: kfp-2.17.3
"#;

fn options(dir: &std::path::Path) -> RunOptions {
    RunOptions {
        pipeline_root: None,
        parameters: Default::default(),
        parallelism: 2,
        use_cache: true,
        state_dir: dir.join("state"),
        python_envs_dir: dir.join("envs"),
        python: "python3".into(),
        task_timeout: None,
    }
}

#[tokio::test]
async fn shell_steps_pass_artifacts_and_typed_outputs_and_a_false_condition_skips() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_pipeline(
        PipelineFile::parse(SPEC).unwrap(),
        options(dir.path()),
        Arc::new(TokioClock),
    )
    .await
    .unwrap();
    assert_eq!(run.state, RunState::Succeeded, "{:#?}", run.tasks);
    let text = &run.task("write").unwrap().artifacts["text"][0].uri;
    assert_eq!(std::fs::read_to_string(text).unwrap(), "hello\nhello\n");
    assert_eq!(run.task("count").unwrap().outputs["n"], json!(2));
    assert_eq!(run.task("condition-1").unwrap().state, TaskState::Skipped);

    let mut more = options(dir.path());
    more.parameters.insert("word".into(), "hi".into());
    let file =
        PipelineFile::parse(&SPEC.replace("defaultValue: 2.0", "defaultValue: 3.0")).unwrap();
    let run = run_pipeline(file, more, Arc::new(TokioClock))
        .await
        .unwrap();
    assert_eq!(run.task("count").unwrap().outputs["n"], json!(3));
    assert_eq!(
        run.task("condition-1/big").unwrap().state,
        TaskState::Succeeded
    );
    let logs = run.task("condition-1/big").unwrap().logs.clone().unwrap();
    assert_eq!(
        std::fs::read_to_string(logs.join("stdout.log")).unwrap(),
        "big: 3\n"
    );
}
