//! A plain-HTTP front for the S3 server on loopback that fills up: once clients have uploaded
//! `room` bytes through it, every further upload (`PUT`: a part or a whole object) is answered
//! as MinIO answers when its drives reach their free-space threshold (HTTP 507,
//! `XMinioStorageFull`: minio `cmd/api-errors.go`, `ErrStorageFull`). Everything else (listing,
//! reading, deleting, aborting an upload) is still forwarded, as a full MinIO still serves it.
//! Requests are forwarded with their headers unchanged, so their signatures still verify.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// MinIO's answer to a write when it is full (its `ErrStorageFull`).
const STORAGE_FULL: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>XMinioStorageFull</Code><Message>Storage backend has reached its minimum free drive threshold. Please delete a few objects to proceed.</Message></Error>";

struct Shared {
    upstream: SocketAddr,
    room: u64,
    uploaded: AtomicU64,
    refused: AtomicU64,
    client: Client<HttpConnector, Full<Bytes>>,
}

pub struct StoreFront {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl StoreFront {
    /// Starts a front on 127.0.0.1 for the store at `upstream` that holds `room` more bytes.
    pub fn start(upstream: SocketAddr, room: u64) -> std::io::Result<StoreFront> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("store-front")
            .enable_all()
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            room,
            uploaded: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            client: Client::builder(TokioExecutor::new()).build_http(),
        });
        let serving = shared.clone();
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = serving.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| forward(shared.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(StoreFront { addr, shared, runtime: Some(runtime) })
    }

    /// `http://127.0.0.1:<port>`, for AWS_ENDPOINT_URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Uploads refused because the store was full.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::Relaxed)
    }
}

impl Drop for StoreFront {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn answer(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

async fn forward(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (mut parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Ok(answer(StatusCode::BAD_REQUEST, format!("reading the request: {e}"))),
    };
    if parts.method == hyper::Method::PUT {
        let before = shared.uploaded.fetch_add(body.len() as u64, Ordering::Relaxed);
        if before + body.len() as u64 > shared.room {
            shared.refused.fetch_add(1, Ordering::Relaxed);
            let mut full = answer(StatusCode::INSUFFICIENT_STORAGE, STORAGE_FULL);
            full.headers_mut()
                .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/xml"));
            return Ok(full);
        }
    }
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = match format!("http://{}{path}", shared.upstream).parse() {
        Ok(uri) => uri,
        Err(e) => return Ok(answer(StatusCode::BAD_REQUEST, format!("bad path: {e}"))),
    };
    // The Host header stays the client's: it is part of what the signature covers.
    match shared.client.request(Request::from_parts(parts, Full::new(body))).await {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            match body.collect().await {
                Ok(b) => Ok(Response::from_parts(parts, Full::new(b.to_bytes()))),
                Err(e) => Ok(answer(StatusCode::BAD_GATEWAY, format!("reading the store's answer: {e}"))),
            }
        }
        Err(e) => Ok(answer(StatusCode::BAD_GATEWAY, format!("forwarding to the store: {e}"))),
    }
}
