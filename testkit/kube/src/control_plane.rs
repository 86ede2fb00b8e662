//! Starting the control plane, and what tests use of it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::Instrument;

use crate::binaries::Binaries;
use crate::pki::{self, Authority, Pem};
use crate::process::{Process, free_port};
use crate::{Component, Error};

/// How long each component may take to become ready (the machines running the tests are
/// small and busy).
const START_TIMEOUT: Duration = Duration::from_secs(180);
/// How long a fresh namespace may take to get its `default` ServiceAccount.
const NAMESPACE_TIMEOUT: Duration = Duration::from_secs(60);
/// The Service IP range, as envtest sets it.
const SERVICE_CLUSTER_IP_RANGE: &str = "10.0.0.0/24";

static SHARED: OnceLock<Result<ControlPlane, Error>> = OnceLock::new();

/// A running Kubernetes control plane on loopback: etcd, kube-apiserver,
/// kube-controller-manager and kube-scheduler, with the client certificates and kubeconfig
/// to reach it as a cluster admin (group `system:masters`).
///
/// Every process is forked by one thread that lives as long as the test binary, with
/// `KILN_PARENT_PID` set, which makes it arm a parent-death signal: the processes die with
/// the test binary, also when it panics or is killed with SIGKILL.
#[derive(Debug)]
pub struct ControlPlane {
    dir: PathBuf,
    kubeconfig: PathBuf,
    server_url: String,
    config: Config,
    /// In start order; stopped in reverse.
    processes: Vec<Process>,
    /// Whether every component started; the folder of one that did not is kept for its logs.
    started: bool,
}

impl ControlPlane {
    /// The control plane of this test binary, started by the first caller and then shared
    /// by every test (tests stay apart by using a namespace each, see
    /// [`fresh_namespace`](Self::fresh_namespace)).
    ///
    /// # Panics
    ///
    /// When the control plane cannot start; the message names the component and ends with
    /// the last lines of its log. [`try_shared`](Self::try_shared) returns the error instead.
    pub fn shared() -> &'static ControlPlane {
        match Self::try_shared() {
            Ok(control_plane) => control_plane,
            Err(error) => panic!(
                "the Kubernetes control plane did not start: {}",
                crate::error::chain(error)
            ),
        }
    }

    /// [`shared`](Self::shared), returning the error (the same one to every caller) instead
    /// of panicking.
    pub fn try_shared() -> Result<&'static ControlPlane, &'static Error> {
        SHARED.get_or_init(Self::start).as_ref()
    }

    /// Starts a control plane of its own; dropping it stops the processes and removes its
    /// folder. Blocks until every component is ready (seconds; the first time on a machine,
    /// also the build of the binaries: tens of minutes). May be called from async code: the
    /// work happens on a thread of its own.
    pub fn start() -> Result<ControlPlane, Error> {
        std::thread::Builder::new()
            .name("kiln-kube-start".to_owned())
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(Error::Thread)?;
                runtime.block_on(
                    async {
                        // Free ports are only free when asked: another process may take one
                        // before the component binds it. Then start again, on new ports.
                        let mut attempt = 1;
                        loop {
                            match Self::start_here().await {
                                Err(error) if error.is_port_taken() && attempt < 3 => {
                                    tracing::warn!(%error, attempt, "a port was taken; starting again");
                                    attempt += 1;
                                }
                                result => return result,
                            }
                        }
                    }
                    .instrument(tracing::info_span!("kube")),
                )
            })
            .map_err(Error::Thread)?
            .join()
            .map_err(|_| Error::StartPanicked)?
    }

    async fn start_here() -> Result<ControlPlane, Error> {
        let binaries = Binaries::locate()?;
        let dir = make_dir()?;
        let mut control_plane = ControlPlane {
            kubeconfig: dir.join("kubeconfig"),
            dir,
            server_url: String::new(),
            config: Config::new(http::Uri::from_static("https://127.0.0.1")),
            processes: Vec::new(),
            started: false,
        };
        let dir = control_plane.dir.clone();
        let file = |name: &str| dir.join(name);
        let arg = |flag: &str, path: &Path| format!("--{flag}={}", path.display());

        let ca = Authority::new()?;
        write_pem(&dir, "ca", &ca.pem())?;
        write_pem(&dir, "serving", &ca.serving()?)?;
        write_pem(&dir, "service-account", &pki::service_account_key()?)?;
        let users = [
            ("admin", "kiln-test-admin", Some("system:masters")),
            ("controller-manager", "system:kube-controller-manager", None),
            ("scheduler", "system:kube-scheduler", None),
        ];
        for (file_name, user, group) in users {
            write_pem(&dir, file_name, &ca.client(user, group)?)?;
        }

        // etcd, as envtest runs it: loopback, no fsync, data in the folder.
        let etcd_port = free_port()?;
        let peer_port = free_port()?;
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let etcd = Process::start(
            Component::Etcd,
            &binaries.path(Component::Etcd),
            &[
                "--name=kiln".to_owned(),
                arg("data-dir", &file("etcd")),
                format!("--listen-client-urls={etcd_url}"),
                format!("--advertise-client-urls={etcd_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=kiln={peer_url}"),
                "--unsafe-no-fsync".to_owned(),
                "--log-level=warn".to_owned(),
            ],
            &dir,
        )?;
        etcd.wait_until("GET /health answers true", START_TIMEOUT, || {
            etcd_healthy(etcd_port)
        })
        .await?;
        control_plane.processes.push(etcd);

        // kube-apiserver, with envtest's flags plus kwok's endpoint reconciler.
        let api_port = free_port()?;
        control_plane.server_url = format!("https://127.0.0.1:{api_port}");
        let issuer = format!("https://127.0.0.1:{api_port}");
        let api_server = Process::start(
            Component::ApiServer,
            &binaries.path(Component::ApiServer),
            &[
                format!("--etcd-servers={etcd_url}"),
                arg("cert-dir", &file("apiserver-certs")),
                arg("tls-cert-file", &file("serving.crt")),
                arg("tls-private-key-file", &file("serving.key")),
                "--bind-address=127.0.0.1".to_owned(),
                format!("--secure-port={api_port}"),
                format!("--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}"),
                "--endpoint-reconciler-type=none".to_owned(),
                "--allow-privileged=true".to_owned(),
                "--authorization-mode=RBAC".to_owned(),
                arg("client-ca-file", &file("ca.crt")),
                format!("--service-account-issuer={issuer}"),
                arg("service-account-key-file", &file("service-account.crt")),
                arg(
                    "service-account-signing-key-file",
                    &file("service-account.key"),
                ),
            ],
            &dir,
        )?;
        for (file_name, _, _) in users {
            write_kubeconfig(
                &file(&format!("{file_name}.kubeconfig")),
                &control_plane.server_url,
                &dir,
                file_name,
            )?;
        }
        std::fs::copy(file("admin.kubeconfig"), &control_plane.kubeconfig).map_err(|source| {
            Error::Write {
                path: control_plane.kubeconfig.clone(),
                source,
            }
        })?;
        let kubeconfig = Kubeconfig::read_from(&control_plane.kubeconfig).map_err(|source| {
            Error::Kubeconfig {
                path: control_plane.kubeconfig.clone(),
                source,
            }
        })?;
        control_plane.config =
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|source| Error::Kubeconfig {
                    path: control_plane.kubeconfig.clone(),
                    source,
                })?;
        let client = control_plane.client()?;
        api_server
            .wait_until("GET /readyz answers ok", START_TIMEOUT, || {
                get_ok(client.clone(), "/readyz")
            })
            .await?;
        api_server
            .wait_until("the default namespace exists", START_TIMEOUT, || {
                let namespaces: Api<Namespace> = Api::all(client.clone());
                async move { matches!(namespaces.get_opt("default").await, Ok(Some(_))) }
            })
            .await?;
        control_plane.processes.push(api_server);

        // The controller manager and the scheduler, each with a kubeconfig of its own and
        // serving /healthz on loopback with the CA's serving certificate.
        let serving = [
            "--bind-address=127.0.0.1".to_owned(),
            arg("tls-cert-file", &file("serving.crt")),
            arg("tls-private-key-file", &file("serving.key")),
            "--leader-elect=false".to_owned(),
        ];
        let kubeconfigs = |name: &str| {
            let path = file(&format!("{name}.kubeconfig"));
            [
                "kubeconfig",
                "authentication-kubeconfig",
                "authorization-kubeconfig",
            ]
            .map(|flag| arg(flag, &path))
        };
        let controller_manager_port = free_port()?;
        let mut args = vec![
            format!("--secure-port={controller_manager_port}"),
            // Every controller but node IPAM, which allocates Pod CIDRs to nodes.
            "--controllers=*,-node-ipam-controller".to_owned(),
            "--use-service-account-credentials=true".to_owned(),
            arg(
                "service-account-private-key-file",
                &file("service-account.key"),
            ),
            arg("root-ca-file", &file("ca.crt")),
            arg("cluster-signing-cert-file", &file("ca.crt")),
            arg("cluster-signing-key-file", &file("ca.key")),
            format!("--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}"),
            "--cluster-name=kiln".to_owned(),
        ];
        args.extend(kubeconfigs("controller-manager"));
        args.extend(serving.iter().cloned());
        let controller_manager = Process::start(
            Component::ControllerManager,
            &binaries.path(Component::ControllerManager),
            &args,
            &dir,
        )?;
        let scheduler_port = free_port()?;
        let mut args = vec![format!("--secure-port={scheduler_port}")];
        args.extend(kubeconfigs("scheduler"));
        args.extend(serving.iter().cloned());
        let scheduler = Process::start(
            Component::Scheduler,
            &binaries.path(Component::Scheduler),
            &args,
            &dir,
        )?;
        for (process, port) in [
            (&controller_manager, controller_manager_port),
            (&scheduler, scheduler_port),
        ] {
            let health = loopback_client(port, ca.der())?;
            process
                .wait_until("GET /healthz answers ok", START_TIMEOUT, || {
                    get_ok(health.clone(), "/healthz")
                })
                .await?;
        }
        control_plane.processes.push(controller_manager);
        control_plane.processes.push(scheduler);
        control_plane.started = true;
        tracing::info!(server = %control_plane.server_url, dir = %control_plane.dir.display(), "control plane ready");
        Ok(control_plane)
    }

    /// A client acting as cluster admin. Call it from inside the Tokio runtime that will use
    /// it (each `#[tokio::test]` has a runtime of its own, so each test takes its own client).
    pub fn client(&self) -> Result<Client, Error> {
        Client::try_from(self.config.clone()).map_err(Error::Client)
    }

    /// The client configuration behind [`client`](Self::client).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A kubeconfig file for the cluster admin (for `kubectl --kubeconfig` or a program
    /// under test).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The API server's URL, `https://127.0.0.1:<port>`.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// The folder holding the certificates, kubeconfigs, etcd's data and the logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The process id of `component`.
    ///
    /// # Panics
    ///
    /// For [`Component::Node`], which is no part of the control plane (see
    /// [`TestNode::pid`](crate::TestNode::pid)).
    pub fn pid(&self, component: Component) -> u32 {
        self.process(component).pid()
    }

    /// The log file of `component` (its stdout and stderr).
    ///
    /// # Panics
    ///
    /// For [`Component::Node`], as [`pid`](Self::pid).
    pub fn log(&self, component: Component) -> &Path {
        self.process(component).log()
    }

    fn process(&self, component: Component) -> &Process {
        self.processes
            .iter()
            .find(|p| p.component() == component)
            .unwrap_or_else(|| panic!("{component} is no part of the control plane"))
    }

    /// Creates a namespace of its own for one test (`kiln-test-` and a random suffix) and
    /// waits for the controller manager to give it its `default` ServiceAccount, which Pods
    /// need. Returns its name.
    pub async fn fresh_namespace(&self, client: &Client) -> Result<String, Error> {
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let namespace = Namespace {
            metadata: ObjectMeta {
                generate_name: Some("kiln-test-".to_owned()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        let created = namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .map_err(|source| Error::Api {
                what: "creating a namespace".to_owned(),
                source,
            })?;
        let name = created.metadata.name.unwrap_or_default();
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &name);
        let condition = format!("the ServiceAccount {name}/default exists");
        let deadline = tokio::time::Instant::now() + NAMESPACE_TIMEOUT;
        loop {
            match accounts.get_opt("default").await {
                Ok(Some(_)) => return Ok(name),
                Ok(None) => {}
                Err(source) => {
                    return Err(Error::Api {
                        what: format!("reading {condition}"),
                        source,
                    });
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Timeout {
                    condition,
                    timeout: NAMESPACE_TIMEOUT,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        while let Some(process) = self.processes.pop() {
            drop(process);
        }
        if self.started {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A folder of its own under `$TMPDIR/kiln-kube/`, named `<pid>-<n>`. The shared control
/// plane's folder outlives its test binary (statics are not dropped), so each start first
/// removes the folders of test binaries that are gone.
fn make_dir() -> Result<PathBuf, Error> {
    static COUNT: AtomicU32 = AtomicU32::new(0);
    let base = std::env::temp_dir().join("kiln-kube");
    if let Ok(entries) = std::fs::read_dir(&base) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let owner = name.to_string_lossy();
            let owner = owner.split('-').next().unwrap_or_default();
            if !owner.is_empty()
                && owner.bytes().all(|b| b.is_ascii_digit())
                && !Path::new("/proc").join(owner).exists()
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = base.join(format!(
        "{}-{}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).map_err(|source| Error::Write {
        path: dir.clone(),
        source,
    })?;
    Ok(dir)
}

fn write_file(path: PathBuf, contents: &str) -> Result<(), Error> {
    std::fs::write(&path, contents).map_err(|source| Error::Write { path, source })
}

/// Writes `<name>.crt` and `<name>.key`.
fn write_pem(dir: &Path, name: &str, pem: &Pem) -> Result<(), Error> {
    write_file(dir.join(format!("{name}.crt")), &pem.cert)?;
    write_file(dir.join(format!("{name}.key")), &pem.key)
}

/// A kubeconfig for the user whose certificate is `<user>.crt`.
fn write_kubeconfig(path: &Path, server: &str, dir: &Path, user: &str) -> Result<(), Error> {
    let file = |name: String| dir.join(name).display().to_string();
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kiln", "cluster": {
            "server": server,
            "certificate-authority": file("ca.crt".to_owned()),
        }}],
        "users": [{"name": user, "user": {
            "client-certificate": file(format!("{user}.crt")),
            "client-key": file(format!("{user}.key")),
        }}],
        "contexts": [{"name": "kiln", "context": {"cluster": "kiln", "user": user}}],
        "current-context": "kiln",
    });
    let text = serde_saphyr::to_string(&kubeconfig).expect("a JSON value is valid YAML");
    write_file(path.to_owned(), &text)
}

/// An anonymous client of an HTTPS server on 127.0.0.1 that the CA vouches for.
fn loopback_client(port: u16, ca: Vec<u8>) -> Result<Client, Error> {
    let url = format!("https://127.0.0.1:{port}")
        .parse()
        .expect("an https URL on 127.0.0.1 parses");
    let mut config = Config::new(url);
    config.root_cert = Some(vec![ca]);
    Client::try_from(config).map_err(Error::Client)
}

/// Whether `GET path` answers 2xx.
async fn get_ok(client: Client, path: &str) -> bool {
    let request = http::Request::get(path)
        .body(Vec::new())
        .expect("a GET of a path is a valid request");
    client.request_text(request).await.is_ok()
}

/// Whether etcd's `GET /health` says `"health":"true"` (plain HTTP on loopback).
async fn etcd_healthy(port: u16) -> bool {
    let ask = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream
            .write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    match tokio::time::timeout(Duration::from_secs(2), ask).await {
        Ok(Ok(answer)) => String::from_utf8_lossy(&answer).contains("\"health\":\"true\""),
        _ => false,
    }
}
