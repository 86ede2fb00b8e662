//! Prepared Python environments for lightweight components. The SDK compiles a Python
//! component to `sh -c "... python3 -m pip install <packages> && \"$0\" \"$@\"" ...`; Kiln makes
//! one virtual environment per distinct install line (its words, hashed), runs that install in
//! it once, keeps it under the cache folder and puts its `bin/` first on the step's PATH. The
//! step's own install is then satisfied by construction, so Kiln drops it from the script and a
//! second run needs no network. The user's own Python is only used to create the venv.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::Mutex;

use crate::digest::sha256_hex;

/// The install statement inside a lightweight component's `sh -c` text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallLine {
    /// The exact text, from `PIP_...=1 python3 -m pip install` through `&& `.
    pub text: String,
    /// pip's arguments of each install (`--packages_to_install` adds a second), from
    /// `install` on, shell quoting removed.
    pub pip_args: Vec<Vec<String>>,
}

impl InstallLine {
    /// Finds the install statement in `script` (the text after `sh -c`).
    pub fn find(script: &str) -> Option<Self> {
        let start = script.find("python3 -m pip install ")?;
        // Include leading `VAR=value ` assignments on the same line.
        let line_start = script[..start].rfind('\n').map_or(0, |i| i + 1);
        let prefix = &script[line_start..start];
        let start = if prefix.split_whitespace().all(|w| w.contains('=')) {
            line_start
        } else {
            start
        };
        let end_rel = script[start..].find(" && \"$0\" \"$@\"")?;
        let text = &script[start..start + end_rel + 4];
        let mut pip_args = Vec::new();
        for command in script[start..start + end_rel].split(" && ") {
            let words = shlex::split(command)?;
            let at = words
                .windows(3)
                .position(|w| w == ["python3", "-m", "pip"])?;
            let args = words[at + 3..].to_vec();
            if args.first().map(String::as_str) != Some("install") {
                return None;
            }
            pip_args.push(args);
        }
        Some(Self {
            text: text.to_owned(),
            pip_args,
        })
    }

    /// The environment's folder name: a digest of pip's arguments.
    pub fn id(&self) -> String {
        sha256_hex(
            serde_json::to_string(&self.pip_args)
                .unwrap_or_default()
                .as_bytes(),
        )[..16]
            .to_owned()
    }
}

/// Why an environment could not be made.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// A command failed to start.
    #[error("could not run {command}")]
    Spawn {
        /// The command.
        command: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A command exited non-zero.
    #[error("{command} failed ({status}): {stderr}")]
    Failed {
        /// The command.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The tail of its stderr.
        stderr: String,
    },
    /// The lock beside an environment could not be taken.
    #[error("could not lock {path}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The stamp could not be written.
    #[error("could not write {path}")]
    Stamp {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The environments under one folder, made at most once each, even by concurrent steps.
#[derive(Debug, Clone)]
pub struct PythonEnvs {
    dir: PathBuf,
    python: PathBuf,
    locks: Arc<Mutex<HashMap<String, Arc<Mutex<()>>>>>,
}

impl PythonEnvs {
    /// Environments in `dir`, created with the interpreter `python`.
    pub fn new(dir: impl Into<PathBuf>, python: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            python: python.into(),
            locks: Arc::default(),
        }
    }

    /// The `bin/` of the environment for `line`, made first if needed.
    pub async fn prepare(&self, line: &InstallLine) -> Result<PathBuf, EnvError> {
        let id = line.id();
        let lock = self
            .locks
            .lock()
            .await
            .entry(id.clone())
            .or_default()
            .clone();
        let _guard = lock.lock().await;
        let env = self.dir.join(&id);
        let stamp = env.join(".done");
        if stamp.exists() {
            return Ok(env.join("bin"));
        }
        // Other processes (a second `kiln pipeline run`, another test binary) may be making
        // the same environment: one makes it, under an exclusive lock on a file beside it,
        // the others wait and find it made. (A venv cannot be made elsewhere and renamed:
        // its scripts name their own path.)
        let _made_by_us = self.lock_file(&id).await?;
        if stamp.exists() {
            return Ok(env.join("bin"));
        }
        tracing::info!(env = %env.display(), install = %line.text, "preparing a Python environment");
        let _ = std::fs::remove_dir_all(&env);
        let venv = [
            self.python.as_os_str().to_owned(),
            "-m".into(),
            "venv".into(),
            env.clone().into(),
        ];
        run(&venv).await?;
        for args in &line.pip_args {
            let mut install = vec![
                env.join("bin/python").into_os_string(),
                "-m".into(),
                "pip".into(),
            ];
            install.extend(args.iter().map(Into::into));
            run(&install).await?;
        }
        std::fs::write(&stamp, format!("{}\n", line.text)).map_err(|source| EnvError::Stamp {
            path: stamp,
            source,
        })?;
        Ok(env.join("bin"))
    }
}

impl PythonEnvs {
    /// Takes the exclusive lock on `<dir>/<id>.lock`, waiting for another process's; held
    /// until the returned file is dropped.
    async fn lock_file(&self, id: &str) -> Result<std::fs::File, EnvError> {
        let path = self.dir.join(format!("{id}.lock"));
        let locked = path.clone();
        tokio::task::spawn_blocking(move || {
            if let Some(dir) = locked.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&locked)?;
            file.lock()?;
            Ok(file)
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
        .map_err(|source| EnvError::Lock { path, source })
    }
}

async fn run(argv: &[std::ffi::OsString]) -> Result<(), EnvError> {
    let command = argv
        .iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    let out = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| EnvError::Spawn {
            command: command.clone(),
            source,
        })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: String = stderr
        .chars()
        .rev()
        .take(2000)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    Err(EnvError::Failed {
        command,
        status: out.status,
        stderr: tail,
    })
}

/// `PATH` with `bin` first.
pub fn path_with(bin: &Path) -> std::ffi::OsString {
    let mut parts = vec![bin.to_path_buf()];
    if let Some(path) = std::env::var_os("PATH") {
        parts.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(parts).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRIPT: &str = "\nif ! [ -x \"$(command -v pip)\" ]; then\n    python3 -m ensurepip || python3 -m ensurepip --user || apt-get install python3-pip\nfi\n\nPIP_DISABLE_PIP_VERSION_CHECK=1 python3 -m pip install --quiet --no-warn-script-location 'kfp==2.17.3' '--no-deps' 'typing-extensions>=3.7.4,<5; python_version<\"3.9\"' && \"$0\" \"$@\"\n";

    #[test]
    fn the_install_line_of_a_lightweight_component_is_found_and_unquoted() {
        let line = InstallLine::find(SCRIPT).unwrap();
        assert!(
            line.text
                .starts_with("PIP_DISABLE_PIP_VERSION_CHECK=1 python3 -m pip install")
        );
        assert!(line.text.ends_with("&& "));
        assert_eq!(
            line.pip_args,
            [[
                "install",
                "--quiet",
                "--no-warn-script-location",
                "kfp==2.17.3",
                "--no-deps",
                "typing-extensions>=3.7.4,<5; python_version<\"3.9\""
            ]]
        );
        assert_eq!(
            SCRIPT
                .replace(&line.text, "")
                .matches("pip install")
                .count(),
            0
        );
    }

    #[test]
    fn different_packages_get_different_environments() {
        let a = InstallLine::find(SCRIPT).unwrap();
        let with_packages = SCRIPT.replace(
            " && \"$0\"",
            " && python3 -m pip install --quiet --no-warn-script-location 'numpy' && \"$0\"",
        );
        let b = InstallLine::find(&with_packages).unwrap();
        assert_eq!(b.pip_args.len(), 2);
        assert_eq!(
            b.pip_args[1],
            ["install", "--quiet", "--no-warn-script-location", "numpy"]
        );
        assert_ne!(a.id(), b.id());
        assert!(InstallLine::find("echo hello").is_none());
    }
}
