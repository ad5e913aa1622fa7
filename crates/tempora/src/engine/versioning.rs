//! Worker versioning of a run: the override an operator or a start gives it
//! (`VersioningOverride`), read into `RunVersioning`. Where its tasks go is decided with the
//! deployments registry when they are dispatched (`deployments::Deployments::route`).

use temporalio_protos::temporal::api::enums::v1::VersioningBehavior;
use temporalio_protos::temporal::api::workflow::v1::{versioning_override, VersioningOverride};

use super::state::{DeploymentVersion, RunVersioning};

/// A version in Temporal's string form `<deployment name>.<build id>` (older SDKs send it).
pub fn parse_version(s: &str) -> Option<DeploymentVersion> {
    let (deployment_name, build_id) = s.split_once('.')?;
    (!deployment_name.is_empty() && !build_id.is_empty())
        .then(|| DeploymentVersion { deployment_name: deployment_name.into(), build_id: build_id.into() })
}

/// What an override asks: pinned to a version, or following the current one.
pub fn read_override(o: &VersioningOverride) -> (Option<DeploymentVersion>, bool) {
    match &o.r#override {
        Some(versioning_override::Override::Pinned(p)) => {
            let version = p.version.as_ref().map(|v| DeploymentVersion {
                deployment_name: v.deployment_name.clone(),
                build_id: v.build_id.clone(),
            });
            (version, false)
        }
        Some(versioning_override::Override::AutoUpgrade(true)) => (None, true),
        Some(_) => (None, false),
        #[allow(deprecated)]
        None => match VersioningBehavior::try_from(o.behavior).unwrap_or_default() {
            VersioningBehavior::Pinned => (parse_version(&o.pinned_version), false),
            VersioningBehavior::AutoUpgrade => (None, true),
            _ => (None, false),
        },
    }
}

/// Sets (or, with `None`, removes) a run's override.
pub fn set_override(versioning: &mut RunVersioning, o: Option<&VersioningOverride>) {
    let (pinned, auto) = o.map(read_override).unwrap_or_default();
    versioning.override_pinned = pinned;
    versioning.override_auto_upgrade = auto;
}

/// The override a run has, as the API shows it.
pub fn override_of(v: &RunVersioning) -> Option<VersioningOverride> {
    if let Some(version) = &v.override_pinned {
        #[allow(deprecated)]
        return Some(VersioningOverride {
            r#override: Some(versioning_override::Override::Pinned(versioning_override::PinnedOverride {
                behavior: versioning_override::PinnedOverrideBehavior::Pinned as i32,
                version: Some(version.to_proto()),
            })),
            behavior: VersioningBehavior::Pinned as i32,
            pinned_version: version.joined(),
            ..Default::default()
        });
    }
    #[allow(deprecated)]
    v.override_auto_upgrade.then(|| VersioningOverride {
        r#override: Some(versioning_override::Override::AutoUpgrade(true)),
        behavior: VersioningBehavior::AutoUpgrade as i32,
        ..Default::default()
    })
}
