//! The model worker: one thread that owns the model and runs it, joining concurrent
//! requests into one batch along the first dimension when the model allows it.
//!
//! A batch closes when it holds `max_batch_size` rows, when its first request has waited
//! `max_batch_delay` (Triton's `max_queue_delay`), or as soon as no other request is on its
//! way: the protocol front ends count requests from arrival until they are queued
//! ([`Arrivals`]), so a lone caller never waits out the delay. A request that does not fit
//! (too many rows, or other dimensions that differ) waits for the next batch.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kiln_api::protocol::Tensor;
use tokio::sync::oneshot;

use crate::error::ServeError;
use crate::job_queue::JobQueue;
use crate::metrics::Metrics;
use crate::model::{InferError, Model};
use crate::one_cpu;

/// How requests are joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPolicy {
    /// Most rows in one run; 1 turns batching off.
    pub max_batch_size: usize,
    /// Longest a request waits for others to join it.
    pub max_batch_delay: Duration,
}

/// Counts requests that have arrived but are not queued yet (being read or decoded).
#[derive(Debug, Clone, Default)]
pub struct Arrivals(Arc<AtomicUsize>);

impl Arrivals {
    /// Marks one request as on its way until the returned guard is dropped.
    pub fn arrive(&self) -> Arrival {
        self.0.fetch_add(1, Ordering::SeqCst);
        Arrival(self.0.clone())
    }

    /// Requests on their way now.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// One request on its way to the model worker; dropping it (once queued, or on an error)
/// takes it off the count.
#[derive(Debug)]
pub struct Arrival(Arc<AtomicUsize>);

impl Drop for Arrival {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Longest the batcher sleeps at a time while requests are on their way. Senders wake it
/// earlier (see [`JobQueue`]); this only bounds the wait for one that failed before queueing.
const ARRIVAL_POLL: Duration = Duration::from_micros(100);

struct Job {
    inputs: Vec<Tensor>,
    rows: usize,
    enqueued: Instant,
    reply: oneshot::Sender<Reply>,
}

/// What a caller hears back about its job.
#[derive(Debug)]
enum Reply {
    /// The model ran it.
    Ran(Result<Vec<Tensor>, InferError>),
    /// The model thread ended before taking it: it never reached the model (503).
    NotRun,
}

/// A handle to the model worker; cheap to clone. The worker thread stops once every handle
/// is dropped.
#[derive(Clone)]
pub struct Worker {
    queue: Arc<Sender>,
    arrivals: Arrivals,
}

/// The handles' side of the queue: closes it when the last [`Worker`] handle goes.
struct Sender(Arc<JobQueue<Job>>);

impl Drop for Sender {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl Worker {
    /// Starts the worker thread, which owns `model` until every handle is dropped. Must be
    /// called inside a Tokio runtime (a task there completes the callers of each batch).
    pub fn spawn(
        model: Box<dyn Model>,
        policy: BatchPolicy,
        metrics: Metrics,
        arrivals: Arrivals,
    ) -> Worker {
        let queue = JobQueue::new(policy.max_batch_size);
        let batchable = policy.max_batch_size > 1 && model.signature().is_batchable();
        let thread_queue = queue.clone();
        let thread_arrivals = arrivals.clone();
        let replies = Replies::spawn();
        std::thread::Builder::new()
            .name("kiln-model".into())
            .spawn(move || {
                run(
                    model,
                    &thread_queue,
                    policy,
                    batchable,
                    &metrics,
                    &thread_arrivals,
                    replies,
                )
            })
            .expect("spawning the model thread");
        Worker {
            queue: Arc::new(Sender(queue)),
            arrivals,
        }
    }

    /// Runs validated inputs (in signature order) and returns every output. `arrival` is
    /// released once the request is queued.
    pub async fn infer(
        &self,
        inputs: Vec<Tensor>,
        arrival: Option<Arrival>,
    ) -> Result<Vec<Tensor>, ServeError> {
        let rows = inputs
            .first()
            .and_then(|t| t.shape.first())
            .map_or(1, |&d| d.max(0) as usize);
        let (reply, answer) = oneshot::channel();
        let job = Job {
            inputs,
            rows,
            enqueued: Instant::now(),
            reply,
        };
        let arrivals = &self.arrivals;
        self.queue
            .0
            .push(job, rows, move || {
                drop(arrival);
                arrivals.count() == 0
            })
            .map_err(|_| ServeError::Unavailable("the model worker has stopped".into()))?;
        match answer.await {
            Ok(Reply::Ran(result)) => result.map_err(|e| ServeError::Internal(e.to_string())),
            Ok(Reply::NotRun) => Err(ServeError::Unavailable(
                "the model worker has stopped".into(),
            )),
            Err(_) => Err(ServeError::Internal(
                "the model worker stopped during inference".into(),
            )),
        }
    }
}

fn run(
    mut model: Box<dyn Model>,
    queue: &JobQueue<Job>,
    policy: BatchPolicy,
    batchable: bool,
    metrics: &Metrics,
    arrivals: &Arrivals,
    replies: Replies,
) {
    let _stopped = StopServing(queue);
    while let Some((first, mut rows)) = queue.first() {
        let deadline = first.enqueued + policy.max_batch_delay;
        let dims = batch_dims(&first);
        let mut batch = vec![first];
        let mut yielded = false;
        while batchable && rows < policy.max_batch_size {
            let refused = queue.take_while(
                |job, job_rows| {
                    let fits = rows + job_rows <= policy.max_batch_size && joinable(&dims, job);
                    if fits {
                        rows += job_rows;
                    }
                    fits
                },
                &mut batch,
            );
            let now = Instant::now();
            // Full, refused a job, waited long enough, or nobody else on the way: run it.
            if refused || rows >= policy.max_batch_size || now >= deadline {
                break;
            }
            if arrivals.count() == 0 {
                if yielded {
                    break;
                }
                // Let a front end that this thread preempted queue what it already read
                // (on one core, the wake-up of this thread interrupts it mid-stream).
                yielded = true;
                std::thread::yield_now();
                continue;
            }
            queue.wait_for_rows(
                policy.max_batch_size - rows,
                deadline.min(now + ARRIVAL_POLL),
                || arrivals.count() == 0,
            );
        }
        let started = Instant::now();
        for job in &batch {
            metrics
                .queue_time
                .observe(started.duration_since(job.enqueued).as_secs_f64());
        }
        run_batch(&mut *model, batch, metrics, &replies);
        one_cpu::hand_over_when_running_low(|| queue.queued_jobs());
    }
}

/// When the model thread ends, even by a panic inside the runtime: the queue refuses new
/// requests (503) and the queued ones are dropped, which answers their callers with an error
/// instead of leaving them waiting.
struct StopServing<'a>(&'a JobQueue<Job>);

impl Drop for StopServing<'_> {
    fn drop(&mut self) {
        // Answered, not just dropped: a job queued while a crashed batch unwound never
        // reached the model, and its caller hears 503, not the crashed batch's 500.
        for job in self.0.close_and_take_all() {
            let _ = job.reply.send(Reply::NotRun);
        }
    }
}

/// The dimensions after the first (batch) one, of each input: jobs join when theirs match.
fn batch_dims(job: &Job) -> Vec<Vec<i64>> {
    job.inputs
        .iter()
        .map(|t| t.shape.get(1..).unwrap_or_default().to_vec())
        .collect()
}

fn joinable(dims: &[Vec<i64>], job: &Job) -> bool {
    dims.len() == job.inputs.len()
        && dims
            .iter()
            .zip(&job.inputs)
            .all(|(d, t)| t.shape.get(1..).unwrap_or_default() == d.as_slice())
}

fn run_batch(model: &mut dyn Model, mut batch: Vec<Job>, metrics: &Metrics, replies: &Replies) {
    let total_rows: usize = batch.iter().map(|j| j.rows).sum();
    metrics.batch_size.observe(total_rows as f64);
    if batch.len() == 1 {
        let job = batch.pop().expect("one job");
        let result = model.infer(job.inputs);
        let _ = job.reply.send(Reply::Ran(result));
        return;
    }
    let inputs = concat_inputs(&batch, total_rows);
    let result = model
        .infer(inputs)
        .and_then(|outputs| split_outputs(outputs, &batch, total_rows));
    let answers: Vec<Answer> = match result {
        Ok(per_job) => batch
            .into_iter()
            .zip(per_job)
            .map(|(job, outputs)| (job.reply, Reply::Ran(Ok(outputs))))
            .collect(),
        Err(e) => batch
            .into_iter()
            .map(|job| (job.reply, Reply::Ran(Err(InferError(e.0.clone())))))
            .collect(),
    };
    replies.deliver(answers);
}

/// One caller's answer: where it goes, and what it is.
type Answer = (oneshot::Sender<Reply>, Reply);

/// Hands a batch's answers to a task on the async runtime, which completes each caller.
///
/// Completing the callers from the model thread would wake the runtime once per caller,
/// and on a predictor with few cores each wake-up lets the runtime preempt the model thread
/// to answer that one caller: a context switch per row. One hand-off per batch wakes it
/// once.
struct Replies(tokio::sync::mpsc::UnboundedSender<Vec<Answer>>);

impl Replies {
    /// Starts the task that completes the callers; must run inside a Tokio runtime.
    fn spawn() -> Replies {
        let (sender, mut batches) = tokio::sync::mpsc::unbounded_channel::<Vec<Answer>>();
        tokio::spawn(async move {
            while let Some(answers) = batches.recv().await {
                complete(answers);
            }
        });
        Replies(sender)
    }

    fn deliver(&self, answers: Vec<Answer>) {
        // The task is gone only when the runtime is shutting down: answer from here.
        if let Err(tokio::sync::mpsc::error::SendError(answers)) = self.0.send(answers) {
            complete(answers);
        }
    }
}

fn complete(answers: Vec<Answer>) {
    for (caller, result) in answers {
        let _ = caller.send(result);
    }
}

fn concat_inputs(batch: &[Job], total_rows: usize) -> Vec<Tensor> {
    let template = &batch[0].inputs;
    template
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut data =
                BytesMut::with_capacity(batch.iter().map(|j| j.inputs[i].data.len()).sum());
            for job in batch {
                data.extend_from_slice(&job.inputs[i].data);
            }
            let mut shape = t.shape.clone();
            shape[0] = total_rows as i64;
            Tensor {
                name: t.name.clone(),
                datatype: t.datatype,
                shape,
                data: data.freeze(),
            }
        })
        .collect()
}

fn split_outputs(
    outputs: Vec<Tensor>,
    batch: &[Job],
    total_rows: usize,
) -> Result<Vec<Vec<Tensor>>, InferError> {
    let mut per_job: Vec<Vec<Tensor>> = batch
        .iter()
        .map(|_| Vec::with_capacity(outputs.len()))
        .collect();
    for out in outputs {
        if out.shape.first().copied() != Some(total_rows as i64) || total_rows == 0 {
            return Err(InferError(format!(
                "output '{}' has shape {:?}, which does not follow the batch of {total_rows} rows",
                out.name, out.shape
            )));
        }
        let row_bytes = out.data.len() / total_rows;
        let mut offset = 0;
        for (job, outputs) in batch.iter().zip(per_job.iter_mut()) {
            let len = job.rows * row_bytes;
            let mut shape = out.shape.clone();
            shape[0] = job.rows as i64;
            outputs.push(Tensor {
                name: out.name.clone(),
                datatype: out.datatype,
                shape,
                data: Bytes::slice(&out.data, offset..offset + len),
            });
            offset += len;
        }
    }
    Ok(per_job)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Signature, TensorSpec};
    use kiln_api::protocol::DataType;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Doubles its input and counts the runs and the largest batch.
    struct Doubler {
        signature: Signature,
        runs: Arc<AtomicUsize>,
        largest: Arc<AtomicUsize>,
    }

    impl Model for Doubler {
        fn signature(&self) -> &Signature {
            &self.signature
        }
        fn platform(&self) -> &'static str {
            "test"
        }
        fn infer(&mut self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, InferError> {
            std::thread::sleep(Duration::from_millis(5));
            self.runs.fetch_add(1, Ordering::SeqCst);
            self.largest
                .fetch_max(inputs[0].shape[0] as usize, Ordering::SeqCst);
            let values: Vec<f32> = bytemuck::pod_collect_to_vec(&inputs[0].data);
            let doubled: Vec<u8> = values
                .iter()
                .flat_map(|v| (v * 2.0).to_le_bytes())
                .collect();
            Ok(vec![Tensor {
                name: "y".into(),
                datatype: DataType::Fp32,
                shape: inputs[0].shape.clone(),
                data: doubled.into(),
            }])
        }
    }

    fn doubler() -> (Box<dyn Model>, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let runs = Arc::new(AtomicUsize::new(0));
        let largest = Arc::new(AtomicUsize::new(0));
        let spec = |n: &str| TensorSpec {
            name: n.into(),
            datatype: DataType::Fp32,
            shape: vec![-1, 2],
        };
        let model = Doubler {
            signature: Signature {
                inputs: vec![spec("x")],
                outputs: vec![spec("y")],
            },
            runs: runs.clone(),
            largest: largest.clone(),
        };
        (Box::new(model), runs, largest)
    }

    fn input(rows: usize, base: f32) -> Vec<Tensor> {
        let data: Vec<u8> = (0..rows * 2)
            .flat_map(|i| (base + i as f32).to_le_bytes())
            .collect();
        vec![Tensor {
            name: "x".into(),
            datatype: DataType::Fp32,
            shape: vec![rows as i64, 2],
            data: data.into(),
        }]
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_are_batched_and_each_gets_its_own_rows() {
        let (model, runs, largest) = doubler();
        let policy = BatchPolicy {
            max_batch_size: 16,
            max_batch_delay: Duration::from_millis(50),
        };
        let arrivals = Arrivals::default();
        let worker = Worker::spawn(model, policy, Metrics::new("t"), arrivals.clone());
        // All twelve are on their way before the first is queued, as under real load.
        let on_the_way: Vec<Arrival> = (0..12).map(|_| arrivals.arrive()).collect();
        let calls = on_the_way.into_iter().enumerate().map(|(i, arrival)| {
            let worker = worker.clone();
            let rows = 1 + i % 2;
            async move {
                let out = worker
                    .infer(input(rows, i as f32 * 100.0), Some(arrival))
                    .await
                    .unwrap();
                (i, rows, out)
            }
        });
        for (i, rows, out) in futures::future::join_all(calls).await {
            assert_eq!(out[0].shape, vec![rows as i64, 2]);
            let values: Vec<f32> = bytemuck::pod_collect_to_vec(&out[0].data);
            let expected: Vec<f32> = (0..rows * 2)
                .map(|k| (i as f32 * 100.0 + k as f32) * 2.0)
                .collect();
            assert_eq!(values, expected, "caller {i} got someone else's rows");
        }
        assert!(runs.load(Ordering::SeqCst) < 12, "requests were not joined");
        assert!(largest.load(Ordering::SeqCst) <= 16);
    }

    /// A model whose runtime panics.
    struct Panicking(Signature);

    impl Model for Panicking {
        fn signature(&self) -> &Signature {
            &self.0
        }
        fn platform(&self) -> &'static str {
            "test"
        }
        fn infer(&mut self, _: Vec<Tensor>) -> Result<Vec<Tensor>, InferError> {
            panic!("the runtime crashed");
        }
    }

    #[tokio::test]
    async fn a_crashed_model_thread_answers_every_caller_with_an_error() {
        let (doubler, _, _) = doubler();
        let model = Box::new(Panicking(doubler.signature().clone()));
        let policy = BatchPolicy {
            max_batch_size: 1,
            max_batch_delay: Duration::ZERO,
        };
        let worker = Worker::spawn(model, policy, Metrics::new("t"), Arrivals::default());
        let limit = Duration::from_secs(10);
        let first = tokio::time::timeout(limit, worker.infer(input(1, 0.0), None)).await;
        assert!(
            matches!(first, Ok(Err(ServeError::Internal(_)))),
            "{first:?}"
        );
        let later = tokio::time::timeout(limit, worker.infer(input(1, 0.0), None)).await;
        assert!(
            matches!(later, Ok(Err(ServeError::Unavailable(_)))),
            "{later:?}"
        );
    }

    #[tokio::test]
    async fn without_batching_every_request_runs_alone() {
        let (model, runs, largest) = doubler();
        let policy = BatchPolicy {
            max_batch_size: 1,
            max_batch_delay: Duration::ZERO,
        };
        let worker = Worker::spawn(model, policy, Metrics::new("t"), Arrivals::default());
        let calls = (0..4).map(|i| {
            let worker = worker.clone();
            async move { worker.infer(input(1, i as f32), None).await.unwrap() }
        });
        futures::future::join_all(calls).await;
        assert_eq!(runs.load(Ordering::SeqCst), 4);
        assert_eq!(largest.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_lone_request_does_not_wait_out_the_batch_delay() {
        let (model, runs, _) = doubler();
        let policy = BatchPolicy {
            max_batch_size: 16,
            max_batch_delay: Duration::from_secs(30),
        };
        let arrivals = Arrivals::default();
        let worker = Worker::spawn(model, policy, Metrics::new("t"), arrivals.clone());
        let started = Instant::now();
        let arrival = arrivals.arrive();
        worker.infer(input(1, 0.0), Some(arrival)).await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "waited for a batch nobody else would join"
        );
    }
}
