//! REST clients for `POST /v2/models/{name}/infer`: one hyper HTTP/1.1 connection each,
//! with the request body serialized once, as JSON or with Triton's binary tensor extension.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use kiln_api::protocol::rest::HEADER_CONTENT_LENGTH;
use serde_json::json;
use tokio::net::TcpStream;

use crate::loadgen::Caller;
use crate::{BenchError, OUTPUT_LEN, f32_from_le, f32_to_le};

/// How the tensors travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Input and output as JSON numbers.
    Json,
    /// Triton's binary tensor extension: a JSON header, then raw little-endian bytes, both ways.
    Binary,
}

/// A request body, serialized once and shared by every client.
#[derive(Debug, Clone)]
pub struct Body {
    encoding: Encoding,
    path: String,
    bytes: Bytes,
    /// The JSON part's length, for `Inference-Header-Content-Length` (binary only).
    json_len: Option<usize>,
}

impl Body {
    /// The body asking `model` for one row of `input` (input tensor `input`).
    pub fn new(encoding: Encoding, model: &str, input: &[f32]) -> Self {
        let path = format!("/v2/models/{model}/infer");
        let shape = [1, input.len()];
        match encoding {
            Encoding::Json => {
                let body = json!({
                    "inputs": [{"name": "input", "shape": shape, "datatype": "FP32", "data": input}],
                });
                Body {
                    encoding,
                    path,
                    bytes: Bytes::from(body.to_string()),
                    json_len: None,
                }
            }
            Encoding::Binary => {
                let header = json!({
                    "inputs": [{"name": "input", "shape": shape, "datatype": "FP32",
                                "parameters": {"binary_data_size": input.len() * 4}}],
                    "outputs": [{"name": "output", "parameters": {"binary_data": true}}],
                })
                .to_string();
                let json_len = header.len();
                let mut bytes = header.into_bytes();
                bytes.extend(f32_to_le(input));
                Body {
                    encoding,
                    path,
                    bytes: Bytes::from(bytes),
                    json_len: Some(json_len),
                }
            }
        }
    }

    fn request(&self) -> Request<Full<Bytes>> {
        let mut builder = Request::post(self.path.as_str())
            .header(hyper::header::HOST, "127.0.0.1")
            .header(hyper::header::CONTENT_LENGTH, self.bytes.len());
        builder = match self.json_len {
            Some(len) => builder
                .header(hyper::header::CONTENT_TYPE, "application/octet-stream")
                .header(HEADER_CONTENT_LENGTH, len),
            None => builder.header(hyper::header::CONTENT_TYPE, "application/json"),
        };
        builder
            .body(Full::new(self.bytes.clone()))
            .expect("a request built from valid parts")
    }
}

/// One HTTP/1.1 connection sending the same request over and over.
pub struct HttpCaller {
    sender: SendRequest<Full<Bytes>>,
    body: Body,
}

impl HttpCaller {
    /// Connects to `127.0.0.1:{port}` (TCP_NODELAY, as HTTP clients do) and drives the
    /// connection on the current tokio runtime.
    pub async fn connect(port: u16, body: Body) -> Result<Self, BenchError> {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| BenchError::context(format!("connecting to 127.0.0.1:{port}"), e))?;
        stream
            .set_nodelay(true)
            .map_err(|e| BenchError::context("TCP_NODELAY", e))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| BenchError::context("HTTP/1.1 handshake", e))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(HttpCaller { sender, body })
    }

    async fn send(&mut self) -> Result<(StatusCode, hyper::HeaderMap, Bytes), BenchError> {
        self.sender
            .ready()
            .await
            .map_err(|e| BenchError::context("HTTP connection", e))?;
        let response = self
            .sender
            .send_request(self.body.request())
            .await
            .map_err(|e| BenchError::context("HTTP request", e))?;
        let (parts, body) = response.into_parts();
        let bytes = body
            .collect()
            .await
            .map_err(|e| BenchError::context("HTTP response body", e))?
            .to_bytes();
        Ok((parts.status, parts.headers, bytes))
    }

    /// Sends one request and decodes its answer fully: the output row, to check the server
    /// computes what the bare run does. Done once per connection, before loading.
    pub async fn check(&mut self) -> Result<Vec<f32>, BenchError> {
        let (status, headers, bytes) = self.send().await?;
        if status != StatusCode::OK {
            return Err(BenchError::msg(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&bytes)
            )));
        }
        let bad = |what: &str| BenchError::msg(format!("unexpected answer ({what})"));
        match self.body.encoding {
            Encoding::Json => {
                let v: serde_json::Value = serde_json::from_slice(&bytes)
                    .map_err(|e| BenchError::context("answer is not JSON", e))?;
                let data = v["outputs"][0]["data"]
                    .as_array()
                    .ok_or_else(|| bad("no outputs[0].data"))?;
                Ok(data
                    .iter()
                    .map(|x| x.as_f64().unwrap_or(f64::NAN) as f32)
                    .collect())
            }
            Encoding::Binary => {
                let json_len: usize = headers
                    .get(HEADER_CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| bad("no Inference-Header-Content-Length"))?;
                if bytes.len() != json_len + OUTPUT_LEN * 4 {
                    return Err(bad("binary part is not one output row"));
                }
                Ok(f32_from_le(&bytes[json_len..]))
            }
        }
    }
}

impl Caller for HttpCaller {
    async fn call(&mut self) -> Result<(), BenchError> {
        let (status, _, bytes) = self.send().await?;
        if status != StatusCode::OK {
            return Err(BenchError::msg(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&bytes)
            )));
        }
        Ok(())
    }
}

/// The predictor's batch-size histogram so far, from `GET /metrics`: (rows, model runs).
pub async fn batch_totals(port: u16) -> Result<(f64, f64), BenchError> {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| BenchError::context(format!("connecting to 127.0.0.1:{port}"), e))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream))
            .await
            .map_err(|e| BenchError::context("HTTP/1.1 handshake", e))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let request = Request::get("/metrics")
        .header(hyper::header::HOST, "127.0.0.1")
        .body(Full::default())
        .expect("a request built from valid parts");
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| BenchError::context("GET /metrics", e))?;
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| BenchError::context("GET /metrics", e))?
        .to_bytes();
    Ok(parse_batch_totals(&String::from_utf8_lossy(&body)))
}

/// `kiln_predictor_batch_size_sum` and `_count` from Prometheus text (0 when absent).
pub fn parse_batch_totals(text: &str) -> (f64, f64) {
    let value = |name: &str| {
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    (
        value("kiln_predictor_batch_size_sum"),
        value("kiln_predictor_batch_size_count"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_totals_are_read_from_prometheus_text() {
        let text = "# TYPE kiln_predictor_batch_size histogram\n\
                    kiln_predictor_batch_size_bucket{model=\"mlp\",le=\"1\"} 3\n\
                    kiln_predictor_batch_size_sum{model=\"mlp\"} 40\n\
                    kiln_predictor_batch_size_count{model=\"mlp\"} 5\n";
        assert_eq!(parse_batch_totals(text), (40.0, 5.0));
        assert_eq!(parse_batch_totals(""), (0.0, 0.0));
    }

    #[test]
    fn the_binary_body_is_a_json_header_then_raw_floats() {
        let body = Body::new(Encoding::Binary, "mlp", &[1.0, 2.0]);
        let json_len = body.json_len.unwrap();
        let header: serde_json::Value = serde_json::from_slice(&body.bytes[..json_len]).unwrap();
        assert_eq!(header["inputs"][0]["parameters"]["binary_data_size"], 8);
        assert_eq!(f32_from_le(&body.bytes[json_len..]), vec![1.0, 2.0]);
        let json = Body::new(Encoding::Json, "mlp", &[1.0, 2.0]);
        let v: serde_json::Value = serde_json::from_slice(&json.bytes).unwrap();
        assert_eq!(v["inputs"][0]["data"], serde_json::json!([1.0, 2.0]));
        assert_eq!(json.path, "/v2/models/mlp/infer");
    }
}
