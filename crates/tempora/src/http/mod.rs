//! Temporal's HTTP/JSON API (the `google.api.http` routes of the WorkflowService and
//! OperatorService), served by calling the same gRPC services in-process: one
//! implementation, two encodings.
//!
//! A request is matched against the routes read from the protos (`descriptors`, `routes`),
//! becomes the method's request message (path variables, query string, JSON body), is framed
//! as a gRPC message and sent to the `WorkflowServiceServer`/`OperatorServiceServer` tower
//! services the gRPC port serves; the answer (or the gRPC status, as a `google.rpc.Status`
//! with the HTTP code grpc-gateway uses) comes back as proto3 JSON (`json`). On the HTTP port
//! payloads are written in Temporal's shorthand unless `?noPayloadShorthand`; the UI port
//! (`crate::ui`) never shortens them, as Temporal's UI expects.
//!
//! Not for: worker RPCs (they have no HTTP route), streaming, anything that is not the API.

pub(crate) mod descriptors;
pub(crate) mod json;
mod routes;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use prost::Message;
use prost_reflect::MethodDescriptor;
use tonic::codegen::{Bytes, Service};
use tonic::Code;

use crate::frontend::{OperatorServiceServer, WorkflowServiceServer};
use routes::{Match, Routes};

/// Largest request body accepted (Temporal's HTTP API caps bodies at 4 MiB too).
const BODY_BYTES_MAX: usize = 4 * 1024 * 1024;

/// The HTTP API over the in-process gRPC services.
pub(crate) struct Gateway {
    /// Read from the descriptors on the first request: an idle server keeps neither in memory.
    routes: std::sync::OnceLock<Routes>,
    workflow: WorkflowServiceServer,
    operator: OperatorServiceServer,
}

/// How payloads are written: Temporal's HTTP port shortens them (unless asked not to), the
/// UI port never does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Payloads {
    Shorthand,
    Standard,
}

impl Gateway {
    pub(crate) fn new(workflow: WorkflowServiceServer, operator: OperatorServiceServer) -> Arc<Gateway> {
        Arc::new(Gateway { routes: std::sync::OnceLock::new(), workflow, operator })
    }

    /// Answers one HTTP request.
    pub(crate) async fn handle(&self, request: axum::extract::Request, payloads: Payloads) -> Response {
        let (parts, body) = request.into_parts();
        let query = parts.uri.query().unwrap_or("");
        let has = |switch: &str| form_urlencoded::parse(query.as_bytes()).any(|(k, _)| k == switch);
        let shorthand = payloads == Payloads::Shorthand && !has("noPayloadShorthand");
        let pretty = has("pretty");
        let routes = self.routes.get_or_init(|| Routes::new(descriptors::bindings()));
        let (route, vars) = match routes.find(parts.method.as_str(), parts.uri.path()) {
            Match::Found(route, vars) => (route, vars),
            Match::MethodNotAllowed => return error(Code::Unimplemented, "Method Not Allowed", None, false),
            Match::NotFound => return error(Code::NotFound, "Not Found", None, false),
        };
        let body = match axum::body::to_bytes(body, BODY_BYTES_MAX).await {
            Ok(body) => body,
            Err(_) => return error(Code::InvalidArgument, "http: request body too large", None, pretty),
        };
        let message = match routes::build_request(route, &vars, query, &body, shorthand) {
            Ok(message) => message,
            Err(e) => return error(Code::InvalidArgument, &e, None, pretty),
        };
        let method = &route.binding.method;
        match self.call(method, message.encode_to_vec(), &parts.headers).await {
            Ok(bytes) => match json::bytes_to_json_text(&bytes, &method.output(), shorthand, pretty) {
                Ok(text) => json_bytes_response(StatusCode::OK, text),
                Err(e) => error(Code::Internal, &format!("cannot encode the response: {e}"), None, pretty),
            },
            Err(status) => error(status.code(), status.message(), Some(status.details()), pretty),
        }
    }

    /// Calls `method` on the in-process gRPC service with one encoded request message and
    /// returns the encoded response message.
    async fn call(
        &self,
        method: &MethodDescriptor,
        request: Vec<u8>,
        headers: &HeaderMap,
    ) -> Result<Bytes, tonic::Status> {
        let mut frame = Vec::with_capacity(request.len() + 5);
        frame.push(0);
        frame.extend_from_slice(&(request.len() as u32).to_be_bytes());
        frame.extend_from_slice(&request);
        let path = format!("/{}/{}", method.parent_service().full_name(), method.name());
        let mut grpc = axum::http::Request::builder().method(Method::POST).uri(path);
        // Headers become gRPC metadata (authorization, client names…), as grpc-gateway forwards them.
        for (name, value) in headers {
            if !is_transport_header(name.as_str()) {
                grpc = grpc.header(name, value);
            }
        }
        let grpc = grpc
            .header(header::CONTENT_TYPE, "application/grpc")
            .header(header::TE, "trailers")
            .body(http_body_util::Full::new(Bytes::from(frame)))
            .map_err(|e| tonic::Status::internal(format!("cannot build the request: {e}")))?;
        let response = if method.parent_service().full_name() == descriptors::SERVICES[1] {
            self.operator.clone().call(grpc).await
        } else {
            self.workflow.clone().call(grpc).await
        };
        let Ok(response) = response;
        let (parts, body) = response.into_parts();
        if let Some(status) = tonic::Status::from_header_map(&parts.headers) {
            if status.code() != Code::Ok {
                return Err(status);
            }
        }
        let collected = body.collect().await.map_err(|e| tonic::Status::internal(format!("response body: {e}")))?;
        if let Some(status) = collected.trailers().and_then(tonic::Status::from_header_map) {
            if status.code() != Code::Ok {
                return Err(status);
            }
        }
        let bytes = collected.to_bytes();
        if bytes.len() < 5 || bytes[0] != 0 {
            return Err(tonic::Status::internal("the service answered no message"));
        }
        let length = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
        bytes
            .get(5..5 + length)
            .map(|_| bytes.slice(5..5 + length))
            .ok_or_else(|| tonic::Status::internal("short response message"))
    }
}

fn is_transport_header(name: &str) -> bool {
    matches!(
        name,
        "host"
            | "content-type"
            | "content-length"
            | "connection"
            | "te"
            | "transfer-encoding"
            | "accept-encoding"
            | "keep-alive"
            | "upgrade"
    )
}

/// grpc-gateway's `HTTPStatusFromCode`.
fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// An error as grpc-gateway writes it: `google.rpc.Status` JSON (`details` only when there are any).
pub(crate) fn error(code: Code, message: &str, details: Option<&[u8]>, pretty: bool) -> Response {
    let with_details = details
        .filter(|d| !d.is_empty())
        .and_then(|d| {
            let status = descriptors::POOL.get_message_by_name("google.rpc.Status")?;
            json::bytes_to_json(d, &status, false).ok()
        })
        .filter(|v| v.get("details").is_some());
    let mut body = serde_json::json!({"code": code as i32, "message": message});
    if let Some(details) = with_details.and_then(|v| v.get("details").cloned()) {
        body["details"] = details;
    }
    json_response(http_status(code), &body, pretty)
}

pub(crate) fn json_response(status: StatusCode, value: &serde_json::Value, pretty: bool) -> Response {
    let body = if pretty { serde_json::to_vec_pretty(value) } else { serde_json::to_vec(value) }.unwrap_or_default();
    json_bytes_response(status, body)
}

fn json_bytes_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, Body::from(body)).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The HTTP port's router: `/metrics` (Prometheus) and the API, payloads in shorthand.
/// The HTTP API port: the API, `/metrics`, and probes for orchestrators — `/healthz` (the
/// process answers) and `/readyz` (the store answers a read), both open without credentials.
pub(crate) fn router(gateway: Arc<Gateway>, svc: Arc<crate::history::Service>) -> axum::Router {
    let scraped = svc.clone();
    let metrics = axum::routing::get(move || {
        crate::telemetry::backlogs(scraped.matching.backlogs());
        crate::telemetry::run_cache(scraped.cache_usage());
        async {
            let mut response = crate::telemetry::render().into_response();
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
            response
        }
    });
    let ready = axum::routing::get(move || {
        let svc = svc.clone();
        async move {
            match svc.store().load_current_run("", "").await {
                Ok(_) => (StatusCode::OK, "ready\n".to_string()),
                Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")),
            }
        }
    });
    axum::Router::new()
        .route("/metrics", metrics)
        .route("/healthz", axum::routing::get(|| async { "ok\n" }))
        .route("/readyz", ready)
        .fallback(move |request: axum::extract::Request| {
            let gateway = gateway.clone();
            async move { gateway.handle(request, Payloads::Shorthand).await }
        })
}
