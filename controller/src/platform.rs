//! Everything `kiln up` runs, wired together: the router (data plane), the autoscaler fed by
//! the router's samples and pokes, the local backend it scales, the controller that owns
//! the services, and the admin API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kiln_autoscaler::{Autoscaler, AutoscalerConfig, SharedAutoscaler};
use kiln_router::{Router, RunningRouter};
use tokio::task::JoinHandle;

use crate::admin;
use crate::controller::{ControlError, Controller, Parts};
use crate::local::Capacity;
use crate::local::{LocalBackend, LocalBackendConfig};
use crate::local_serving::{LocalEvents, LocalServing, Scaling};
use crate::queue::ReconcileQueue;
use crate::reconcile::Context;
use crate::store::Store;

/// Settings of a platform.
#[derive(Debug, Clone)]
pub struct PlatformConfig {
    /// Where records, logs and the model cache live.
    pub state_dir: PathBuf,
    /// Domain of service hosts.
    pub domain: String,
    /// Knative's config-autoscaler keys, as global defaults.
    pub autoscaler: AutoscalerConfig,
    /// The router's HTTP (and gRPC) address.
    pub http_addr: SocketAddr,
    /// A second router address for gRPC, if wanted.
    pub grpc_addr: Option<SocketAddr>,
    /// The admin API's address.
    pub admin_addr: SocketAddr,
    /// Bearer token the admin API requires (mandatory when it listens beyond loopback).
    pub admin_token: Option<String>,
    /// The `kiln` binary that runs predictors.
    pub kiln_program: PathBuf,
    /// GPU ids replicas may use.
    pub gpus: Vec<String>,
    /// How long a stopping replica gets to finish its requests.
    pub drain_timeout: Duration,
    /// What replicas may take at once (processes, CPU and memory requests).
    pub capacity: Capacity,
}

/// Why the platform could not start.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// The router could not start.
    #[error("router: {0}")]
    Router(#[from] kiln_router::RouterError),
    /// The autoscaler settings are invalid.
    #[error("autoscaler: {0}")]
    Autoscaler(#[from] kiln_autoscaler::ConfigError),
    /// The controller could not restore its state.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// The admin API could not start.
    #[error("admin API on {addr}: {message}")]
    Admin {
        /// The address.
        addr: SocketAddr,
        /// Why.
        message: String,
    },
}

/// A running platform.
pub struct Platform {
    /// The controller (also reachable through the admin API).
    pub controller: Controller,
    router: RunningRouter,
    backend: LocalBackend,
    ticker: JoinHandle<()>,
    admin: JoinHandle<()>,
    admin_addr: SocketAddr,
}

impl Platform {
    /// Starts the router, autoscaler, backend, controller (restoring persisted services)
    /// and admin API.
    pub async fn start(config: PlatformConfig) -> Result<Platform, PlatformError> {
        if !config.admin_addr.ip().is_loopback() && config.admin_token.is_none() {
            return Err(PlatformError::Admin {
                addr: config.admin_addr,
                message: "listening beyond loopback needs a bearer token: set KILN_TOKEN".into(),
            });
        }
        let events = Arc::new(LocalEvents::default());
        let mut backend_config =
            LocalBackendConfig::new(&config.kiln_program, config.state_dir.join("models"));
        backend_config.log_dir = Some(config.state_dir.join("logs"));
        backend_config.gpus = config.gpus.clone();
        backend_config.drain_timeout = config.drain_timeout;
        backend_config.capacity = config.capacity;
        let backend = LocalBackend::new(backend_config, events.clone());

        // The router measures time from when it is built; the autoscaler's clock starts with it.
        let epoch = tokio::time::Instant::now();
        let clock: Box<dyn Fn() -> Duration + Send + Sync> = Box::new(move || epoch.elapsed());
        let autoscaler = Autoscaler::new(config.autoscaler.clone())?;
        let tick = autoscaler.tick_interval();
        let autoscaler: Arc<Scaling> =
            Arc::new(SharedAutoscaler::new(autoscaler, backend.clone(), clock));
        let mut builder = Router::builder()
            .http_addr(config.http_addr)
            .domain(config.domain.clone())
            .load_sink(autoscaler.clone())
            .activation(autoscaler.clone());
        if let Some(grpc) = config.grpc_addr {
            builder = builder.grpc_addr(grpc);
        }
        let router = builder.build()?;
        let table = router.table();
        let router = router.start().await?;

        let (queue, keys) = ReconcileQueue::new();
        let queue = Arc::new(queue);
        let serving = Arc::new(LocalServing::new(
            backend.clone(),
            table,
            autoscaler.clone(),
            queue.clone(),
            config.capacity,
        ));
        events.connect(&serving);
        let controller = Controller::start(Parts {
            context: Context {
                domain: config.domain.clone(),
                address: router.http_addr(),
                autoscaler: config.autoscaler.clone(),
            },
            backend: serving,
            store: Store::open(&config.state_dir, "services.json").map_err(ControlError::from)?,
            queue: (queue, keys),
        })?;

        let ticker = tokio::spawn(async move {
            let mut interval = tokio::time::interval(tick);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                autoscaler.tick();
            }
        });
        let listener = tokio::net::TcpListener::bind(config.admin_addr)
            .await
            .map_err(|e| PlatformError::Admin {
                addr: config.admin_addr,
                message: e.to_string(),
            })?;
        let admin_addr = listener.local_addr().map_err(|e| PlatformError::Admin {
            addr: config.admin_addr,
            message: e.to_string(),
        })?;
        let app = admin::router(controller.clone(), config.admin_token.clone());
        let admin = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "admin API stopped");
            }
        });
        Ok(Platform {
            controller,
            router,
            backend,
            ticker,
            admin,
            admin_addr,
        })
    }

    /// The router's HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.router.http_addr()
    }

    /// The router's separate gRPC address, if any.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.router.grpc_addr()
    }

    /// The admin API's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Stops taking requests, stops every replica (draining them) and returns when all
    /// child processes have exited.
    pub async fn shutdown(self) {
        self.admin.abort();
        self.ticker.abort();
        self.router.shutdown().await;
        self.backend.shutdown().await;
    }
}
