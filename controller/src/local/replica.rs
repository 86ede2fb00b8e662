//! One replica process from spawn to exit: its stdout events, its stderr, its stop.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use kiln_api::load::RevisionKey;
use kiln_api::predictor_event::PredictorEvent;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStderr};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep, sleep_until, timeout};

use super::config::{Drained, Endpoint, LocalBackendConfig};
use super::logs::LogRing;

/// How often the in-flight probe is asked while draining.
/// How long the last stderr lines may take to arrive after the process exited.
const STDERR_LINGER: Duration = Duration::from_millis(250);

/// What a replica tells its revision.
#[derive(Debug)]
pub(crate) enum ReplicaEvent {
    /// The replica printed its ready line.
    Ready { id: u64, endpoint: Endpoint },
    /// The process is gone (and reaped).
    Exited {
        id: u64,
        /// True when the revision asked it to stop.
        asked: bool,
        /// What happened, for `last_error`.
        error: String,
        /// The last line it wrote on stderr.
        last_line: Option<String>,
    },
}

/// What a replica's supervisor needs.
pub(crate) struct ReplicaCtx {
    pub(crate) id: u64,
    pub(crate) revision: RevisionKey,
    pub(crate) config: Arc<LocalBackendConfig>,
    pub(crate) logs: Arc<LogRing>,
    pub(crate) events: mpsc::UnboundedSender<ReplicaEvent>,
}

/// Reads lines, replacing bytes that are not UTF-8 (a line that is not UTF-8 must not stop
/// the reading: the child would block once the pipe is full).
struct LossyLines<R> {
    reader: BufReader<R>,
    buf: Vec<u8>,
}

impl<R: tokio::io::AsyncRead + Unpin> LossyLines<R> {
    fn new(reader: R) -> Self {
        Self {
            reader: BufReader::new(reader),
            buf: Vec::new(),
        }
    }

    /// The next line without its end; `Ok(None)` at the end. Cancel safe: a partly read
    /// line stays in the buffer.
    async fn next_line(&mut self) -> std::io::Result<Option<String>> {
        let n = self.reader.read_until(b'\n', &mut self.buf).await?;
        if n == 0 && self.buf.is_empty() {
            return Ok(None);
        }
        let line = String::from_utf8_lossy(&self.buf)
            .trim_end_matches(['\n', '\r'])
            .to_owned();
        self.buf.clear();
        Ok(Some(line))
    }
}

/// Sends `signal` to the replica's process group (its pid: replicas lead their own group).
pub(crate) fn signal_group(pid: u32, signal: Signal) {
    let Ok(raw) = i32::try_from(pid) else { return };
    if let Err(err) = killpg(Pid::from_raw(raw), signal) {
        tracing::debug!(pid, %signal, %err, "signal not delivered");
    }
}

/// How the start phase ended.
enum Started {
    Ready(Endpoint),
    StopAsked,
    Exited(std::io::Result<ExitStatus>),
    Failed(String),
}

/// Supervises `child` until it exits; `stop` (sent or dropped) asks it to stop.
pub(crate) async fn supervise(
    mut child: Child,
    ctx: ReplicaCtx,
    mut stop: oneshot::Receiver<Option<Drained>>,
) {
    let pid = child.id().unwrap_or_default();
    let stderr = child
        .stderr
        .take()
        .map(|stderr| tokio::spawn(drain_stderr(stderr, pid, ctx.logs.clone(), log_file(&ctx))));
    let Some(stdout) = child.stdout.take() else {
        unreachable_stdout(&mut child, pid, &ctx).await;
        return;
    };
    let mut lines = LossyLines::new(stdout);
    let spawned = Instant::now();
    let deadline = spawned + ctx.config.ready_timeout;
    let mut ports: Option<(u16, u16)> = None;
    let mut stdout_open = true;
    let started = loop {
        tokio::select! {
            biased;
            _ = &mut stop => break Started::StopAsked,
            status = child.wait() => break Started::Exited(status),
            line = lines.next_line(), if stdout_open => match line {
                Ok(Some(line)) => match PredictorEvent::parse_line(&line) {
                    Some(PredictorEvent::Listening { http_port, grpc_port }) => {
                        tracing::debug!(pid, http_port, grpc_port, "replica listening");
                        ports = Some((http_port, grpc_port));
                    }
                    Some(PredictorEvent::Ready(_)) => match ports {
                        Some((http, grpc)) => {
                            // The predictor's own figures (download_ms, load_ms, cache_hit)
                            // with the time from spawn: what a cold start is made of.
                            tracing::info!(
                                pid,
                                spawn_to_ready_ms = spawned.elapsed().as_secs_f64() * 1000.0,
                                ready = %line,
                                "replica start"
                            );
                            break Started::Ready(Endpoint {
                            http: SocketAddr::from((Ipv4Addr::LOCALHOST, http)),
                            grpc: SocketAddr::from((Ipv4Addr::LOCALHOST, grpc)),
                            pid,
                        })
                        }
                        None => break Started::Failed("ready before listening".to_owned()),
                    },
                    None => tracing::debug!(pid, line, "replica stdout"),
                },
                Ok(None) | Err(_) => stdout_open = false,
            },
            _ = sleep_until(deadline) => break Started::Failed(format!(
                "not ready within {:?}", ctx.config.ready_timeout
            )),
        }
    };

    let (asked, error) = match started {
        Started::Ready(endpoint) => {
            let ready_at = Instant::now();
            let _ = ctx.events.send(ReplicaEvent::Ready {
                id: ctx.id,
                endpoint,
            });
            // Keep reading stdout so that the child never blocks on a full pipe.
            tokio::spawn(async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    tracing::debug!(pid, line, "replica stdout");
                }
            });
            tokio::select! {
                biased;
                asked = &mut stop => {
                    // Without the router's drain (the revision is going away), the grace.
                    let grace = ctx.config.drain_grace;
                    let drained = asked
                        .ok()
                        .flatten()
                        .unwrap_or_else(|| Box::pin(sleep(grace)));
                    stop_gracefully(&mut child, &ctx, Some(drained)).await;
                    (true, "stopped".to_owned())
                }
                status = child.wait() => (false, format!(
                    "exited ({}) after {:?} ready",
                    describe(status),
                    ready_at.elapsed()
                )),
            }
        }
        Started::StopAsked => {
            stop_gracefully(&mut child, &ctx, None).await;
            (true, "stopped before ready".to_owned())
        }
        Started::Exited(status) => (false, format!("exited before ready ({})", describe(status))),
        Started::Failed(why) => {
            signal_group(pid, Signal::SIGKILL);
            let _ = child.wait().await;
            (false, why)
        }
    };
    // Stragglers the replica left in its group (it is reaped: nothing else can be hit).
    signal_group(pid, Signal::SIGKILL);
    let last_line = match stderr {
        Some(task) => timeout(STDERR_LINGER, task)
            .await
            .ok()
            .and_then(Result::ok)
            .flatten(),
        None => None,
    };
    tracing::info!(revision = %ctx.revision, pid, asked, error, "replica exited");
    let _ = ctx.events.send(ReplicaEvent::Exited {
        id: ctx.id,
        asked,
        error,
        last_line,
    });
}

async fn unreachable_stdout(child: &mut Child, pid: u32, ctx: &ReplicaCtx) {
    signal_group(pid, Signal::SIGKILL);
    let _ = child.wait().await;
    let _ = ctx.events.send(ReplicaEvent::Exited {
        id: ctx.id,
        asked: false,
        error: "no stdout pipe".to_owned(),
        last_line: None,
    });
}

fn describe(status: std::io::Result<ExitStatus>) -> String {
    match status {
        Ok(status) => status.to_string(),
        Err(err) => format!("wait failed: {err}"),
    }
}

/// Waits for `drained` (the router's drain: its in-flight requests finished; at most
/// `drain_timeout`), then SIGTERM, SIGKILL after `drain_timeout`; returns once the child is
/// reaped. A replica that was never routed to has no drain and gets SIGTERM at once.
async fn stop_gracefully(child: &mut Child, ctx: &ReplicaCtx, drained: Option<Drained>) {
    let pid = child.id().unwrap_or_default();
    let config = &ctx.config;
    if let Some(drained) = drained {
        tokio::select! {
            finished = timeout(config.drain_timeout, drained) => if finished.is_err() {
                tracing::warn!(revision = %ctx.revision, pid, "requests still in flight after the drain timeout");
            },
            _ = child.wait() => return,
        }
    }
    tracing::debug!(pid, "SIGTERM");
    signal_group(pid, Signal::SIGTERM);
    if timeout(config.drain_timeout, child.wait()).await.is_err() {
        tracing::warn!(revision = %ctx.revision, pid, "replica ignored SIGTERM; SIGKILL");
        signal_group(pid, Signal::SIGKILL);
        let _ = child.wait().await;
    }
}

fn log_file(ctx: &ReplicaCtx) -> Option<PathBuf> {
    let dir = ctx.config.log_dir.as_ref()?;
    Some(
        dir.join(&ctx.revision.namespace)
            .join(format!("{}.log", ctx.revision.revision)),
    )
}

/// Copies stderr into the ring (and the log file); returns the last line.
async fn drain_stderr(
    stderr: ChildStderr,
    pid: u32,
    ring: Arc<LogRing>,
    file: Option<PathBuf>,
) -> Option<String> {
    let mut file = match file {
        Some(path) => open_log(&path).await,
        None => None,
    };
    let mut lines = LossyLines::new(stderr);
    let mut last = None;
    while let Ok(Some(line)) = lines.next_line().await {
        let line_with_pid = format!("[{pid}] {line}");
        // The ring first: whoever finds a line in the file (a person, a test) then finds it
        // in `kiln logs` too. The file was written first once, and a reader that saw the
        // line there could miss it in the ring for the moment between the two.
        ring.push(line_with_pid.clone());
        // Flushed line by line: tokio's file writes finish in the background otherwise.
        if let Some(out) = file.as_mut() {
            let written = out.write_all(line_with_pid.as_bytes()).await.is_ok()
                && out.write_all(b"\n").await.is_ok()
                && out.flush().await.is_ok();
            if !written {
                file = None;
            }
        }
        if !line.trim().is_empty() {
            last = Some(line);
        }
    }
    last
}

async fn open_log(path: &std::path::Path) -> Option<tokio::fs::File> {
    if let Some(dir) = path.parent()
        && let Err(err) = tokio::fs::create_dir_all(dir).await
    {
        tracing::warn!(dir = %dir.display(), %err, "cannot create the log folder");
        return None;
    }
    match tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await
    {
        Ok(file) => Some(file),
        Err(err) => {
            tracing::warn!(path = %path.display(), %err, "cannot open the log file");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_that_are_not_utf8_do_not_stop_the_reading() {
        let mut lines = LossyLines::new(&b"a\xffb\r\nsecond\nlast"[..]);
        assert_eq!(lines.next_line().await.unwrap().unwrap(), "a\u{fffd}b");
        assert_eq!(lines.next_line().await.unwrap().unwrap(), "second");
        assert_eq!(lines.next_line().await.unwrap().unwrap(), "last");
        assert_eq!(lines.next_line().await.unwrap(), None);
    }
}
