//! Pipelines compiled by the kfp SDK (2.17.3) run unchanged.

mod common;

use common::{Bench, output};
use kiln_pipelines::{CacheOutcome, RunState, TaskState};
use serde_json::json;

#[tokio::test]
async fn a_linear_pipeline_keeps_each_parameter_type_and_an_integer_stays_an_integer() {
    let b = Bench::new();
    let yaml = b.compile("typed");
    let run = b.run(&yaml, b.options(&[])).await.unwrap();
    assert_eq!(run.state, RunState::Succeeded, "{:#?}", run.tasks);
    assert_eq!(
        output(&run, "describe", "Output"),
        json!("a|3|1.5|True|[1, 2]|{'k': 1}|int")
    );
    assert_eq!(output(&run, "double", "Output"), json!(6));
    assert_eq!(
        output(&run, "shout", "Output"),
        json!("A|3|1.5|TRUE|[1, 2]|{'K': 1}|INT!!!!!!")
    );

    let params = [
        ("s", "b c"),
        ("i", "7"),
        ("f", "2.25"),
        ("b", "false"),
        ("l", "[3, 4.5]"),
        ("d", r#"{"x": [1]}"#),
    ];
    let run = b.run(&yaml, b.options(&params)).await.unwrap();
    assert_eq!(
        output(&run, "describe", "Output"),
        json!("b c|7|2.25|False|[3, 4.5]|{'x': [1]}|int")
    );
    assert_eq!(output(&run, "double", "Output"), json!(14));
}

#[tokio::test]
async fn a_parameter_of_the_wrong_type_or_name_is_refused_before_anything_runs() {
    let b = Bench::new();
    let yaml = b.compile("typed");
    let err = b
        .run(&yaml, b.options(&[("i", "seven")]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--param i"), "{err}");
    let err = b.run(&yaml, b.options(&[("nope", "1")])).await.unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
    assert!(!b.path("state/runs").exists(), "a run started");
}

#[tokio::test]
async fn artifacts_pass_between_steps_and_if_elif_else_takes_one_branch() {
    let b = Bench::new();
    let yaml = b.compile("artifacts");
    let run = b.run(&yaml, b.options(&[])).await.unwrap();
    assert_eq!(run.state, RunState::Succeeded, "{:#?}", run.tasks);
    assert_eq!(output(&run, "train", "Output"), json!(5));
    let made = &run.task("make").unwrap().artifacts["data"][0];
    assert_eq!(made.metadata["rows"], json!(5));
    assert!(
        made.uri
            .starts_with(&run.pipeline_root.to_string_lossy().into_owned())
    );
    let model = &run.task("train").unwrap().artifacts["model"][0].uri;
    assert_eq!(std::fs::read_to_string(model).unwrap(), "model of 5 rows");
    // The container component: Concat built the script, IfPresent added `--label rows`.
    assert_eq!(output(&run, "inspect", "note"), json!("rows=4"));
    let states: Vec<(String, TaskState)> = run
        .tasks
        .iter()
        .filter(|t| t.path.starts_with("condition-branches-1/"))
        .map(|t| (t.path.clone(), t.state))
        .collect();
    assert!(
        states.contains(&(
            "condition-branches-1/condition-2".into(),
            TaskState::Skipped
        )),
        "{states:?}"
    );
    assert!(
        states.contains(&(
            "condition-branches-1/condition-4".into(),
            TaskState::Skipped
        )),
        "{states:?}"
    );
    assert_eq!(
        output(&run, "condition-branches-1/condition-3/branch-2", "Output"),
        json!("five")
    );

    let run = b.run(&yaml, b.options(&[("rows", "9")])).await.unwrap();
    assert_eq!(
        output(&run, "condition-branches-1/condition-2/branch", "Output"),
        json!("big")
    );
    let run = b.run(&yaml, b.options(&[("rows", "2")])).await.unwrap();
    assert_eq!(
        output(&run, "condition-branches-1/condition-4/branch-3", "Output"),
        json!("small")
    );
}

/// The most intervals open at one time, from `start T`/`end T` lines.
fn most_at_once(log: &str) -> usize {
    let mut events: Vec<(f64, i32)> = log
        .lines()
        .map(|l| {
            let mut w = l.split_whitespace();
            let kind = w.next().unwrap();
            let t: f64 = w.next().unwrap().parse().unwrap();
            (t, if kind == "start" { 1 } else { -1 })
        })
        .collect();
    events.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (mut now, mut most) = (0, 0);
    for (_, d) in events {
        now += d;
        most = most.max(now);
    }
    most as usize
}

#[tokio::test]
async fn parallel_for_respects_its_limit_nests_and_collects_integers_in_item_order() {
    let b = Bench::new();
    let yaml = b.compile("loops");
    let log = b.path("square.log");
    let mut options = b.options(&[("log", log.to_str().unwrap())]);
    options.parallelism = 8;
    let run = b.run(&yaml, options).await.unwrap();
    assert_eq!(run.state, RunState::Succeeded, "{:#?}", run.tasks);
    let log = std::fs::read_to_string(&log).unwrap();
    assert_eq!(log.lines().count(), 10);
    assert_eq!(most_at_once(&log), 2, "parallelism=2 was not kept:\n{log}");
    assert_eq!(output(&run, "total", "Output"), json!(1 + 4 + 9 + 16 + 25));
    assert_eq!(
        output(&run, "show", "Output"),
        json!("[[17, 18], [27, 28]]")
    );
}

#[tokio::test]
async fn the_whole_run_parallelism_bounds_steps_across_loops() {
    let b = Bench::new();
    let yaml = b.compile("loops");
    let log = b.path("square.log");
    let mut options = b.options(&[("log", log.to_str().unwrap())]);
    options.parallelism = 1;
    let run = b.run(&yaml, options).await.unwrap();
    assert_eq!(run.state, RunState::Succeeded, "{:#?}", run.tasks);
    assert_eq!(most_at_once(&std::fs::read_to_string(&log).unwrap()), 1);
}

#[tokio::test]
async fn an_exit_handler_runs_after_a_failure_and_a_flaky_step_succeeds_on_its_third_try() {
    let b = Bench::new();
    let yaml = b.compile("exit_retry");
    let counter = b.path("counter");
    let run = b
        .run(&yaml, b.options(&[("counter", counter.to_str().unwrap())]))
        .await
        .unwrap();
    assert_eq!(run.state, RunState::Failed);
    let failed = run.task("exit-handler-1/fail").unwrap();
    assert_eq!(failed.state, TaskState::Failed);
    assert_eq!(failed.exit_code, Some(3));
    assert_eq!(output(&run, "report", "Output"), json!("FAILED"));

    let flaky = run.task("flaky").unwrap();
    assert_eq!(flaky.state, TaskState::Succeeded, "{flaky:#?}");
    assert_eq!(flaky.attempts, 3);
    assert_eq!(flaky.outputs["Output"], json!(3));
    let times: Vec<f64> = std::fs::read_to_string(&counter)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(times.len(), 3);
    // backoff 1s, factor 2: at least 1 s before the second try and 2 s before the third.
    assert!(times[1] - times[0] >= 1.0, "{times:?}");
    assert!(times[2] - times[1] >= 2.0, "{times:?}");
}

fn states(run: &kiln_pipelines::Run) -> Vec<(String, TaskState)> {
    let mut s: Vec<_> = run
        .tasks
        .iter()
        .map(|t| (t.path.clone(), t.state))
        .collect();
    s.sort_by(|a, b| a.0.cmp(&b.0));
    s
}

#[tokio::test]
async fn a_rerun_is_served_from_the_cache_and_one_changed_byte_reruns_exactly_what_reads_it() {
    let b = Bench::new();
    let yaml = b.compile("cached");
    let source = b.path("source.txt");
    let marker = b.path("marker");
    std::fs::write(&source, "hello world").unwrap();
    let params = [
        ("source", source.to_str().unwrap()),
        ("marker", marker.to_str().unwrap()),
    ];
    let run = b.run(&yaml, b.options(&params)).await.unwrap();
    assert_eq!(run.state, RunState::Succeeded, "{:#?}", run.tasks);
    assert_eq!(output(&run, "count", "Output"), json!(11));
    assert_eq!(std::fs::read_to_string(&marker).unwrap().lines().count(), 3);
    assert_eq!(
        run.task("count").unwrap().cache,
        CacheOutcome::Miss(vec!["no earlier run of this task".into()])
    );

    // Same inputs: nothing runs.
    let run = b.run(&yaml, b.options(&params)).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap().lines().count(),
        3,
        "a step ran"
    );
    for task in ["load", "count", "greet"] {
        assert_eq!(run.task(task).unwrap().state, TaskState::Cached, "{task}");
    }
    assert_eq!(output(&run, "count", "Output"), json!(11));
    let data = &run.task("load").unwrap().artifacts["data"][0].uri;
    assert_eq!(
        std::fs::read_to_string(data).unwrap(),
        "hello world",
        "the cached artifact was not copied to this run"
    );

    // One byte of the imported file: load and count run again, greet does not.
    std::fs::write(&source, "hello worle").unwrap();
    std::fs::write(&marker, "").unwrap();
    let run = b.run(&yaml, b.options(&params)).await.unwrap();
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "load\ncount\n");
    assert_eq!(
        run.task("load").unwrap().cache,
        CacheOutcome::Miss(vec!["input artifact `raw` changed".into()])
    );
    assert_eq!(
        run.task("count").unwrap().cache,
        CacheOutcome::Miss(vec!["input artifact `data` changed".into()])
    );
    assert_eq!(run.task("greet").unwrap().state, TaskState::Cached);

    // A changed parameter reruns its one step; --no-cache runs everything.
    std::fs::write(&marker, "").unwrap();
    let mut changed = params.to_vec();
    changed.push(("name", "you"));
    let run = b.run(&yaml, b.options(&changed)).await.unwrap();
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "greet\n");
    assert_eq!(
        run.task("greet").unwrap().cache,
        CacheOutcome::Miss(vec!["input parameter `name` changed".into()])
    );
    std::fs::write(&marker, "").unwrap();
    let mut options = b.options(&changed);
    options.use_cache = false;
    let run = b.run(&yaml, options).await.unwrap();
    assert_eq!(std::fs::read_to_string(&marker).unwrap().lines().count(), 3);
    assert!(
        states(&run).iter().all(|(_, s)| *s == TaskState::Succeeded),
        "{:?}",
        states(&run)
    );
}

#[tokio::test]
async fn a_task_with_caching_disabled_always_runs() {
    let b = Bench::new();
    let source = b.path("source.txt");
    let marker = b.path("marker");
    std::fs::write(&source, "abc").unwrap();
    // What `set_caching_options(False)` compiles to: `cachingOptions: {}`.
    let yaml = b.compile("cached").replacen("cachingOptions:\n          enableCache: true\n        componentRef:\n          name: comp-greet", "cachingOptions: {}\n        componentRef:\n          name: comp-greet", 1);
    assert!(yaml.contains("cachingOptions: {}"));
    let params = [
        ("source", source.to_str().unwrap()),
        ("marker", marker.to_str().unwrap()),
    ];
    b.run(&yaml, b.options(&params)).await.unwrap();
    std::fs::write(&marker, "").unwrap();
    let run = b.run(&yaml, b.options(&params)).await.unwrap();
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "greet\n");
    assert_eq!(run.task("greet").unwrap().cache, CacheOutcome::Disabled);
}

/// A clock that records the delays asked of it and does not wait.
#[derive(Default)]
struct RecordingClock(parking_lot::Mutex<Vec<std::time::Duration>>);

impl kiln_pipelines::Clock for RecordingClock {
    fn sleep(&self, delay: std::time::Duration) -> futures::future::BoxFuture<'static, ()> {
        self.0.lock().push(delay);
        Box::pin(async {})
    }
}

#[tokio::test]
async fn retry_back_off_goes_through_the_injected_clock() {
    let b = Bench::new();
    let yaml = b.compile("exit_retry");
    let counter = b.path("counter");
    let clock = std::sync::Arc::new(RecordingClock::default());
    let file = kiln_pipelines::PipelineFile::parse(&yaml).unwrap();
    let options = b.options(&[("counter", counter.to_str().unwrap())]);
    let run = kiln_pipelines::run_pipeline(file, options, clock.clone())
        .await
        .unwrap();
    assert_eq!(run.task("flaky").unwrap().attempts, 3);
    let s = std::time::Duration::from_secs;
    assert_eq!(*clock.0.lock(), [s(1), s(2)]);
}

#[tokio::test]
async fn sub_dags_one_of_loops_over_dicts_and_ignore_upstream_failure() {
    let b = Bench::new();
    let yaml = b.compile("composed");
    let run = b.run(&yaml, b.options(&[])).await.unwrap();
    // `boom` fails the run; everything else still ran.
    assert_eq!(run.state, RunState::Failed);
    assert_eq!(run.task("boom").unwrap().state, TaskState::Failed);
    assert_eq!(output(&run, "after-boom", "Output"), json!("ran anyway"));
    // A pipeline used as a component: its output comes out of its DAG.
    assert_eq!(output(&run, "inner/add", "Output"), json!(13));
    assert_eq!(output(&run, "inner", "Output"), json!(13));
    assert_eq!(run.task("echo").unwrap().state, TaskState::Succeeded);
    // dsl.OneOf: the branch that ran.
    assert_eq!(output(&run, "echo-4", "Output"), json!("three"));
    // A loop over dicts passes `item.label` through parseJson(string_value)["label"].
    assert_eq!(output(&run, "join", "Output"), json!("x,y"));
}

#[tokio::test]
async fn the_platform_specs_deadline_kills_a_step_that_runs_past_it() {
    let b = Bench::new();
    let pidfile = b.path("pid");
    // What `kfp.kubernetes.set_timeout(task, 1)` writes.
    let yaml = format!(
        "{}---\nplatforms:\n  kubernetes:\n    deploymentSpec:\n      executors:\n        exec-sleep:\n          activeDeadlineSeconds: 1\n",
        b.compile("sleeper")
    );
    let started = std::time::Instant::now();
    let run = b
        .run(&yaml, b.options(&[("pidfile", pidfile.to_str().unwrap())]))
        .await
        .unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    let task = run.task("sleep").unwrap();
    assert_eq!(task.state, TaskState::Failed);
    assert!(
        task.error.as_deref().unwrap().contains("deadline of 1s"),
        "{task:#?}"
    );
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty()
            || stat
                .rsplit(')')
                .next()
                .unwrap()
                .trim_start()
                .starts_with('Z'),
        "{pid} still runs"
    );
}

#[tokio::test]
async fn lineage_leads_from_an_artifact_back_to_the_file_the_pipeline_imported() {
    let b = Bench::new();
    let yaml = b.compile("cached");
    let source = b.path("source.txt");
    let marker = b.path("marker");
    std::fs::write(&source, "abc").unwrap();
    let store = std::sync::Arc::new(kiln_pipelines::Store::open(b.path("runs.db")).unwrap());
    let params = [
        ("source", source.to_str().unwrap()),
        ("marker", marker.to_str().unwrap()),
    ];
    let file = kiln_pipelines::PipelineFile::parse(&yaml).unwrap();
    let run = kiln_pipelines::run_pipeline_observed(
        file,
        b.options(&params),
        std::sync::Arc::new(kiln_pipelines::TokioClock),
        store.clone(),
    )
    .await
    .unwrap();
    let data = run.task("load").unwrap().artifacts["data"][0].uri.clone();

    let lineage = store.lineage(&format!("file://{data}")).unwrap().unwrap();
    assert_eq!(lineage.type_name, "system.Dataset");
    assert_eq!(
        lineage.digest,
        kiln_pipelines::digest::content_digest(std::path::Path::new(&data)).unwrap()
    );
    let load = lineage.produced_by.unwrap();
    assert_eq!(
        (
            load.run_id.as_str(),
            load.pipeline.as_str(),
            load.task.as_str()
        ),
        (run.id.as_str(), "cached", "load")
    );
    assert_eq!(load.parameters["marker"], json!(marker.to_str().unwrap()));
    let (name, raw) = &load.inputs[0];
    assert_eq!(name, "raw");
    assert_eq!(raw.uri, source.to_str().unwrap());
    assert_eq!(
        raw.digest,
        kiln_pipelines::digest::content_digest(&source).unwrap()
    );
    let importer = raw.produced_by.as_ref().unwrap();
    assert_eq!(importer.task, "importer");
    assert!(
        importer.inputs.is_empty(),
        "the imported file is a first input"
    );
    assert!(store.lineage("/nowhere").unwrap().is_none());
}
