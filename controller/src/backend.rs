//! What carries out a reconcile: the [`Backend`] trait. `kiln up`'s is
//! [`crate::local_serving::LocalServing`] (replica processes, the router's table and the
//! autoscaler); the Kubernetes backend implements the same trait over Deployments and
//! Services. Both are fed by the one reconcile core ([`crate::reconcile`]).

use std::fmt;

use kiln_api::inference_service::ServableSpec;

use crate::reconcile::{Action, Observed};
use crate::revision::RevisionRecord;

/// One service: namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
}

impl ServiceKey {
    /// The key of `namespace/name`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Actions for many services, each service's in order.
pub type ActionBatch = [(ServiceKey, Vec<Action>)];

/// A backend could not carry out an action.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The router refused the routes.
    #[error("router: {0}")]
    Router(#[source] kiln_router::RouterError),
    /// The autoscaler refused a revision's settings.
    #[error("autoscaler: {0}")]
    Autoscaler(#[source] kiln_autoscaler::ConfigError),
}

/// Carries out what the reconcile core decides, and reports what it observes.
pub trait Backend: Send + Sync + 'static {
    /// Carries out `actions` for `service`, in order. Each action is idempotent: carrying
    /// out the same list twice leaves the same state.
    fn execute(&self, service: &ServiceKey, actions: &[Action]) -> Result<(), BackendError>;

    /// Carries out the actions of many services at once (an apply of many, a restart), in
    /// whatever order keeps each service's own order; a backend whose routes are one shared
    /// table updates it once here rather than once per service.
    fn execute_batch(&self, batch: &ActionBatch) -> Result<(), BackendError> {
        batch
            .iter()
            .try_for_each(|(service, actions)| self.execute(service, actions))
    }

    /// What the service's `revisions` are doing now.
    fn observe(&self, service: &ServiceKey, revisions: &[RevisionRecord]) -> Observed;

    /// Recent log lines of one revision's replicas, oldest first.
    fn logs(&self, namespace: &str, revision: &str) -> Vec<String>;

    /// Whether this backend could ever run `servable` (an apply refuses it otherwise, with
    /// the message, naming the field and the limit). A cluster takes whatever it is given;
    /// one machine has a capacity.
    fn check_fits(&self, servable: &ServableSpec) -> Result<(), String> {
        let _ = servable;
        Ok(())
    }
}
