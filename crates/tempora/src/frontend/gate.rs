//! What every RPC passes before its handler runs: authentication and authorization (when
//! configured, `crate::auth`), then the namespace's rate limits — requests per second, and
//! concurrent long polls — answered RESOURCE_EXHAUSTED as Temporal's frontend answers them,
//! so one namespace cannot starve the others.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use temporalio_protos::temporal::api::operatorservice::v1 as ops;
use temporalio_protos::temporal::api::workflowservice::v1 as ws;

use crate::auth::{authorize, is_open, Authenticator};
use crate::error::Error;

/// Per-namespace limits; `0` turns one off.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimits {
    /// Requests per second per namespace (Temporal's `frontend.namespaceRPS`: 2400), with a
    /// burst of one second's worth.
    pub requests_per_second: f64,
    /// Long polls waiting at once per namespace (Temporal's `frontend.namespaceCount`: 1200).
    pub concurrent_polls: usize,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits { requests_per_second: 2400.0, concurrent_polls: 1200 }
    }
}

/// Namespaces tracked before idle ones are forgotten (requests may name any string).
const TRACKED_MAX: usize = 4096;

/// Long polls waiting, per namespace.
type PollCounts = Mutex<HashMap<String, usize>>;

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub(crate) struct Gate {
    auth: Option<Authenticator>,
    limits: RateLimits,
    buckets: Mutex<HashMap<String, Bucket>>,
    polls: Arc<PollCounts>,
}

/// Holds a long poll's place in its namespace's count until dropped.
pub(crate) struct Admission {
    poll: Option<(Arc<PollCounts>, String)>,
}

impl Admission {
    /// Nothing held (a call another node admitted).
    pub(crate) fn none() -> Admission {
        Admission { poll: None }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some((polls, namespace)) = self.poll.take() {
            let mut polls = polls.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = polls.get_mut(&namespace) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    polls.remove(&namespace);
                }
            }
        }
    }
}

fn is_long_poll(method: &str) -> bool {
    matches!(method, "PollWorkflowTaskQueue" | "PollActivityTaskQueue" | "PollNexusTaskQueue")
}

impl Gate {
    pub(crate) fn new(auth: Option<Authenticator>, limits: RateLimits) -> Self {
        Gate { auth, limits, buckets: Default::default(), polls: Default::default() }
    }

    /// Lets a call of `method` on `namespace` (`None`: the request names none) through, or
    /// says why not.
    pub(crate) fn admit(
        &self,
        method: &str,
        namespace: Option<&str>,
        metadata: &tonic::metadata::MetadataMap,
    ) -> Result<Admission, Error> {
        self.check_auth(method, namespace, metadata.get("authorization").and_then(|v| v.to_str().ok()))?;
        let Some(namespace) = namespace.filter(|n| !n.is_empty()) else {
            return Ok(Admission { poll: None });
        };
        if method != "GetSystemInfo" {
            self.take_token(namespace)?;
        }
        if !is_long_poll(method) || self.limits.concurrent_polls == 0 {
            return Ok(Admission { poll: None });
        }
        let mut polls = self.polls.lock().unwrap_or_else(|e| e.into_inner());
        let waiting = polls.entry(namespace.to_string()).or_default();
        if *waiting >= self.limits.concurrent_polls {
            return Err(Error::Throttled {
                message: "namespace concurrent poller limit exceeded".into(),
                concurrent: true,
            });
        }
        *waiting += 1;
        Ok(Admission { poll: Some((self.polls.clone(), namespace.to_string())) })
    }

    /// Authentication and authorization alone (for pages that read server state directly).
    /// Open methods skip both: a client connects (GetSystemInfo) before its credentials matter,
    /// and learns what is wrong with them from its first real call.
    pub(crate) fn check_auth(
        &self,
        method: &str,
        namespace: Option<&str>,
        authorization: Option<&str>,
    ) -> Result<(), Error> {
        match &self.auth {
            Some(_) if is_open(method) => Ok(()),
            Some(auth) => authorize(&auth.authenticate(authorization)?, method, namespace),
            None => Ok(()),
        }
    }

    fn take_token(&self, namespace: &str) -> Result<(), Error> {
        let rate = self.limits.requests_per_second;
        if rate <= 0.0 {
            return Ok(());
        }
        let burst = rate.max(1.0);
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= TRACKED_MAX && !buckets.contains_key(namespace) {
            // Forget namespaces whose buckets have refilled: they lose nothing by it.
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let bucket = buckets.entry(namespace.to_string()).or_insert(Bucket { tokens: burst, at: now });
        bucket.tokens = (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * rate).min(burst);
        bucket.at = now;
        if bucket.tokens < 1.0 {
            return Err(Error::Throttled { message: "namespace rate limit exceeded".into(), concurrent: false });
        }
        bucket.tokens -= 1.0;
        Ok(())
    }
}

/// The namespace a request names, for authorization and rate limits; `None` for requests
/// that have no namespace field (cluster-wide methods).
pub(crate) trait Namespaced {
    fn namespace(&self) -> Option<&str>;
}

macro_rules! namespaced {
    (with: $($with:ty),* ; without: $($without:ty),* $(,)?) => {
        $(impl Namespaced for $with {
            fn namespace(&self) -> Option<&str> {
                Some(&self.namespace)
            }
        })*
        $(impl Namespaced for $without {
            fn namespace(&self) -> Option<&str> {
                None
            }
        })*
    };
}

namespaced!(
    with:
    ws::CountSchedulesRequest, ws::CountWorkflowExecutionsRequest, ws::CreateScheduleRequest,
    ws::DeleteScheduleRequest, ws::DeleteWorkflowExecutionRequest, ws::DescribeBatchOperationRequest,
    ws::DescribeNamespaceRequest, ws::DescribeScheduleRequest, ws::DescribeTaskQueueRequest,
    ws::DescribeWorkflowExecutionRequest, ws::ExecuteMultiOperationRequest,
    ws::GetWorkerBuildIdCompatibilityRequest, ws::GetWorkerTaskReachabilityRequest,
    ws::GetWorkerVersioningRulesRequest, ws::GetWorkflowExecutionHistoryRequest,
    ws::GetWorkflowExecutionHistoryReverseRequest, ws::ListArchivedWorkflowExecutionsRequest,
    ws::ListBatchOperationsRequest, ws::ListClosedWorkflowExecutionsRequest,
    ws::ListOpenWorkflowExecutionsRequest, ws::ListScheduleMatchingTimesRequest, ws::ListSchedulesRequest,
    ws::ListTaskQueuePartitionsRequest, ws::ListWorkflowExecutionsRequest, ws::PatchScheduleRequest,
    ws::PauseActivityExecutionRequest, ws::PauseActivityRequest, ws::PollActivityTaskQueueRequest,
    ws::PollNexusTaskQueueRequest, ws::PollWorkflowExecutionUpdateRequest, ws::PollWorkflowTaskQueueRequest,
    ws::QueryWorkflowRequest, ws::RecordActivityTaskHeartbeatByIdRequest, ws::RecordActivityTaskHeartbeatRequest,
    ws::RegisterNamespaceRequest, ws::RequestCancelWorkflowExecutionRequest, ws::ResetActivityExecutionRequest,
    ws::ResetActivityRequest, ws::ResetStickyTaskQueueRequest, ws::ResetWorkflowExecutionRequest,
    ws::RespondActivityTaskCanceledByIdRequest, ws::RespondActivityTaskCanceledRequest,
    ws::RespondActivityTaskCompletedByIdRequest, ws::RespondActivityTaskCompletedRequest,
    ws::RespondActivityTaskFailedByIdRequest, ws::RespondActivityTaskFailedRequest,
    ws::RespondNexusTaskCompletedRequest, ws::RespondNexusTaskFailedRequest,
    ws::RespondQueryTaskCompletedRequest, ws::RespondWorkflowTaskCompletedRequest,
    ws::RespondWorkflowTaskFailedRequest, ws::ScanWorkflowExecutionsRequest, ws::ShutdownWorkerRequest,
    ws::SignalWithStartWorkflowExecutionRequest, ws::SignalWorkflowExecutionRequest,
    ws::StartBatchOperationRequest, ws::StartWorkflowExecutionRequest, ws::StopBatchOperationRequest,
    ws::TerminateWorkflowExecutionRequest, ws::UnpauseActivityExecutionRequest, ws::UnpauseActivityRequest,
    ws::UpdateActivityExecutionOptionsRequest, ws::UpdateActivityOptionsRequest, ws::UpdateNamespaceRequest,
    ws::UpdateScheduleRequest, ws::UpdateTaskQueueConfigRequest, ws::UpdateWorkerBuildIdCompatibilityRequest,
    ws::UpdateWorkerVersioningRulesRequest, ws::UpdateWorkflowExecutionOptionsRequest,
    ws::UpdateWorkflowExecutionRequest,
    ws::DescribeWorkerDeploymentRequest, ws::ListWorkerDeploymentsRequest,
    ws::SetWorkerDeploymentCurrentVersionRequest, ws::SetWorkerDeploymentRampingVersionRequest,
    ws::DescribeWorkerDeploymentVersionRequest, ws::DeleteWorkerDeploymentVersionRequest,
    ws::DeleteWorkerDeploymentRequest, ws::UpdateWorkerDeploymentVersionMetadataRequest,
    ws::SetWorkerDeploymentManagerRequest,
    ops::AddSearchAttributesRequest, ops::RemoveSearchAttributesRequest, ops::ListSearchAttributesRequest,
    ops::DeleteNamespaceRequest;
    without:
    ws::GetClusterInfoRequest, ws::GetSearchAttributesRequest, ws::GetSystemInfoRequest, ws::ListNamespacesRequest,
    ops::CreateNexusEndpointRequest, ops::DeleteNexusEndpointRequest, ops::GetNexusEndpointRequest,
    ops::ListNexusEndpointsRequest, ops::UpdateNexusEndpointRequest, ops::ListClustersRequest,
);

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(rps: f64, polls: usize) -> Gate {
        Gate::new(None, RateLimits { requests_per_second: rps, concurrent_polls: polls })
    }

    #[test]
    fn a_namespace_over_its_rate_is_refused_and_others_are_not() {
        let gate = gate(5.0, 0);
        let md = tonic::metadata::MetadataMap::new();
        for _ in 0..5 {
            gate.admit("StartWorkflowExecution", Some("busy"), &md).unwrap();
        }
        let refused = gate.admit("StartWorkflowExecution", Some("busy"), &md).err().unwrap();
        assert_eq!(refused, Error::Throttled { message: "namespace rate limit exceeded".into(), concurrent: false });
        gate.admit("StartWorkflowExecution", Some("quiet"), &md).unwrap();
        gate.admit("GetSystemInfo", None, &md).unwrap();
    }

    #[test]
    fn long_polls_are_counted_while_they_wait() {
        let gate = gate(0.0, 2);
        let md = tonic::metadata::MetadataMap::new();
        let a = gate.admit("PollWorkflowTaskQueue", Some("ns"), &md).unwrap();
        let _b = gate.admit("PollActivityTaskQueue", Some("ns"), &md).unwrap();
        let refused = gate.admit("PollWorkflowTaskQueue", Some("ns"), &md).err().unwrap();
        assert!(matches!(refused, Error::Throttled { concurrent: true, .. }));
        gate.admit("StartWorkflowExecution", Some("ns"), &md).unwrap();
        gate.admit("PollWorkflowTaskQueue", Some("other"), &md).unwrap();
        drop(a);
        gate.admit("PollWorkflowTaskQueue", Some("ns"), &md).unwrap();
    }
}
