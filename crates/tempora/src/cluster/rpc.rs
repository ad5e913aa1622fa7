//! Node-to-node calls, on each node's public gRPC port under the service
//! `tempora.cluster.v1.Node`: a run's owner executes a request for another node
//! (`Execute`: a task's start for the queue's home, a signal or close report from a run on
//! another node), starts a child run (`StartWorkflow`), and a queue's home takes a task
//! offered by a run's owner (`AddTask`), and the holder of the registries records a versioned
//! worker's poll in its deployment (`DeploymentPoller`). Each call carries one JSON document (the engine's
//! serde types) in a one-field protobuf message (and `RemoveClosed`: a retention sweep's
//! deletion of a closed run) and answers `Result<T, Error>` the same way,
//! so errors keep their kind across the hop. A receiver serves only what it holds: a call for
//! a shard it does not hold answers UNAVAILABLE, and the caller retries.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tonic::body::Body;
use tonic::codegen::{http, BoxFuture, Bytes, Service as TowerService, StdError};
use tonic::server::{Grpc, NamedService, UnaryService};

use crate::engine::request::Request;
use crate::engine::start::StartPolicy;
use crate::engine::state::RunKey;
use crate::engine::workflow::StartWorkflow;
use crate::error::{Error, Result};
use crate::history::Service;
use crate::matching::{QueuedTask, TaskKind};

const SERVICE: &str = "tempora.cluster.v1.Node";

/// How long one node-to-node call may take (a poll's task start, a signal).
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// One JSON document.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Envelope {
    #[prost(bytes = "vec", tag = "1")]
    pub json: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Execute {
    pub run: RunKey,
    pub request: Request,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct StartChild {
    pub request: StartWorkflow,
    pub policy: StartPolicy,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct AddTask {
    pub namespace: String,
    pub task_queue: String,
    pub kind: TaskKind,
    pub task: QueuedTask,
    /// A sticky queue: offered only if a worker polls it (else the answer is `false` and the
    /// run's owner offers the task to the normal queue).
    pub sticky: bool,
}

/// A versioned worker polled a task queue: recorded in its deployment by the holder of the
/// registries, which answers the deployment as it now is.
#[derive(Serialize, Deserialize)]
pub(crate) struct DeploymentPoller {
    pub namespace: String,
    pub version: crate::engine::state::DeploymentVersion,
    pub task_queue: String,
    pub kind: TaskKind,
}

/// Calls `method` on a node.
pub(crate) async fn call<Req: Serialize, Resp: DeserializeOwned>(
    peer: crate::cluster::Peer,
    method: &'static str,
    request: &Req,
) -> Result<Resp> {
    let json = serde_json::to_vec(request).map_err(|e| Error::Internal(format!("encoding a node call: {e}")))?;
    let mut grpc = tonic::client::Grpc::new(peer.channel.clone());
    grpc.ready().await.map_err(|e| Error::Unavailable(format!("node unreachable: {e}")))?;
    let path = http::uri::PathAndQuery::try_from(format!("/{SERVICE}/{method}"))
        .map_err(|e| Error::Internal(format!("node call path: {e}")))?;
    let mut request = tonic::Request::new(Envelope { json });
    request.set_timeout(CALL_TIMEOUT);
    peer.sign(request.metadata_mut());
    let codec = tonic_prost::ProstCodec::<Envelope, Envelope>::default();
    // The deadline is enforced here too: a paused or unreachable node never answers.
    let answer = tokio::time::timeout(CALL_TIMEOUT, grpc.unary(request, path, codec))
        .await
        .map_err(|_| Error::Unavailable(format!("node call {method} timed out")))?
        .map_err(|status| match status.code() {
            tonic::Code::Unimplemented => {
                Error::Unavailable(format!("node does not serve {method}: {}", status.message()))
            }
            tonic::Code::Unauthenticated => {
                // A misconfigured cluster: loud, since callers only see their calls retried.
                tracing::warn!(method, "a node refused this node's call: is --cluster-secret the same on every node?");
                Error::Internal(format!("node call {method} refused: {}", status.message()))
            }
            _ => Error::Unavailable(format!("node call {method} failed: {}", status.message())),
        })?;
    let result: Result<Resp> = serde_json::from_slice(&answer.into_inner().json)
        .map_err(|e| Error::Internal(format!("decoding a node answer: {e}")))?;
    result
}

/// The `tempora.cluster.v1.Node` service.
#[derive(Clone)]
pub struct NodeServer {
    svc: Arc<Service>,
}

impl NodeServer {
    pub(crate) fn new(svc: Arc<Service>) -> Self {
        NodeServer { svc }
    }
}

impl NamedService for NodeServer {
    const NAME: &'static str = SERVICE;
}

struct Call<F>(Option<F>);

impl<F, Fut> UnaryService<Envelope> for Call<F>
where
    F: FnOnce(Vec<u8>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Vec<u8>> + Send + 'static,
{
    type Response = Envelope;
    type Future = BoxFuture<tonic::Response<Envelope>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<Envelope>) -> Self::Future {
        let handler = self.0.take();
        Box::pin(async move {
            let handler = handler.ok_or_else(|| tonic::Status::internal("handler called twice"))?;
            Ok(tonic::Response::new(Envelope { json: handler(request.into_inner().json).await }))
        })
    }
}

/// Decodes a call, runs it, encodes its result.
async fn serve<Req, Resp, Fut>(json: Vec<u8>, run: impl FnOnce(Req) -> Fut) -> Vec<u8>
where
    Req: DeserializeOwned,
    Resp: Serialize,
    Fut: std::future::Future<Output = Result<Resp>>,
{
    let result = match serde_json::from_slice::<Req>(&json) {
        Ok(request) => run(request).await,
        Err(e) => Err(Error::invalid(format!("bad node call: {e}"))),
    };
    serde_json::to_vec(&result).unwrap_or_else(|e| {
        let failed: Result<()> = Err(Error::Internal(format!("encoding a node answer: {e}")));
        serde_json::to_vec(&failed).expect("an error serialises")
    })
}

impl<B> TowerService<http::Request<B>> for NodeServer
where
    B: tonic::codegen::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = req.uri().path().rsplit('/').next().unwrap_or_default().to_string();
        let svc = self.svc.clone();
        let refused = svc.cluster().is_some_and(|c| {
            c.has_secret() && !c.is_node_call(&tonic::metadata::MetadataMap::from_headers(req.headers().clone()))
        });
        Box::pin(async move {
            if refused {
                return Ok(tonic::Status::unauthenticated("node calls need the cluster's secret").into_http());
            }
            let mut grpc = Grpc::new(tonic_prost::ProstCodec::<Envelope, Envelope>::default())
                .apply_max_message_size_config(Some(usize::MAX), Some(usize::MAX));
            let response = match method.as_str() {
                "Execute" => {
                    let handler = move |json| {
                        serve(json, move |c: Execute| async move { svc.execute_here(&c.run, c.request).await })
                    };
                    grpc.unary(Call(Some(handler)), req).await
                }
                "StartWorkflow" => {
                    let handler = move |json| {
                        serve(json, move |c: StartChild| async move { svc.start_here(c.request, c.policy).await })
                    };
                    grpc.unary(Call(Some(handler)), req).await
                }
                "RemoveClosed" => {
                    let handler = move |json| serve(json, move |run: RunKey| async move { svc.remove_here(run).await });
                    grpc.unary(Call(Some(handler)), req).await
                }
                "DeploymentPoller" => {
                    let handler = move |json| {
                        serve(json, move |c: DeploymentPoller| async move { svc.deployment_poller_from(c).await })
                    };
                    grpc.unary(Call(Some(handler)), req).await
                }
                "AddTask" => {
                    let handler = move |json| serve(json, move |c: AddTask| async move { svc.add_task_here(c) });
                    grpc.unary(Call(Some(handler)), req).await
                }
                other => {
                    tonic::Status::unimplemented(format!("method {other} is not implemented by tempora")).into_http()
                }
            };
            Ok(response)
        })
    }
}
