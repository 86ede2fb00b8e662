//! Kubeflow Pipelines v2 on one machine. A pipeline compiled by the `kfp` SDK
//! (`kfp.compiler.Compiler`, kfp 2.17) is read as written ([`spec`]), checked for anything Kiln
//! cannot honour ([`validate`]), and run: each container executor becomes a local process that
//! gets KFP's ExecutorInput, artifacts are files under the pipeline root, and the DAG runs with
//! KFP's control flow (conditions, loops, fan-in, exit handlers, retries) and a content-keyed
//! cache.

pub mod cache;
pub mod cel;
pub mod clock;
pub mod digest;
pub mod executor_input;
pub mod lineage;
pub mod placeholder;
pub mod process;
pub mod python_env;
pub mod retry;
pub mod run;
pub mod spec;
pub mod store;
pub mod validate;
pub mod value;

pub use clock::{Clock, TokioClock};
pub use run::{
    CacheOutcome, NoObserver, Observer, Run, RunOptions, RunStart, RunState, StartError, TaskKind,
    TaskRecord, TaskState, run_pipeline, run_pipeline_observed,
};
pub use spec::{ParseError, PipelineFile};
pub use store::Store;
