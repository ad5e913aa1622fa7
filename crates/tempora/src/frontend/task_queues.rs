//! Task-queue RPCs: DescribeTaskQueue (recent pollers and backlog, in the legacy and the
//! enhanced shape) and ListTaskQueuePartitions (tempora's queues have one partition).

use std::collections::HashMap;

use temporalio_protos::temporal::api::enums::v1::{DescribeTaskQueueMode, TaskQueueKind, TaskQueueType};
use temporalio_protos::temporal::api::taskqueue::v1 as tq;
use temporalio_protos::temporal::api::workflowservice::v1 as ws;
use tonic::Request;

use super::Frontend;
use crate::clock::proto;
use crate::error::{Error, Result};
use crate::matching::{QueueInfo, TaskKind};

/// What Temporal reports as the rate of a poller that set none.
const POLLER_RATE_DEFAULT: f64 = 100_000.0;
/// Temporal's reserved prefix of partition names.
const PARTITION_PREFIX: &str = "/_sys/";

impl Frontend {
    pub async fn describe_task_queue(
        &self,
        r: Request<ws::DescribeTaskQueueRequest>,
    ) -> Result<ws::DescribeTaskQueueResponse> {
        let r = r.into_inner();
        self.svc.namespaces.get(&r.namespace)?;
        let queue = r.task_queue.unwrap_or_default();
        if queue.name.is_empty() {
            return Err(Error::invalid("missing task queue name"));
        }
        let enhanced = r.api_mode == DescribeTaskQueueMode::Enhanced as i32;
        if enhanced {
            if queue.name.starts_with(PARTITION_PREFIX) {
                return Err(Error::invalid("task queue name cannot start with reserved prefix /_sys/"));
            }
            if queue.kind == TaskQueueKind::Sticky as i32 {
                return Err(Error::invalid(
                    "Enhanced DescribeTaskQueue is not valid for a sticky queue, use api_mode=UNSPECIFIED or a normal queue.",
                ));
            }
            // Unversioned only: tempora has no worker versioning, so every poller is under "".
            let types = match r.task_queue_types.as_slice() {
                [] => vec![TaskQueueType::Workflow as i32, TaskQueueType::Activity as i32],
                types => types.to_vec(),
            };
            let types_info = types
                .into_iter()
                .map(|t| {
                    let info = kind_of(t).map(|k| self.svc.matching.describe(&r.namespace, &queue.name, k));
                    let info = info.unwrap_or_default();
                    (t, tq::TaskQueueTypeInfo { pollers: pollers(&info), stats: Some(stats(&info)) })
                })
                .collect();
            let version = tq::TaskQueueVersionInfo { types_info, ..Default::default() };
            return Ok(ws::DescribeTaskQueueResponse {
                versions_info: HashMap::from([(String::new(), version)]),
                ..Default::default()
            });
        }
        let kind = kind_of(r.task_queue_type).unwrap_or(TaskKind::Workflow);
        let info = self.svc.matching.describe(&r.namespace, &queue.name, kind);
        Ok(ws::DescribeTaskQueueResponse {
            pollers: pollers(&info),
            stats: r.report_stats.then(|| stats(&info)),
            task_queue_status: r.include_task_queue_status.then(|| tq::TaskQueueStatus {
                backlog_count_hint: info.backlog_count as i64,
                rate_per_second: POLLER_RATE_DEFAULT,
                task_id_block: Some(tq::TaskIdBlock::default()),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    pub async fn list_task_queue_partitions(
        &self,
        r: Request<ws::ListTaskQueuePartitionsRequest>,
    ) -> Result<ws::ListTaskQueuePartitionsResponse> {
        let r = r.into_inner();
        self.svc.namespaces.get(&r.namespace)?;
        let queue = r.task_queue.unwrap_or_default();
        if queue.name.is_empty() {
            return Err(Error::invalid("missing task queue name"));
        }
        let partition =
            || vec![tq::TaskQueuePartitionMetadata { key: queue.name.clone(), owner_host_name: self.host() }];
        Ok(ws::ListTaskQueuePartitionsResponse {
            activity_task_queue_partitions: partition(),
            workflow_task_queue_partitions: partition(),
        })
    }

    /// The name a partition's owner goes by: this server.
    fn host(&self) -> String {
        "tempora".to_string()
    }
}

fn kind_of(task_queue_type: i32) -> Option<TaskKind> {
    match TaskQueueType::try_from(task_queue_type).unwrap_or_default() {
        TaskQueueType::Unspecified | TaskQueueType::Workflow => Some(TaskKind::Workflow),
        TaskQueueType::Activity => Some(TaskKind::Activity),
        TaskQueueType::Nexus => None,
    }
}

fn pollers(info: &QueueInfo) -> Vec<tq::PollerInfo> {
    info.pollers
        .iter()
        .map(|(identity, at)| tq::PollerInfo {
            identity: identity.clone(),
            last_access_time: Some(proto::timestamp(*at)),
            rate_per_second: POLLER_RATE_DEFAULT,
            ..Default::default()
        })
        .collect()
}

fn stats(info: &QueueInfo) -> tq::TaskQueueStats {
    tq::TaskQueueStats {
        approximate_backlog_count: info.backlog_count as i64,
        approximate_backlog_age: Some(proto::duration(info.backlog_age_ms)),
        ..Default::default()
    }
}
