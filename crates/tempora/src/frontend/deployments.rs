//! Worker deployments (worker versioning): Describe/List deployments and versions, set the
//! current and ramping version, delete versions and deployments, version metadata. The
//! registry is `crate::deployments` (owned by the history service, which routes by it); a
//! change is committed as the deployment's record before it is installed. A conflict token
//! (the deployment's revision) guards a change made from an earlier read.

use prost::Message;
use temporalio_protos::temporal::api::common::v1::Payload;
use temporalio_protos::temporal::api::deployment::v1 as dp;
use temporalio_protos::temporal::api::enums::v1::{
    RoutingConfigUpdateState, VersionDrainageStatus, WorkerDeploymentVersionStatus,
};
use temporalio_protos::temporal::api::workflowservice::v1 as ws;
use tonic::Request;

use super::Frontend;
use crate::clock::{proto, Millis};
use crate::deployments::Deployment;
use crate::engine::state::DeploymentVersion;
use crate::error::{Error, Result};
use crate::store::{RecordKind, Write};

const PAGE_SIZE_DEFAULT: usize = 100;
/// How Temporal names "no version" (unversioned workers) in its string forms.
const UNVERSIONED: &str = "__unversioned__";

fn ts(ms: Millis) -> Option<prost_types::Timestamp> {
    (ms > 0).then(|| proto::timestamp(ms))
}

fn status(d: &Deployment, build_id: &str) -> WorkerDeploymentVersionStatus {
    if d.current.as_deref() == Some(build_id) {
        WorkerDeploymentVersionStatus::Current
    } else if d.ramping.as_deref() == Some(build_id) {
        WorkerDeploymentVersionStatus::Ramping
    } else if d.versions.get(build_id).is_some_and(|v| v.first_activation_ms > 0) {
        WorkerDeploymentVersionStatus::Drained
    } else {
        WorkerDeploymentVersionStatus::Inactive
    }
}

#[allow(deprecated)]
fn version_summary(d: &Deployment, build_id: &str) -> dp::worker_deployment_info::WorkerDeploymentVersionSummary {
    let v = d.versions.get(build_id).cloned().unwrap_or_default();
    let version = d.version(build_id);
    dp::worker_deployment_info::WorkerDeploymentVersionSummary {
        version: version.joined(),
        status: status(d, build_id) as i32,
        deployment_version: Some(version.to_proto()),
        create_time: ts(v.create_time_ms),
        drainage_status: VersionDrainageStatus::Unspecified as i32,
        current_since_time: ts(v.current_since_ms).filter(|_| d.current.as_deref() == Some(build_id)),
        ramping_since_time: ts(v.ramping_since_ms).filter(|_| d.ramping.as_deref() == Some(build_id)),
        routing_update_time: ts(v.routing_changed_ms),
        first_activation_time: ts(v.first_activation_ms),
        last_deactivation_time: ts(v.last_deactivation_ms),
        ..Default::default()
    }
}

#[allow(deprecated)]
fn routing_config(d: &Deployment) -> dp::RoutingConfig {
    let version = |b: &Option<String>| b.as_ref().filter(|b| !b.is_empty()).map(|b| d.version(b));
    let (current, ramping) = (version(&d.current), version(&d.ramping));
    dp::RoutingConfig {
        current_deployment_version: current.as_ref().map(DeploymentVersion::to_proto),
        current_version: current.as_ref().map_or(UNVERSIONED.into(), DeploymentVersion::joined),
        ramping_deployment_version: ramping.as_ref().map(DeploymentVersion::to_proto),
        ramping_version: match (&d.ramping, &ramping) {
            (_, Some(v)) => v.joined(),
            (Some(_), None) => UNVERSIONED.into(),
            (None, None) => String::new(),
        },
        ramping_version_percentage: if d.ramping.is_some() { d.ramp_percent } else { 0.0 },
        current_version_changed_time: ts(d.current_changed_ms),
        ramping_version_changed_time: ts(d.ramping_changed_ms),
        ramping_version_percentage_changed_time: ts(d.ramping_changed_ms),
        revision_number: d.revision,
    }
}

fn info(d: &Deployment) -> dp::WorkerDeploymentInfo {
    dp::WorkerDeploymentInfo {
        name: d.name.clone(),
        version_summaries: d.versions.keys().map(|b| version_summary(d, b)).collect(),
        create_time: ts(d.create_time_ms),
        routing_config: Some(routing_config(d)),
        last_modifier_identity: d.last_modifier.clone(),
        manager_identity: d.manager_identity.clone(),
        routing_config_update_state: RoutingConfigUpdateState::Completed as i32,
    }
}

/// A change by a client other than the deployment's manager is refused.
fn check_manager(d: &Deployment, identity: &str) -> Result<()> {
    if d.manager_identity.is_empty() || d.manager_identity == identity {
        return Ok(());
    }
    Err(Error::FailedPrecondition(format!(
        "ManagerIdentity '{}' is set and does not match user identity '{identity}'; to proceed, set your own identity as manager or unset the field",
        d.manager_identity
    )))
}

/// The version a request names: its `deployment_version`, else the deprecated string form.
#[allow(deprecated)]
fn named_version(deployment_version: Option<dp::WorkerDeploymentVersion>, version: &str) -> Result<DeploymentVersion> {
    match deployment_version {
        Some(v) if !v.deployment_name.is_empty() && !v.build_id.is_empty() => {
            Ok(DeploymentVersion { deployment_name: v.deployment_name, build_id: v.build_id })
        }
        _ => crate::engine::versioning::parse_version(version)
            .ok_or_else(|| Error::invalid("DeploymentVersion is not set on request.")),
    }
}

/// A build id a Set… request names: `build_id`, else the deprecated version string (whose
/// deployment must be this one); empty means unversioned.
fn named_build_id(deployment: &str, build_id: String, version: &str) -> Result<String> {
    if !build_id.is_empty() || version.is_empty() || version == UNVERSIONED {
        return Ok(build_id);
    }
    match crate::engine::versioning::parse_version(version) {
        Some(v) if v.deployment_name == deployment => Ok(v.build_id),
        _ => Err(Error::invalid(format!("version {version:?} is not a version of deployment {deployment:?}"))),
    }
}

impl Frontend {
    fn deployment(&self, namespace: &str, name: &str) -> Result<Deployment> {
        self.svc.namespaces.get(namespace)?;
        if name.is_empty() {
            return Err(Error::invalid("DeploymentName is not set on request."));
        }
        self.svc
            .deployments
            .get(namespace, name)
            .ok_or_else(|| Error::not_found(format!("worker deployment {name} not found")))
    }

    /// Commits a changed deployment (or its removal) and installs it.
    async fn commit_deployment(&self, namespace: &str, name: &str, deployment: Option<Deployment>) -> Result<()> {
        let write = match &deployment {
            Some(d) => Write::Record(d.record(namespace)),
            None => {
                Write::DeleteRecord { kind: RecordKind::WorkerDeployment, scope: namespace.into(), id: name.into() }
            }
        };
        self.svc.store().commit(vec![write]).await?;
        self.svc.deployments.set(namespace, name, deployment);
        Ok(())
    }

    pub async fn describe_worker_deployment(
        &self,
        r: Request<ws::DescribeWorkerDeploymentRequest>,
    ) -> Result<ws::DescribeWorkerDeploymentResponse> {
        let r = r.into_inner();
        let d = self.deployment(&r.namespace, &r.deployment_name)?;
        Ok(ws::DescribeWorkerDeploymentResponse {
            conflict_token: d.conflict_token(),
            worker_deployment_info: Some(info(&d)),
        })
    }

    pub async fn list_worker_deployments(
        &self,
        r: Request<ws::ListWorkerDeploymentsRequest>,
    ) -> Result<ws::ListWorkerDeploymentsResponse> {
        let r = r.into_inner();
        self.svc.namespaces.get(&r.namespace)?;
        let after = String::from_utf8(r.next_page_token).map_err(|_| Error::invalid("invalid page token"))?;
        let page_size = if r.page_size > 0 { r.page_size as usize } else { PAGE_SIZE_DEFAULT };
        let page: Vec<Deployment> =
            self.svc.deployments.list(&r.namespace).into_iter().filter(|d| d.name > after).take(page_size).collect();
        let next_page_token =
            if page.len() == page_size { page.last().map(|d| d.name.clone().into_bytes()) } else { None };
        let summary =
            |d: &Deployment, b: &Option<String>| b.as_ref().filter(|b| !b.is_empty()).map(|b| version_summary(d, b));
        Ok(ws::ListWorkerDeploymentsResponse {
            next_page_token: next_page_token.unwrap_or_default(),
            worker_deployments: page
                .iter()
                .map(|d| ws::list_worker_deployments_response::WorkerDeploymentSummary {
                    name: d.name.clone(),
                    create_time: ts(d.create_time_ms),
                    routing_config: Some(routing_config(d)),
                    latest_version_summary: d
                        .versions
                        .iter()
                        .max_by_key(|(_, v)| v.create_time_ms)
                        .map(|(b, _)| version_summary(d, b)),
                    current_version_summary: summary(d, &d.current),
                    ramping_version_summary: summary(d, &d.ramping),
                })
                .collect(),
        })
    }

    /// A routing change: checked against the conflict token, applied by `change`, committed.
    async fn change_routing(
        &self,
        namespace: &str,
        name: &str,
        conflict_token: &[u8],
        identity: String,
        managed: bool,
        change: impl FnOnce(&mut Deployment, Millis) -> Result<()>,
    ) -> Result<(Deployment, Deployment)> {
        let _write = self.svc.deployments.write.lock().await;
        let before = self.deployment(namespace, name)?;
        if !conflict_token.is_empty() && conflict_token != before.conflict_token().as_slice() {
            return Err(Error::FailedPrecondition("conflict token mismatch".into()));
        }
        if managed {
            check_manager(&before, &identity)?;
        }
        let mut after = before.clone();
        change(&mut after, self.svc.now_ms())?;
        if after != before {
            let routing =
                |d: &Deployment| (d.current.clone(), d.ramping.clone(), d.ramp_percent, d.manager_identity.clone());
            if routing(&after) != routing(&before) {
                after.revision += 1;
            }
            after.last_modifier = identity;
            self.commit_deployment(namespace, name, Some(after.clone())).await?;
        }
        Ok((before, after))
    }

    #[allow(deprecated)]
    pub async fn set_worker_deployment_current_version(
        &self,
        r: Request<ws::SetWorkerDeploymentCurrentVersionRequest>,
    ) -> Result<ws::SetWorkerDeploymentCurrentVersionResponse> {
        let r = r.into_inner();
        let build_id = named_build_id(&r.deployment_name, r.build_id, &r.version)?;
        let (before, after) = self
            .change_routing(&r.namespace, &r.deployment_name, &r.conflict_token, r.identity, true, |d, now| {
                if !build_id.is_empty() && !d.versions.contains_key(&build_id) {
                    return Err(Error::not_found(format!("version {build_id} not found in deployment {}", d.name)));
                }
                let new = (!build_id.is_empty()).then(|| build_id.clone());
                if d.current == new {
                    return Ok(());
                }
                if let Some(old) = d.current.as_ref().and_then(|b| d.versions.get_mut(b)) {
                    old.last_deactivation_ms = now;
                    old.routing_changed_ms = now;
                }
                if let Some(v) = new.as_ref().and_then(|b| d.versions.get_mut(b)) {
                    v.current_since_ms = now;
                    v.routing_changed_ms = now;
                    if v.first_activation_ms == 0 {
                        v.first_activation_ms = now;
                    }
                }
                if d.ramping.is_some() && d.ramping == new {
                    d.ramping = None;
                    d.ramp_percent = 0.0;
                    d.ramping_changed_ms = now;
                }
                d.current = new;
                d.current_changed_ms = now;
                Ok(())
            })
            .await?;
        let previous = before.current.as_ref().filter(|b| !b.is_empty()).map(|b| before.version(b));
        Ok(ws::SetWorkerDeploymentCurrentVersionResponse {
            conflict_token: after.conflict_token(),
            previous_version: previous.as_ref().map_or(UNVERSIONED.into(), DeploymentVersion::joined),
            previous_deployment_version: previous.as_ref().map(DeploymentVersion::to_proto),
        })
    }

    #[allow(deprecated)]
    pub async fn set_worker_deployment_ramping_version(
        &self,
        r: Request<ws::SetWorkerDeploymentRampingVersionRequest>,
    ) -> Result<ws::SetWorkerDeploymentRampingVersionResponse> {
        let r = r.into_inner();
        let build_id = named_build_id(&r.deployment_name, r.build_id, &r.version)?;
        let percentage = r.percentage;
        if !(0.0..=100.0).contains(&percentage) || percentage.is_nan() {
            return Err(Error::invalid("Percentage must be between 0 and 100 (inclusive)."));
        }
        let unset = build_id.is_empty() && percentage == 0.0 && r.version.is_empty();
        let (before, after) = self
            .change_routing(&r.namespace, &r.deployment_name, &r.conflict_token, r.identity, true, |d, now| {
                if !build_id.is_empty() && !d.versions.contains_key(&build_id) {
                    return Err(Error::not_found(format!("version {build_id} not found in deployment {}", d.name)));
                }
                if !build_id.is_empty() && d.current.as_deref() == Some(build_id.as_str()) {
                    return Err(Error::FailedPrecondition(format!("ramping version {build_id} is already current")));
                }
                let new = (!unset).then(|| build_id.clone());
                if d.ramping == new && d.ramp_percent == percentage {
                    return Ok(());
                }
                if d.ramping != new {
                    if let Some(old) = d.ramping.as_ref().and_then(|b| d.versions.get_mut(b)) {
                        old.routing_changed_ms = now;
                        old.last_deactivation_ms = now;
                    }
                    if let Some(v) = new.as_ref().and_then(|b| d.versions.get_mut(b)) {
                        v.ramping_since_ms = now;
                        v.routing_changed_ms = now;
                        if v.first_activation_ms == 0 {
                            v.first_activation_ms = now;
                        }
                    }
                }
                d.ramping = new;
                d.ramp_percent = if unset { 0.0 } else { percentage };
                d.ramping_changed_ms = now;
                Ok(())
            })
            .await?;
        let previous = before.ramping.as_ref().filter(|b| !b.is_empty()).map(|b| before.version(b));
        Ok(ws::SetWorkerDeploymentRampingVersionResponse {
            conflict_token: after.conflict_token(),
            previous_version: match (&before.ramping, &previous) {
                (_, Some(v)) => v.joined(),
                (Some(_), None) => UNVERSIONED.into(),
                (None, None) => String::new(),
            },
            previous_deployment_version: previous.as_ref().map(DeploymentVersion::to_proto),
            previous_percentage: before.ramp_percent,
        })
    }

    #[allow(deprecated)]
    pub async fn describe_worker_deployment_version(
        &self,
        r: Request<ws::DescribeWorkerDeploymentVersionRequest>,
    ) -> Result<ws::DescribeWorkerDeploymentVersionResponse> {
        let r = r.into_inner();
        let version = named_version(r.deployment_version, &r.version)?;
        let d = self.deployment(&r.namespace, &version.deployment_name)?;
        let Some(v) = d.versions.get(&version.build_id) else {
            return Err(Error::not_found(format!("worker deployment version {} not found", version.joined())));
        };
        let summary = version_summary(&d, &version.build_id);
        let task_queues: Vec<(String, i32)> = v.task_queues.iter().cloned().collect();
        Ok(ws::DescribeWorkerDeploymentVersionResponse {
            worker_deployment_version_info: Some(dp::WorkerDeploymentVersionInfo {
                version: version.joined(),
                status: summary.status,
                deployment_version: Some(version.to_proto()),
                deployment_name: d.name.clone(),
                create_time: summary.create_time,
                routing_changed_time: summary.routing_update_time,
                current_since_time: summary.current_since_time,
                ramping_since_time: summary.ramping_since_time,
                first_activation_time: summary.first_activation_time,
                last_deactivation_time: summary.last_deactivation_time,
                ramp_percentage: if d.ramping.as_deref() == Some(version.build_id.as_str()) {
                    d.ramp_percent
                } else {
                    0.0
                },
                task_queue_infos: task_queues
                    .iter()
                    .map(|(name, t)| dp::worker_deployment_version_info::VersionTaskQueueInfo {
                        name: name.clone(),
                        r#type: *t,
                    })
                    .collect(),
                metadata: Some(dp::VersionMetadata {
                    entries: v
                        .metadata
                        .iter()
                        .map(|(k, p)| (k.clone(), Payload::decode(p.as_slice()).unwrap_or_default()))
                        .collect(),
                }),
                last_modifier_identity: d.last_modifier.clone(),
                ..Default::default()
            }),
            version_task_queues: task_queues
                .into_iter()
                .map(|(name, t)| ws::describe_worker_deployment_version_response::VersionTaskQueue {
                    name,
                    r#type: t,
                    ..Default::default()
                })
                .collect(),
        })
    }

    #[allow(deprecated)]
    pub async fn delete_worker_deployment_version(
        &self,
        r: Request<ws::DeleteWorkerDeploymentVersionRequest>,
    ) -> Result<ws::DeleteWorkerDeploymentVersionResponse> {
        let r = r.into_inner();
        let version = named_version(r.deployment_version, &r.version)?;
        let name = version.deployment_name.clone();
        self.change_routing(&r.namespace, &name, &[], r.identity, true, |d, _| {
            if !d.versions.contains_key(&version.build_id) {
                return Err(Error::not_found(format!("worker deployment version {} not found", version.joined())));
            }
            if [&d.current, &d.ramping].iter().any(|b| b.as_deref() == Some(version.build_id.as_str())) {
                return Err(Error::FailedPrecondition(format!(
                    "version {} is current or ramping and cannot be deleted",
                    version.joined()
                )));
            }
            d.versions.remove(&version.build_id);
            Ok(())
        })
        .await?;
        Ok(Default::default())
    }

    pub async fn delete_worker_deployment(
        &self,
        r: Request<ws::DeleteWorkerDeploymentRequest>,
    ) -> Result<ws::DeleteWorkerDeploymentResponse> {
        let r = r.into_inner();
        let _write = self.svc.deployments.write.lock().await;
        let d = self.deployment(&r.namespace, &r.deployment_name)?;
        check_manager(&d, &r.identity)?;
        if !d.versions.is_empty() {
            return Err(Error::FailedPrecondition(format!("deployment {} has versions; delete them first", d.name)));
        }
        self.commit_deployment(&r.namespace, &r.deployment_name, None).await?;
        Ok(Default::default())
    }

    #[allow(deprecated)]
    pub async fn update_worker_deployment_version_metadata(
        &self,
        r: Request<ws::UpdateWorkerDeploymentVersionMetadataRequest>,
    ) -> Result<ws::UpdateWorkerDeploymentVersionMetadataResponse> {
        let r = r.into_inner();
        let version = named_version(r.deployment_version, &r.version)?;
        let (upsert, remove) = (r.upsert_entries, r.remove_entries);
        let (_, after) = self
            .change_routing(&r.namespace, &version.deployment_name.clone(), &[], r.identity, true, |d, _| {
                let Some(v) = d.versions.get_mut(&version.build_id) else {
                    return Err(Error::not_found(format!("worker deployment version {} not found", version.joined())));
                };
                for (k, p) in upsert {
                    v.metadata.insert(k, p.encode_to_vec());
                }
                for k in remove {
                    v.metadata.remove(&k);
                }
                Ok(())
            })
            .await?;
        let entries = after
            .versions
            .get(&version.build_id)
            .map(|v| {
                v.metadata.iter().map(|(k, p)| (k.clone(), Payload::decode(p.as_slice()).unwrap_or_default())).collect()
            })
            .unwrap_or_default();
        Ok(ws::UpdateWorkerDeploymentVersionMetadataResponse { metadata: Some(dp::VersionMetadata { entries }) })
    }

    pub async fn set_worker_deployment_manager(
        &self,
        r: Request<ws::SetWorkerDeploymentManagerRequest>,
    ) -> Result<ws::SetWorkerDeploymentManagerResponse> {
        use ws::set_worker_deployment_manager_request::NewManagerIdentity;
        let r = r.into_inner();
        let manager = match r.new_manager_identity {
            Some(NewManagerIdentity::ManagerIdentity(m)) => m,
            Some(NewManagerIdentity::Self_(true)) => r.identity.clone(),
            _ => return Err(Error::invalid("NewManagerIdentity is not set on request.")),
        };
        let (before, after) = self
            .change_routing(&r.namespace, &r.deployment_name, &r.conflict_token, r.identity, false, |d, _| {
                d.manager_identity = manager;
                Ok(())
            })
            .await?;
        #[allow(deprecated)]
        Ok(ws::SetWorkerDeploymentManagerResponse {
            conflict_token: after.conflict_token(),
            previous_manager_identity: before.manager_identity,
        })
    }
}
