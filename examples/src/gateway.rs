//! The HTTP gateway: starts workflows from JSON requests and answers with their results.
//!
//! - `POST /start` — body `{"name": "...", "count": 1, "workflow_id": "optional"}`: starts
//!   `YourWorkflowDefinition`, waits, answers `{"workflow_id", "run_id", "result"}`.
//! - `POST /transfer` — body `{"from", "to", "amount", "pause_in_compensation_secs"}`: the saga.
//! - `GET /result/{workflow_id}` — the result of a workflow by its ID alone.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use temporalio_client::{Client, WorkflowGetResultOptions, WorkflowStartOptions};
use temporalio_common::{HasWorkflowDefinition, WorkflowDefinition};

use crate::{Transfer, TransferMoney, YourParam, YourWorkflowDefinition, TASK_QUEUE};

#[derive(Debug, Deserialize)]
pub struct StartRequest {
    #[serde(flatten)]
    pub param: YourParam,
    pub workflow_id: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Started {
    pub workflow_id: String,
    pub run_id: String,
    pub result: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Fetched {
    pub workflow_id: String,
    pub result: String,
}

type Failure = (StatusCode, Json<serde_json::Value>);

fn failure(status: StatusCode, error: impl std::fmt::Display) -> Failure {
    (status, Json(serde_json::json!({ "error": error.to_string() })))
}

pub fn router(client: Client) -> Router {
    Router::new()
        .route("/start", post(start))
        .route("/transfer", post(transfer))
        .route("/result/{workflow_id}", get(result))
        .with_state(client)
}

async fn start(State(client): State<Client>, Json(req): Json<StartRequest>) -> Result<Json<Started>, Failure> {
    let workflow_id = req.workflow_id.unwrap_or_else(|| format!("your-workflow-{}", uuid::Uuid::new_v4()));
    start_and_wait(&client, YourWorkflowDefinition::run, req.param, workflow_id).await
}

async fn transfer(State(client): State<Client>, Json(t): Json<Transfer>) -> Result<Json<Started>, Failure> {
    start_and_wait(&client, TransferMoney::run, t, format!("transfer-{}", uuid::Uuid::new_v4())).await
}

/// Starts `workflow` on the example task queue and waits for its (text) result.
async fn start_and_wait<W>(
    client: &Client,
    workflow: W,
    input: W::Input,
    workflow_id: String,
) -> Result<Json<Started>, Failure>
where
    W: HasWorkflowDefinition + WorkflowDefinition<Output = String> + Send,
    W::Input: Send,
{
    let handle = client
        .start_workflow(workflow, input, WorkflowStartOptions::new(TASK_QUEUE, &workflow_id).build())
        .await
        .map_err(|e| failure(StatusCode::BAD_GATEWAY, e))?;
    let run_id = handle.info().run_id.clone().unwrap_or_default();
    let result = handle
        .get_result(WorkflowGetResultOptions::default())
        .await
        .map_err(|e| failure(StatusCode::BAD_GATEWAY, e))?;
    Ok(Json(Started { workflow_id, run_id, result }))
}

async fn result(State(client): State<Client>, Path(workflow_id): Path<String>) -> Result<Json<Fetched>, Failure> {
    let handle = client.get_workflow_handle::<YourWorkflowDefinition>(&workflow_id);
    let result =
        handle.get_result(WorkflowGetResultOptions::default()).await.map_err(|e| failure(StatusCode::NOT_FOUND, e))?;
    Ok(Json(Fetched { workflow_id, result }))
}
