//! Task-queue RPCs: DescribeTaskQueue (recent pollers and backlog, in the legacy and the
//! enhanced shape, with the queue's config and effective rate limit), UpdateTaskQueueConfig
//! (rate limits, enforced by matching, and fairness weights, kept and reported), and
//! ListTaskQueuePartitions (tempora's queues have one partition).

use std::collections::HashMap;
use std::sync::Mutex;

use temporalio_protos::temporal::api::enums::v1::{DescribeTaskQueueMode, TaskQueueKind, TaskQueueType};
use temporalio_protos::temporal::api::taskqueue::v1 as tq;
use temporalio_protos::temporal::api::workflowservice::v1 as ws;
use tonic::Request;

use super::Frontend;
use crate::clock::proto;
use crate::error::{Error, Result};
use crate::matching::{QueueInfo, RateSource, TaskKind};
use crate::store::{Record, RecordKind, Write};

/// What Temporal reports as the rate of a poller that set none.
const POLLER_RATE_DEFAULT: f64 = 100_000.0;
/// Temporal's reserved prefix of partition names.
const PARTITION_PREFIX: &str = "/_sys/";

/// What Temporal reports as the rate of a queue with no limit set.
const SYSTEM_RATE: f32 = 4000.0;
const REASON_CHARS_MAX: usize = 1000;
const IDENTITY_CHARS_MAX: usize = 1000;
const FAIRNESS_KEY_BYTES_MAX: usize = 64;
const FAIRNESS_OVERRIDES_MAX: usize = 1000;

/// (namespace, task queue type number, task queue name).
type ConfigKey = (String, i32, String);

/// The configs `UpdateTaskQueueConfig` set, each committed (a `task_queue_config` record)
/// before it is visible or enforced.
pub(super) struct Configs {
    by_queue: Mutex<HashMap<ConfigKey, tq::TaskQueueConfig>>,
    /// Serialises updates, so each merges into the config the previous one left.
    write: tokio::sync::Mutex<()>,
}

impl Configs {
    /// The configs among `records`; their rate limits are given to matching.
    pub(super) fn new(records: &[Record], matching: &crate::matching::Matching) -> Self {
        Configs { by_queue: Mutex::new(Self::loaded(records, matching)), write: tokio::sync::Mutex::new(()) }
    }

    /// Takes the configs among `records` (on a cluster, whenever a node changed one),
    /// replacing what was known.
    pub(super) fn reload(&self, records: &[Record], matching: &crate::matching::Matching) {
        *self.by_queue.lock().expect("configs lock") = Self::loaded(records, matching);
    }

    fn loaded(records: &[Record], matching: &crate::matching::Matching) -> HashMap<ConfigKey, tq::TaskQueueConfig> {
        let mut by_queue = HashMap::new();
        for r in records.iter().filter(|r| r.kind == RecordKind::TaskQueueConfig) {
            let parsed = r.id.split_once('/').and_then(|(t, name)| Some((t.parse::<i32>().ok()?, name)));
            let config = serde_json::from_str::<tq::TaskQueueConfig>(&r.data);
            match (parsed, config) {
                (Some((task_queue_type, name)), Ok(config)) => {
                    if let Some(kind) = kind_of(task_queue_type) {
                        matching.set_api_rate(&r.scope, name, kind, api_rate(&config));
                    }
                    by_queue.insert((r.scope.clone(), task_queue_type, name.to_string()), config);
                }
                _ => tracing::error!(id = %r.id, "unreadable task queue config record skipped"),
            }
        }
        by_queue
    }

    fn get(&self, key: &ConfigKey) -> Option<tq::TaskQueueConfig> {
        self.by_queue.lock().expect("configs lock").get(key).cloned()
    }
}

fn api_rate(config: &tq::TaskQueueConfig) -> Option<f64> {
    config.queue_rate_limit.as_ref()?.rate_limit.as_ref().map(|r| r.requests_per_second as f64)
}

impl Frontend {
    pub async fn update_task_queue_config(
        &self,
        r: Request<ws::UpdateTaskQueueConfigRequest>,
    ) -> Result<ws::UpdateTaskQueueConfigResponse> {
        let r = r.into_inner();
        if r.namespace.is_empty() {
            return Err(Error::invalid("Namespace is empty."));
        }
        self.svc.namespaces.get(&r.namespace)?;
        check_config_update(&r)?;
        let key = (r.namespace.clone(), r.task_queue_type, r.task_queue.clone());
        let _write = self.configs.write.lock().await;
        let mut config = self.configs.get(&key).unwrap_or_default();
        let metadata = |reason: &str| tq::ConfigMetadata {
            reason: reason.to_string(),
            update_identity: r.identity.clone(),
            update_time: Some(proto::timestamp(self.svc.now_ms())),
        };
        if let Some(update) = &r.update_queue_rate_limit {
            config.queue_rate_limit =
                Some(tq::RateLimitConfig { rate_limit: update.rate_limit, metadata: Some(metadata(&update.reason)) });
        }
        if let Some(update) = &r.update_fairness_key_rate_limit_default {
            config.fairness_keys_rate_limit_default =
                Some(tq::RateLimitConfig { rate_limit: update.rate_limit, metadata: Some(metadata(&update.reason)) });
        }
        for key in &r.unset_fairness_weight_overrides {
            config.fairness_weight_overrides.remove(key);
        }
        config.fairness_weight_overrides.extend(r.set_fairness_weight_overrides.clone());
        if config.fairness_weight_overrides.len() > FAIRNESS_OVERRIDES_MAX {
            return Err(Error::invalid(format!(
                "fairness weight overrides would exceed the limit of {FAIRNESS_OVERRIDES_MAX}"
            )));
        }
        let record = Record {
            kind: RecordKind::TaskQueueConfig,
            scope: r.namespace.clone(),
            id: format!("{}/{}", r.task_queue_type, r.task_queue),
            data: serde_json::to_string(&config).map_err(|e| Error::Internal(format!("task queue config: {e}")))?,
        };
        self.svc.store().commit(vec![Write::Record(record)]).await?;
        if let Some(kind) = kind_of(r.task_queue_type) {
            self.svc.matching.set_api_rate(&r.namespace, &r.task_queue, kind, api_rate(&config));
        }
        self.configs.by_queue.lock().expect("configs lock").insert(key, config.clone());
        Ok(ws::UpdateTaskQueueConfigResponse { config: Some(config) })
    }

    /// What a DescribeTaskQueue reports of a queue's limits: its config (when asked for and
    /// set) and the rate it dispatches at.
    fn rate_view(
        &self,
        namespace: &str,
        queue: &str,
        task_queue_type: i32,
        report_config: bool,
    ) -> (Option<tq::TaskQueueConfig>, ws::describe_task_queue_response::EffectiveRateLimit) {
        use temporalio_protos::temporal::api::enums::v1::RateLimitSource;
        let config =
            report_config.then(|| self.configs.get(&(namespace.into(), task_queue_type, queue.into()))).flatten();
        let (rate, source) = match kind_of(task_queue_type) {
            Some(kind) => self.svc.matching.effective_rate(namespace, queue, kind),
            None => (None, RateSource::System),
        };
        let (requests_per_second, source) = match (rate, source) {
            (Some(rate), RateSource::Api) => (rate as f32, RateLimitSource::Api),
            (Some(rate), RateSource::Worker) if (rate as f32) < SYSTEM_RATE => (rate as f32, RateLimitSource::Worker),
            _ => (SYSTEM_RATE, RateLimitSource::System),
        };
        let effective = ws::describe_task_queue_response::EffectiveRateLimit {
            requests_per_second: requests_per_second.min(SYSTEM_RATE),
            rate_limit_source: source as i32,
        };
        (config, effective)
    }

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
        let task_queue_type = if r.task_queue_type == 0 { TaskQueueType::Workflow as i32 } else { r.task_queue_type };
        let (config, effective_rate_limit) =
            self.rate_view(&r.namespace, &queue.name, task_queue_type, r.report_config);
        Ok(ws::DescribeTaskQueueResponse {
            config,
            effective_rate_limit: Some(effective_rate_limit),
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

/// Temporal's checks of a config update, in its order and words.
fn check_config_update(r: &ws::UpdateTaskQueueConfigRequest) -> Result<()> {
    let workflow_queue = r.task_queue_type == TaskQueueType::Workflow as i32;
    let updates = [
        (
            "UpdateQueueRateLimit",
            &r.update_queue_rate_limit,
            "Setting rate limit on workflow task queues is not allowed.",
        ),
        (
            "UpdateFairnessKeyRateLimitDefault",
            &r.update_fairness_key_rate_limit_default,
            "Setting fairness key rate limit on workflow task queues is not allowed.",
        ),
    ];
    for (name, update, on_workflow_queue) in updates {
        let Some(rate) = update.as_ref().and_then(|u| u.rate_limit.as_ref()) else { continue };
        if workflow_queue {
            return Err(Error::invalid(on_workflow_queue));
        }
        if rate.requests_per_second < 0.0 {
            return Err(Error::invalid(format!("RequestsPerSecond for {name} rate limit must be non-negative.")));
        }
        if update.as_ref().is_some_and(|u| u.reason.chars().count() > REASON_CHARS_MAX) {
            return Err(Error::invalid(format!("{name}.Reason field too long (max {REASON_CHARS_MAX} characters).")));
        }
    }
    if r.identity.chars().count() > IDENTITY_CHARS_MAX {
        return Err(Error::invalid(format!("Identity field too long (max {IDENTITY_CHARS_MAX} characters).")));
    }
    if r.task_queue.starts_with(PARTITION_PREFIX) {
        return Err(Error::invalid(format!(
            "task queue family name cannot have prefix {PARTITION_PREFIX} {}",
            r.task_queue
        )));
    }
    let overrides = r.set_fairness_weight_overrides.len() + r.unset_fairness_weight_overrides.len();
    if overrides > FAIRNESS_OVERRIDES_MAX {
        return Err(Error::invalid(format!(
            "too many fairness weight overrides in request: got {overrides}, maximum {FAIRNESS_OVERRIDES_MAX}"
        )));
    }
    let mut keys: Vec<&String> = r.set_fairness_weight_overrides.keys().collect();
    keys.sort();
    for key in keys.into_iter().chain(&r.unset_fairness_weight_overrides) {
        if key.is_empty() {
            return Err(Error::invalid("fairness weight override key must not be empty"));
        }
        if key.len() > FAIRNESS_KEY_BYTES_MAX {
            return Err(Error::invalid("fairness key length exceeds limit"));
        }
        if let Some(weight) = r.set_fairness_weight_overrides.get(key) {
            if *weight <= 0.0 {
                return Err(Error::invalid(format!(
                    "invalid fairness weight weight for key {key:?}: must be greater than zero"
                )));
            }
            if r.unset_fairness_weight_overrides.contains(key) {
                return Err(Error::invalid(format!(
                    "fairness weight override key {key:?} present in both set and unset lists"
                )));
            }
        }
    }
    Ok(())
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

/// Worker versioning v0.1 (version sets) and v0.2 (rules) are deprecated; Temporal's dev
/// server has both disabled and refuses them with these messages.
const VERSIONING_V01_DISABLED: &str =
    "Worker versioning v0.1 (Version Set-based, deprecated) is disabled on this namespace.";
const VERSIONING_V02_DISABLED: &str = "Worker versioning v0.2 (Rules-based, deprecated) is disabled on this namespace.";

impl Frontend {
    fn versioning_disabled(&self, namespace: &str, message: &str) -> Error {
        match self.svc.namespaces.get(namespace) {
            Err(e) => e,
            Ok(_) => Error::PermissionDenied(message.to_string()),
        }
    }

    pub async fn update_worker_build_id_compatibility(
        &self,
        r: Request<ws::UpdateWorkerBuildIdCompatibilityRequest>,
    ) -> Result<ws::UpdateWorkerBuildIdCompatibilityResponse> {
        Err(self.versioning_disabled(&r.into_inner().namespace, VERSIONING_V01_DISABLED))
    }

    pub async fn get_worker_build_id_compatibility(
        &self,
        r: Request<ws::GetWorkerBuildIdCompatibilityRequest>,
    ) -> Result<ws::GetWorkerBuildIdCompatibilityResponse> {
        Err(self.versioning_disabled(&r.into_inner().namespace, VERSIONING_V01_DISABLED))
    }

    pub async fn get_worker_task_reachability(
        &self,
        r: Request<ws::GetWorkerTaskReachabilityRequest>,
    ) -> Result<ws::GetWorkerTaskReachabilityResponse> {
        Err(self.versioning_disabled(&r.into_inner().namespace, VERSIONING_V02_DISABLED))
    }

    pub async fn update_worker_versioning_rules(
        &self,
        r: Request<ws::UpdateWorkerVersioningRulesRequest>,
    ) -> Result<ws::UpdateWorkerVersioningRulesResponse> {
        Err(self.versioning_disabled(&r.into_inner().namespace, VERSIONING_V02_DISABLED))
    }

    pub async fn get_worker_versioning_rules(
        &self,
        r: Request<ws::GetWorkerVersioningRulesRequest>,
    ) -> Result<ws::GetWorkerVersioningRulesResponse> {
        Err(self.versioning_disabled(&r.into_inner().namespace, VERSIONING_V02_DISABLED))
    }
}
