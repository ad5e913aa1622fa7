//! The built-in web UI, served on the UI port: a small page application of our own
//! (`assets/`, compiled into the binary, no build step, nothing fetched from elsewhere) that
//! reads and acts through Temporal's HTTP API on the same port (`/api/v1/…`, payloads never
//! shortened, as Temporal's UI expects), plus ui-server's `/api/v1/settings`, so Temporal's
//! own UI can be pointed at this port too.
//!
//! Not for: any server logic. Every page is built in the browser from the API's answers.

use std::sync::Arc;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::frontend::gate::Gate;
use crate::history::Service as History;
use crate::http::{Gateway, Payloads};

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// ui-server's settings, as Temporal's UI reads them at start.
fn settings() -> serde_json::Value {
    serde_json::json!({
        "Auth": {"Enabled": false, "Options": null},
        "BannerText": "",
        "DefaultNamespace": "default",
        "ShowTemporalSystemNamespace": false,
        "FeedbackURL": "",
        "NotifyOnNewVersion": false,
        "Codec": {"Endpoint": "", "PassAccessToken": false, "IncludeCredentials": false,
                  "DefaultErrorMessage": "", "DefaultErrorLink": ""},
        "Version": env!("CARGO_PKG_VERSION"),
        "DisableWriteActions": false,
        "WorkflowTerminateDisabled": false,
        "WorkflowCancelDisabled": false,
        "WorkflowSignalDisabled": false,
        "WorkflowUpdateDisabled": false,
        "WorkflowResetDisabled": false,
        "BatchActionsDisabled": false,
        "StartWorkflowDisabled": false,
        "HideWorkflowQueryErrors": false,
        "RefreshWorkflowCountsDisabled": false,
        "ActivityCommandsDisabled": false,
    })
}

/// `/ui/overview?namespace=NS`: the last hour per minute (`crate::stats`); it needs what
/// counting the namespace's workflows needs.
fn overview(svc: &History, gate: &Gate, query: Option<&str>, headers: &axum::http::HeaderMap) -> Response {
    let namespace = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == "namespace")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| "default".into());
    let authorization = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if let Err(e) = gate.check_auth("CountWorkflowExecutions", Some(&namespace), authorization) {
        let status = tonic::Status::from(e);
        return crate::http::error(status.code(), status.message(), Some(status.details()), false);
    }
    let overview = svc.stats.overview(&namespace, svc.now_ms());
    let value = serde_json::to_value(overview).unwrap_or_default();
    crate::http::json_response(StatusCode::OK, &value, false)
}

/// The UI port's router: the API (standard payloads), settings, the overview's figures,
/// assets, and the page for every other path (the application routes in the browser).
pub(crate) fn router(gateway: Arc<Gateway>, svc: Arc<History>, gate: Arc<Gate>) -> axum::Router {
    let api = gateway.clone();
    axum::Router::new()
        .route(
            "/ui/overview",
            get(move |uri: axum::http::Uri, headers: axum::http::HeaderMap| {
                let (svc, gate) = (svc.clone(), gate.clone());
                async move { overview(&svc, &gate, uri.query(), &headers) }
            }),
        )
        .route("/api/v1/settings", get(|| async { crate::http::json_response(StatusCode::OK, &settings(), false) }))
        .route("/static/app.js", get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }))
        .route("/static/app.css", get(|| async { asset("text/css; charset=utf-8", APP_CSS) }))
        .route("/healthz", get(|| async { "OK" }))
        .fallback(move |request: axum::extract::Request| {
            let gateway = api.clone();
            async move {
                if request.uri().path().starts_with("/api/") {
                    gateway.handle(request, Payloads::Standard).await
                } else {
                    asset("text/html; charset=utf-8", INDEX_HTML)
                }
            }
        })
}
