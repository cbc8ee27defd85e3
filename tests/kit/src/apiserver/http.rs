//! The wire of the simulated API server: JSON, text and `Status` answers, APF's 429, query
//! strings, request bodies, and gzip as the apiserver's APIResponseCompression does it.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::Sim;

pub type Resp = Response<Full<Bytes>>;

/// A JSON answer.
pub fn json_response(code: u16, body: &Value) -> Resp {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    Response::builder()
        .status(code)
        .header("Content-Type", "application/json")
        .body(Full::new(Bytes::from(bytes)))
        .expect("valid response")
}

/// API Priority and Fairness's rejection: plain text, not a Status, with Retry-After
/// (apiserver `pkg/server/filters/priority-and-fairness.go` → `tooManyRequests`, `http.Error`).
pub fn too_many_requests(retry_after_seconds: u64) -> Resp {
    let mut resp = text_response(429, "Too many requests, please try again later.\n".into());
    resp.headers_mut().insert("Retry-After", HeaderValue::from(retry_after_seconds));
    resp
}

pub fn text_response(code: u16, body: String) -> Resp {
    Response::builder()
        .status(code)
        .header("Content-Type", "text/plain; charset=utf-8")
        .header("X-Content-Type-Options", "nosniff")
        .body(Full::new(Bytes::from(body)))
        .expect("valid response")
}

/// A `Status` failure.
pub fn status(code: u16, reason: &str, message: &str, details: Option<Value>) -> Resp {
    let mut body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code});
    if let Some(d) = details {
        body["details"] = d;
    }
    json_response(code, &body)
}

fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                    out.push(b);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parsed query parameters (several values per key kept in order).
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(q: Option<&str>) -> Query {
        Query(q.map(query_pairs).unwrap_or_default())
    }
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
    pub fn all(&self, key: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.clone()).collect()
    }
    pub fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }
}

/// API answers from this size on are compressed when the client accepts gzip, as the
/// apiserver's APIResponseCompression does; /metrics always is (promhttp's default).
pub(super) const GZIP_THRESHOLD: u64 = 128 * 1024;

pub(super) async fn gzipped(sim: &Sim, response: Resp) -> Resp {
    use std::io::Write;
    if response.status() == http::StatusCode::SWITCHING_PROTOCOLS
        || response.headers().contains_key(http::header::CONTENT_ENCODING)
    {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(collected) = body.collect().await;
    let plain = collected.to_bytes();
    let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(plain.len() / 8), flate2::Compression::fast());
    let compressed = match encoder.write_all(&plain).and_then(|_| encoder.finish()) {
        Ok(c) => c,
        Err(_) => return Response::from_parts(parts, Full::new(plain)),
    };
    sim.gzipped.fetch_add(1, Ordering::Relaxed);
    parts.headers.insert(http::header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    parts.headers.remove(http::header::CONTENT_LENGTH);
    parts.headers.append(http::header::VARY, HeaderValue::from_static("Accept-Encoding"));
    Response::from_parts(parts, Full::new(Bytes::from(compressed)))
}

/// The request's body as a JSON object (create, update), or the API server's 400.
#[allow(clippy::result_large_err, reason = "the error is the response to send")]
pub(super) async fn read_object(req: Request<Incoming>) -> Result<Value, Resp> {
    let body = read_body(req).await?;
    serde_json::from_slice(&body)
        .map_err(|_| status(400, "BadRequest", "the body of the request was in an unknown format", None))
}

#[allow(clippy::result_large_err, reason = "the error is the response to send")]
pub(super) async fn read_body(req: Request<Incoming>) -> Result<Bytes, Resp> {
    match req.into_body().collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) => Err(status(400, "BadRequest", &format!("cannot read body: {e}"), None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%3Db%2Bc+d"), "a=b+c d");
    }
}
