//! Hostile input: every RPC of both services driven with raw bytes — garbage, valid messages
//! of the wrong type, mutations of valid messages (flipped, truncated, spliced bytes), deep
//! nesting and oversized frames — against an in-process server. Every answer must be a proper
//! gRPC status within its deadline, no handler may panic, and the server must serve a
//! workflow normally afterwards. `TEMPORA_FUZZ_INPUTS` sets how many inputs (CI: the default).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use prost::Message;
use temporalio_protos::temporal::api::command::v1::{command, Command, CompleteWorkflowExecutionCommandAttributes};
use temporalio_protos::temporal::api::common::v1::{Payload, Payloads, WorkflowExecution, WorkflowType};
use temporalio_protos::temporal::api::failure::v1::Failure;
use temporalio_protos::temporal::api::taskqueue::v1::TaskQueue;
use temporalio_protos::temporal::api::workflowservice::v1 as ws;
use tonic::Code;

/// Every method the server routes, and two it does not.
const WORKFLOW_METHODS: &[&str] = &[
    "GetSystemInfo",
    "GetClusterInfo",
    "DescribeNamespace",
    "ListNamespaces",
    "RegisterNamespace",
    "UpdateNamespace",
    "StartWorkflowExecution",
    "SignalWithStartWorkflowExecution",
    "SignalWorkflowExecution",
    "RequestCancelWorkflowExecution",
    "QueryWorkflow",
    "ResetStickyTaskQueue",
    "DeleteWorkflowExecution",
    "ResetWorkflowExecution",
    "UpdateWorkflowExecution",
    "PollWorkflowExecutionUpdate",
    "ExecuteMultiOperation",
    "RespondQueryTaskCompleted",
    "GetWorkflowExecutionHistory",
    "DescribeWorkflowExecution",
    "PollWorkflowTaskQueue",
    "RespondWorkflowTaskCompleted",
    "RespondWorkflowTaskFailed",
    "PollActivityTaskQueue",
    "RespondActivityTaskCompleted",
    "RespondActivityTaskCompletedById",
    "RespondActivityTaskFailed",
    "RespondActivityTaskFailedById",
    "RespondActivityTaskCanceled",
    "RespondActivityTaskCanceledById",
    "RecordActivityTaskHeartbeat",
    "RecordActivityTaskHeartbeatById",
    "ShutdownWorker",
    "PollNexusTaskQueue",
    "TerminateWorkflowExecution",
    "PauseActivity",
    "UnpauseActivity",
    "ResetActivity",
    "UpdateActivityOptions",
    "PauseActivityExecution",
    "UnpauseActivityExecution",
    "ResetActivityExecution",
    "UpdateActivityExecutionOptions",
    "UpdateWorkflowExecutionOptions",
    "ListWorkflowExecutions",
    "ScanWorkflowExecutions",
    "ListOpenWorkflowExecutions",
    "ListClosedWorkflowExecutions",
    "CountWorkflowExecutions",
    "GetSearchAttributes",
    "ListArchivedWorkflowExecutions",
    "GetWorkflowExecutionHistoryReverse",
    "DescribeTaskQueue",
    "ListTaskQueuePartitions",
    "UpdateTaskQueueConfig",
    "StartBatchOperation",
    "DescribeBatchOperation",
    "ListBatchOperations",
    "StopBatchOperation",
    "UpdateWorkerBuildIdCompatibility",
    "GetWorkerBuildIdCompatibility",
    "GetWorkerTaskReachability",
    "UpdateWorkerVersioningRules",
    "GetWorkerVersioningRules",
    "CreateSchedule",
    "DescribeSchedule",
    "UpdateSchedule",
    "PatchSchedule",
    "DeleteSchedule",
    "ListSchedules",
    "CountSchedules",
    "ListScheduleMatchingTimes",
    "NoSuchMethod",
];
const OPERATOR_METHODS: &[&str] = &[
    "AddSearchAttributes",
    "RemoveSearchAttributes",
    "ListSearchAttributes",
    "DeleteNamespace",
    "ListClusters",
    "CreateNexusEndpoint",
    "UpdateNexusEndpoint",
    "DeleteNexusEndpoint",
    "GetNexusEndpoint",
    "ListNexusEndpoints",
    "NoSuchMethod",
];

/// A small deterministic generator (xorshift64*), so a failure can be replayed by its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Valid messages of many types, some naming things that exist, to mutate.
fn seeds(workflow_id: &str) -> Vec<Vec<u8>> {
    let execution = Some(WorkflowExecution { workflow_id: workflow_id.into(), run_id: String::new() });
    let queue = Some(TaskQueue { name: "fuzz-q".into(), ..Default::default() });
    let payloads = Some(Payloads { payloads: vec![Payload { data: b"\"x\"".to_vec(), ..Default::default() }] });
    let start = ws::StartWorkflowExecutionRequest {
        namespace: "default".into(),
        workflow_id: workflow_id.into(),
        workflow_type: Some(WorkflowType { name: "Fuzz".into() }),
        task_queue: queue.clone(),
        input: payloads.clone(),
        request_id: "fuzz".into(),
        cron_schedule: "* * * * *".into(),
        ..Default::default()
    };
    let complete = ws::RespondWorkflowTaskCompletedRequest {
        namespace: "default".into(),
        task_token: vec![10, 7, 100, 101, 102, 97, 117, 108, 116],
        commands: vec![Command {
            command_type: 1,
            attributes: Some(command::Attributes::CompleteWorkflowExecutionCommandAttributes(
                CompleteWorkflowExecutionCommandAttributes { result: payloads.clone() },
            )),
            ..Default::default()
        }],
        ..Default::default()
    };
    vec![
        start.encode_to_vec(),
        complete.encode_to_vec(),
        ws::SignalWorkflowExecutionRequest {
            namespace: "default".into(),
            workflow_execution: execution.clone(),
            signal_name: "s".into(),
            input: payloads.clone(),
            ..Default::default()
        }
        .encode_to_vec(),
        ws::PollWorkflowTaskQueueRequest { namespace: "default".into(), task_queue: queue, ..Default::default() }
            .encode_to_vec(),
        ws::ListWorkflowExecutionsRequest {
            namespace: "default".into(),
            query:
                "WorkflowType = 'x' AND (StartTime > '2020-01-01' OR ExecutionStatus = 'Running') ORDER BY StartTime"
                    .into(),
            page_size: 5,
            ..Default::default()
        }
        .encode_to_vec(),
        ws::QueryWorkflowRequest { namespace: "default".into(), execution, ..Default::default() }.encode_to_vec(),
        ws::DescribeNamespaceRequest { namespace: "default".into(), ..Default::default() }.encode_to_vec(),
    ]
}

/// A failure nested `depth` times through its cause: deeper than any decoder should follow.
fn deep(depth: usize) -> Vec<u8> {
    let mut failure = Failure { message: "bottom".into(), ..Default::default() };
    for _ in 0..depth {
        failure = Failure { message: "up".into(), cause: Some(Box::new(failure)), ..Default::default() };
    }
    ws::RespondWorkflowTaskFailedRequest {
        namespace: "default".into(),
        task_token: vec![1, 2, 3],
        failure: Some(failure),
        ..Default::default()
    }
    .encode_to_vec()
}

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let seed = &seeds[rng.below(seeds.len())];
    match rng.below(6) {
        0 => {
            let n = rng.below(200);
            rng.bytes(n)
        }
        1 => seed.clone(),
        2 => {
            let mut m = seed.clone();
            for _ in 0..=rng.below(4) {
                let i = rng.below(m.len());
                if let Some(b) = m.get_mut(i) {
                    *b ^= 1 << rng.below(8);
                }
            }
            m
        }
        3 => seed[..rng.below(seed.len())].to_vec(),
        4 => {
            let other = &seeds[rng.below(seeds.len())];
            let mut m = seed[..rng.below(seed.len())].to_vec();
            m.extend_from_slice(&other[rng.below(other.len())..]);
            m
        }
        _ => {
            let mut m = seed.clone();
            let at = rng.below(m.len());
            let n = rng.below(16);
            let junk = rng.bytes(n);
            m.splice(at..at, junk);
            m
        }
    }
}

static PANICS: AtomicUsize = AtomicUsize::new(0);

/// One call: its status code, or `None` when it did not answer within its deadline.
async fn call(channel: tonic::transport::Channel, path: String, body: Vec<u8>) -> Option<Code> {
    let mut grpc = tonic::client::Grpc::new(channel).max_encoding_message_size(usize::MAX);
    let mut request = tonic::Request::new(tonic::codegen::Bytes::from(body));
    request.set_timeout(Duration::from_secs(2));
    let path = http::uri::PathAndQuery::try_from(path).expect("path");
    let answer = tokio::time::timeout(Duration::from_secs(10), async {
        grpc.ready().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        grpc.unary(request, path, tempora::testing::RawCodec).await
    })
    .await
    .ok()?;
    Some(match answer {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    })
}

/// Returns how many inputs were tried and how many answers had each status code.
pub async fn every_rpc_survives_hostile_bytes(
    url: String,
    inputs: usize,
) -> (usize, std::collections::BTreeMap<String, usize>) {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default_hook(info);
    }));
    let channel = tonic::transport::Channel::from_shared(url).expect("url").connect().await.expect("connect");
    let seeds = seeds("fuzz-target");
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    let paths: Vec<String> = WORKFLOW_METHODS
        .iter()
        .map(|m| format!("/temporal.api.workflowservice.v1.WorkflowService/{m}"))
        .chain(OPERATOR_METHODS.iter().map(|m| format!("/temporal.api.operatorservice.v1.OperatorService/{m}")))
        .collect();
    for path in &paths {
        cases.push((path.clone(), Vec::new()));
        cases.push((path.clone(), deep(150)));
        cases.push((path.clone(), deep(20)));
    }
    while cases.len() < inputs {
        let path = paths[rng.below(paths.len())].clone();
        cases.push((path, mutate(&mut rng, &seeds)));
    }
    // An oversized frame, once: past the server's message limit.
    cases.push((paths[6].clone(), vec![0x0a; 129 * 1024 * 1024]));
    let tried = cases.len();
    let answers: Vec<(String, Option<Code>)> = futures::stream::iter(cases)
        .map(|(path, body)| {
            let channel = channel.clone();
            async move { (path.clone(), call(channel, path, body).await) }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let hung: Vec<&String> = answers.iter().filter(|(_, c)| c.is_none()).map(|(p, _)| p).collect();
    assert!(hung.is_empty(), "calls that did not answer within their deadline: {hung:?}");
    let unknown: Vec<&String> = answers.iter().filter(|(_, c)| *c == Some(Code::Unknown)).map(|(p, _)| p).collect();
    assert!(unknown.is_empty(), "answers that are not proper statuses: {unknown:?}");
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "handlers panicked");
    let mut codes = std::collections::BTreeMap::new();
    for (_, code) in &answers {
        *codes.entry(format!("{:?}", code.unwrap_or(Code::Unknown))).or_default() += 1;
    }
    (tried, codes)
}
