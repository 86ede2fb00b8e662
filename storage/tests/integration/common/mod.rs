//! Helpers shared by the integration tests: test servers as child processes killed on drop.
#![allow(dead_code, unreachable_pub)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository root (the workspace folder above `storage/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The tool installed by `scripts/setup.sh` at `relative` under `.kiln-cache/`, or `None` after
/// printing why the test is skipped.
pub fn tool(relative: &str) -> Option<PathBuf> {
    let cache = std::env::var_os("KILN_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".kiln-cache"));
    let path = cache.join(relative);
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "SKIPPED: {} is not installed (run scripts/setup.sh)",
            path.display()
        );
        None
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process, killed when dropped.
pub struct Server {
    child: Child,
    /// The port it listens on.
    pub port: u16,
    /// Keeps its data folder alive.
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts `command` and waits until `port` accepts connections.
    pub fn start(mut command: Command, port: u16, dir: Option<tempfile::TempDir>) -> Self {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let mut server = Server {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("{command:?} exited early: {status}");
            }
            assert!(Instant::now() < deadline, "{command:?} did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every file under `dir`, as sorted relative paths with `/`.
pub fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap();
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Asserts an error's message is one line naming `uri`, and returns it.
pub fn one_line_naming(err: &kiln_storage::StorageError, uri: &str) -> String {
    let text = err.to_string();
    eprintln!("error as shown: {text}");
    assert!(!text.contains('\n'), "not one line: {text}");
    assert!(text.contains(uri), "does not name {uri}: {text}");
    text
}

/// Number of complete entries (marker files) in a cache folder.
pub fn complete_entries(cache: &Path) -> usize {
    std::fs::read_dir(cache)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().join("kiln-complete.json").is_file())
                .count()
        })
        .unwrap_or(0)
}
