//! One step as a local process: its own process group (so everything it starts can be stopped
//! together), stdout and stderr to files, an optional deadline. Dropping the future (a
//! cancelled run) kills the whole group: no orphans.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// What to run.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    /// `argv[0]` and the rest.
    pub argv: Vec<String>,
    /// Variables added to the environment.
    pub env: Vec<(String, OsString)>,
    /// The working folder.
    pub cwd: PathBuf,
    /// Where stdout goes.
    pub stdout: PathBuf,
    /// Where stderr goes.
    pub stderr: PathBuf,
    /// Killed after this long.
    pub timeout: Option<Duration>,
}

/// How the process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It exited (or was killed by a signal) on its own.
    Status(ExitStatus),
    /// It ran past its deadline and was killed.
    TimedOut(Duration),
}

/// Kills the process group when dropped, unless the process was reaped.
struct GroupGuard {
    pgid: Option<i32>,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
    }
}

/// Runs `spec` to its end.
pub async fn run(spec: &ProcessSpec) -> std::io::Result<Exit> {
    let (program, args) = spec.argv.split_first().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "the command is empty")
    })?;
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(open(&spec.stdout)?)
        .stderr(open(&spec.stderr)?)
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command.spawn()?;
    let mut guard = GroupGuard {
        pgid: child.id().and_then(|id| i32::try_from(id).ok()),
    };
    let status = match spec.timeout {
        None => child.wait().await?,
        Some(limit) => match tokio::time::timeout(limit, child.wait()).await {
            Ok(status) => status?,
            Err(_) => {
                drop(guard);
                let _ = child.wait().await;
                return Ok(Exit::TimedOut(limit));
            }
        },
    };
    // The leader is gone; anything it left running in its group goes too.
    if let Some(pgid) = guard.pgid.take() {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }
    Ok(Exit::Status(status))
}

fn open(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::File::create(path)
}

/// The last `max` bytes of a file, as text.
pub fn tail(path: &Path, max: usize) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let from = bytes.len().saturating_sub(max);
    String::from_utf8_lossy(&bytes[from..]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &Path, script: &str, timeout: Option<Duration>) -> ProcessSpec {
        ProcessSpec {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            env: vec![("GREETING".into(), "hello".into())],
            cwd: dir.to_path_buf(),
            stdout: dir.join("out.log"),
            stderr: dir.join("err.log"),
            timeout,
        }
    }

    /// Running, or stopped, but not a zombie waiting to be reaped.
    fn alive(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
        })
    }

    #[tokio::test]
    async fn output_goes_to_files_and_the_status_comes_back() {
        let dir = tempfile::tempdir().unwrap();
        let exit = run(&spec(
            dir.path(),
            "echo $GREETING; echo oops >&2; exit 3",
            None,
        ))
        .await
        .unwrap();
        assert!(matches!(exit, Exit::Status(s) if s.code() == Some(3)));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("out.log")).unwrap(),
            "hello\n"
        );
        assert_eq!(tail(&dir.path().join("err.log"), 100), "oops\n");
    }

    #[tokio::test]
    async fn a_deadline_kills_the_step_and_what_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let script = "sleep 30 & echo $! > child.pid; wait";
        let exit = run(&spec(dir.path(), script, Some(Duration::from_millis(500))))
            .await
            .unwrap();
        assert_eq!(exit, Exit::TimedOut(Duration::from_millis(500)));
        let pid: i32 = std::fs::read_to_string(dir.path().join("child.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // SIGKILL went to the whole group; the kernel takes a moment to finish it off.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while alive(pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!alive(pid), "the grandchild {pid} outlived its step");
    }

    #[tokio::test]
    async fn a_cancelled_step_leaves_no_process_behind() {
        let dir = tempfile::tempdir().unwrap();
        let script = "sleep 30 & echo $! > child.pid; wait";
        let s = spec(dir.path(), script, None);
        let pid_file = dir.path().join("child.pid");
        let waited = tokio::time::timeout(Duration::from_secs(10), async {
            let running = run(&s);
            tokio::pin!(running);
            loop {
                tokio::select! {
                    _ = &mut running => panic!("the step ended by itself"),
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {
                        if std::fs::read_to_string(&pid_file).is_ok_and(|t| t.ends_with('\n')) { break; }
                    }
                }
            }
        })
        .await;
        assert!(waited.is_ok());
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        for _ in 0..100 {
            if !alive(pid) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the grandchild {pid} outlived its cancelled step");
    }
}
