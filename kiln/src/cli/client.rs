//! A small client of the admin API.

use reqwest::StatusCode;
use serde_json::Value;

use super::{CliError, Target};

pub(crate) struct Client {
    http: reqwest::Client,
    server: String,
    pub(crate) namespace: String,
    token: Option<String>,
}

impl Client {
    pub(crate) fn new(target: &Target) -> Client {
        Client {
            http: reqwest::Client::new(),
            server: target.server.trim_end_matches('/').to_owned(),
            namespace: target.namespace.clone(),
            token: std::env::var("KILN_TOKEN").ok().filter(|t| !t.is_empty()),
        }
    }

    pub(crate) fn service_path(&self, name: &str) -> String {
        format!("/v1/namespaces/{}/inferenceservices/{name}", self.namespace)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, CliError> {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().await.map_err(|e| {
            CliError::Failed(format!(
                "cannot reach kiln at {} ({e}); is `kiln up` running? (--server / KILN_SERVER)",
                self.server
            ))
        })?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| {
            CliError::Failed(format!("unreadable answer from {}: {e}", self.server))
        })?;
        if status.is_success() {
            return Ok(body);
        }
        let message = body["error"]
            .as_str()
            .unwrap_or("request failed")
            .to_owned();
        Err(match status {
            StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST => {
                CliError::Invalid(message)
            }
            _ => CliError::Failed(message),
        })
    }

    pub(crate) async fn get(&self, path: &str) -> Result<Value, CliError> {
        self.send(self.http.get(format!("{}{path}", self.server)))
            .await
    }

    pub(crate) async fn post(&self, path: &str, body: String) -> Result<Value, CliError> {
        self.send(self.http.post(format!("{}{path}", self.server)).body(body))
            .await
    }

    pub(crate) async fn post_json(&self, path: &str, body: Value) -> Result<Value, CliError> {
        self.send(self.http.post(format!("{}{path}", self.server)).json(&body))
            .await
    }

    pub(crate) async fn delete(&self, path: &str) -> Result<Value, CliError> {
        self.send(self.http.delete(format!("{}{path}", self.server)))
            .await
    }
}
