//! What the router decides for a request, whatever the wire it came on: which service and
//! revision it goes to (path, host, pins), and the calls the router answers itself.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

use crate::answer::Answer;
use crate::error::RequestError;
use crate::stats::InRevision;
use crate::table::{Pin, Service, Snapshot, TableHandle};

/// Header pinning a revision by name: the same header every answer names its revision in.
pub const PIN_REVISION_HEADER: &str = crate::proxy::REVISION_HEADER;
/// Header pinning a revision by tag.
pub const PIN_TAG_HEADER: &str = "x-kiln-tag";

/// Settings and state shared by every connection.
pub(crate) struct App {
    pub(crate) table: TableHandle,
    /// `.{domain}`: hosts are `{name}.{namespace}.{domain}`.
    pub(crate) domain_suffix: String,
    pub(crate) max_body: u64,
    pub(crate) body_read_timeout: Duration,
    pub(crate) header_read_timeout: Duration,
}

/// What a request says about where it goes, besides the model name.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RouteHints<'r> {
    /// The `:authority` or `Host`.
    pub(crate) host: Option<&'r str>,
    /// `x-kiln-revision`.
    pub(crate) pin_revision: Option<&'r str>,
    /// `x-kiln-tag`.
    pub(crate) pin_tag: Option<&'r str>,
}

/// The model named by a `/v2/models/{name}/...` or `/v1/models/{name}[:verb]` path.
pub(crate) fn model_in_path(path: &str) -> Result<Option<&str>, RequestError> {
    let name = if let Some(rest) = path.strip_prefix("/v2/models/") {
        rest.split('/').next()
    } else if let Some(rest) = path.strip_prefix("/v1/models/") {
        rest.split(['/', ':']).next()
    } else {
        return Ok(None);
    };
    match name {
        Some(name) if !name.is_empty() => Ok(Some(name)),
        _ => Err(RequestError::BadRequest(format!(
            "malformed path {path}: no model name"
        ))),
    }
}

impl App {
    /// `(label, namespace)` of a host `{label}.{namespace}.{domain}[:port]`.
    fn host_target<'h>(&self, host: &'h str) -> Option<(&'h str, &'h str)> {
        let host = match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        };
        let rest = host.strip_suffix(self.domain_suffix.as_str())?;
        let (label, namespace) = rest.split_once('.')?;
        (!label.is_empty() && !namespace.is_empty() && !namespace.contains('.'))
            .then_some((label, namespace))
    }

    /// The service and the tag pinned by the host, if any.
    fn resolve<'s>(
        &self,
        snapshot: &'s Snapshot,
        host: Option<&str>,
        model: Option<&str>,
    ) -> Result<(&'s Arc<Service>, Option<String>), RequestError> {
        let target = host.and_then(|h| self.host_target(h));
        let unknown = |name: &str| RequestError::NotFound(format!("unknown model {name}"));
        match (model, target) {
            (Some(name), Some((label, namespace))) => {
                let service = snapshot
                    .get(namespace, name)
                    .or_else(|| snapshot.by_name(name))
                    .ok_or_else(|| unknown(name))?;
                let tag = label
                    .strip_suffix(name)
                    .and_then(|t| t.strip_suffix('-'))
                    .filter(|t| !t.is_empty() && service.has_tag(t))
                    .map(str::to_owned);
                Ok((service, tag))
            }
            (Some(name), None) => Ok((snapshot.by_name(name).ok_or_else(|| unknown(name))?, None)),
            (None, Some((label, namespace))) => {
                if let Some(service) = snapshot.get(namespace, label) {
                    return Ok((service, None));
                }
                for (i, _) in label.match_indices('-') {
                    let (tag, name) = (&label[..i], &label[i + 1..]);
                    if let Some(service) = snapshot.get(namespace, name)
                        && service.has_tag(tag)
                    {
                        return Ok((service, Some(tag.to_owned())));
                    }
                }
                Err(RequestError::NotFound(format!(
                    "no model for host {label}.{namespace}"
                )))
            }
            (None, None) => Err(RequestError::NotFound(
                "the request names no model (path or host)".into(),
            )),
        }
    }

    /// Draws the revision for a request to `model` (or the service its host names) and
    /// starts counting it there; returns the count and the service's timeout.
    pub(crate) fn choose(
        &self,
        hints: &RouteHints<'_>,
        model: Option<&str>,
    ) -> Result<(InRevision, Duration), RequestError> {
        let snapshot = self.table.snapshot();
        let result = self
            .resolve(&snapshot, hints.host, model)
            .and_then(|(service, host_tag)| {
                let pin = if let Some(name) = hints.pin_revision {
                    Pin::Revision(name)
                } else if let Some(tag) = hints.pin_tag {
                    Pin::Tag(tag)
                } else if let Some(tag) = host_tag.as_deref() {
                    Pin::Tag(tag)
                } else {
                    Pin::None
                };
                let revision = service.choose(pin, &self.table.shared().rng)?;
                Ok((InRevision::enter(revision.clone()), service.timeout))
            });
        if let Err(error) = &result {
            self.table
                .shared()
                .metrics
                .unrouted(error.status().as_u16());
        }
        result
    }

    /// The answer to the router's own calls (`/healthz`, `/metrics`, `/v2`, health and the
    /// model list); `None` for a path that goes to a model.
    pub(crate) fn own_answer(&self, is_get: bool, path: &str) -> Option<Answer> {
        let answer = match path {
            "/healthz" => Answer::json(StatusCode::OK, r#"{"status":"ok"}"#),
            "/metrics" => Answer {
                status: StatusCode::OK,
                content_type: "text/plain; version=0.0.4",
                body: self.table.shared().metrics.encode().into(),
                retry_after: false,
            },
            "/v2" | "/v2/" => {
                let body = serde_json::json!({
                    "name": "kiln-router",
                    "version": env!("CARGO_PKG_VERSION"),
                    "extensions": [],
                });
                Answer::json(StatusCode::OK, body.to_string())
            }
            "/v2/health/live" => Answer::json(StatusCode::OK, r#"{"live":true}"#),
            "/v2/health/ready" => Answer::json(StatusCode::OK, r#"{"ready":true}"#),
            "/v2/models" | "/v2/models/" if is_get => self.list_models(),
            _ => return None,
        };
        Some(answer)
    }

    fn list_models(&self) -> Answer {
        let snapshot = self.table.snapshot();
        let models: Vec<_> = snapshot
            .services()
            .iter()
            .map(|s| serde_json::json!({ "name": s.name, "namespace": s.namespace }))
            .collect();
        Answer::json(
            StatusCode::OK,
            serde_json::json!({ "models": models }).to_string(),
        )
    }
}
