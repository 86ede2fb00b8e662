//! A small client of the admin API. Replies are read into the controller's own types, so a
//! renamed field fails to compile here instead of printing `?`.

use kiln_api::error_body::ErrorBody;
use reqwest::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;

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

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, CliError> {
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
        let body = response.bytes().await.map_err(|e| {
            CliError::Failed(format!("unreadable answer from {}: {e}", self.server))
        })?;
        if !status.is_success() {
            let message = serde_json::from_slice::<ErrorBody>(&body)
                .map(|e| e.error)
                .unwrap_or_else(|_| format!("request failed with {status}"));
            return Err(match status {
                StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST => {
                    CliError::Invalid(message)
                }
                _ => CliError::Failed(message),
            });
        }
        serde_json::from_slice(&body)
            .map_err(|e| CliError::Failed(format!("unreadable answer from {}: {e}", self.server)))
    }

    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        self.send(self.http.get(format!("{}{path}", self.server)))
            .await
    }

    pub(crate) async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: String,
    ) -> Result<T, CliError> {
        self.send(self.http.post(format!("{}{path}", self.server)).body(body))
            .await
    }

    pub(crate) async fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, CliError> {
        self.send(self.http.post(format!("{}{path}", self.server)).json(body))
            .await
    }

    pub(crate) async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        self.send(self.http.delete(format!("{}{path}", self.server)))
            .await
    }
}
