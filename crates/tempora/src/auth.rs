//! Who may call what: credentials become `Claims` (API keys from the configuration, or JWTs
//! signed by a key of a JWKS file), and Temporal's default authorizer decides per method.
//!
//! Credentials arrive as `authorization: Bearer <token>`, which the SDKs and the CLI send for
//! `--api-key`. A token that is a configured key gets that key's permissions; any other token
//! must be a JWT whose signature a JWKS key verifies, and its `permissions` claim (Temporal's
//! default claim mapper) gives the roles: `"<namespace>:<read|write|worker|admin>"`, with the
//! namespace `temporal-system` for the whole server.
//!
//! Authorization follows Temporal's default authorizer: a method has a scope (one namespace,
//! or the cluster) and an access level (read-only, write, admin); a namespace method looks at
//! the caller's role in that namespace together with its system role, a cluster method at
//! its system role only. Temporal's authorizer gives the worker role nothing of its own; here
//! it grants what a worker process calls (polls, task answers, heartbeats, the namespace read
//! at start and history reads for replay), so a worker can run with a key that can do little
//! else.
//! Health checks and GetSystemInfo (which clients call before anything) stay open.
//!
//! Nothing here does I/O after start: the JWKS file is read once.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::error::Error;

/// The namespace whose roles apply to the whole server.
const SYSTEM_NAMESPACE: &str = "temporal-system";

/// Temporal's roles, as a bitmask (a caller may hold several in one namespace).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Roles(u8);

impl Roles {
    pub const WORKER: Roles = Roles(1);
    pub const READER: Roles = Roles(2);
    pub const WRITER: Roles = Roles(4);
    pub const ADMIN: Roles = Roles(8);

    fn parse(name: &str) -> Option<Roles> {
        match name.to_ascii_lowercase().as_str() {
            "worker" => Some(Roles::WORKER),
            "read" | "reader" => Some(Roles::READER),
            "write" | "writer" => Some(Roles::WRITER),
            "admin" => Some(Roles::ADMIN),
            _ => None,
        }
    }

    fn union(self, other: Roles) -> Roles {
        Roles(self.0 | other.0)
    }

    /// Temporal compares roles as numbers: any higher role covers the lower ones.
    fn at_least(self, required: Roles) -> bool {
        self.0 >= required.0
    }

    fn has(self, role: Roles) -> bool {
        self.0 & role.0 != 0
    }
}

/// What a caller may do: its roles on the whole server and per namespace.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Claims {
    pub subject: String,
    pub system: Roles,
    pub namespaces: HashMap<String, Roles>,
}

impl Claims {
    /// Claims from Temporal's permission strings (`"default:write"`); unknown roles and
    /// malformed entries give nothing, as Temporal's claim mapper does.
    pub fn from_permissions<'a>(subject: &str, permissions: impl IntoIterator<Item = &'a str>) -> Claims {
        let mut claims = Claims { subject: subject.to_string(), ..Default::default() };
        for permission in permissions {
            let Some((namespace, role)) = permission.rsplit_once(':') else { continue };
            let Some(role) = Roles::parse(role) else { continue };
            if namespace == SYSTEM_NAMESPACE {
                claims.system = claims.system.union(role);
            } else {
                let entry = claims.namespaces.entry(namespace.to_string()).or_default();
                *entry = entry.union(role);
            }
        }
        claims
    }
}

/// A method's reach, from Temporal's method metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    Namespace,
    Cluster,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    ReadOnly,
    Write,
    Admin,
}

/// Always allowed: clients call them before anything else, and they reveal nothing.
pub(crate) fn is_open(method: &str) -> bool {
    matches!(method, "GetSystemInfo" | "Check" | "Watch")
}

/// What a worker process calls: its polls and task answers, the namespace read SDKs make
/// when a worker starts, and history reads for replay.
fn is_worker_method(method: &str) -> bool {
    matches!(
        method,
        "PollWorkflowTaskQueue"
            | "PollActivityTaskQueue"
            | "PollNexusTaskQueue"
            | "RespondWorkflowTaskCompleted"
            | "RespondWorkflowTaskFailed"
            | "RespondActivityTaskCompleted"
            | "RespondActivityTaskCompletedById"
            | "RespondActivityTaskFailed"
            | "RespondActivityTaskFailedById"
            | "RespondActivityTaskCanceled"
            | "RespondActivityTaskCanceledById"
            | "RecordActivityTaskHeartbeat"
            | "RecordActivityTaskHeartbeatById"
            | "RespondQueryTaskCompleted"
            | "RespondNexusTaskCompleted"
            | "RespondNexusTaskFailed"
            | "ResetStickyTaskQueue"
            | "ShutdownWorker"
            | "RecordWorkerHeartbeat"
            | "DescribeNamespace"
            // A worker whose cached run was evicted reads the run's history to replay it.
            | "GetWorkflowExecutionHistory"
    )
}

/// Temporal's scope and access for a method of the WorkflowService or OperatorService.
/// Methods it does not list are namespace-scoped writes if their request names a namespace,
/// cluster-scoped admin operations otherwise.
fn metadata(method: &str, has_namespace: bool) -> (Scope, Access) {
    use Access::*;
    use Scope::*;
    let read_only = [
        "DescribeNamespace",
        "GetWorkflowExecutionHistory",
        "GetWorkflowExecutionHistoryReverse",
        "ListOpenWorkflowExecutions",
        "ListClosedWorkflowExecutions",
        "ListWorkflowExecutions",
        "ListArchivedWorkflowExecutions",
        "ScanWorkflowExecutions",
        "CountWorkflowExecutions",
        "QueryWorkflow",
        "DescribeWorkflowExecution",
        "DescribeTaskQueue",
        "ListTaskQueuePartitions",
        "DescribeSchedule",
        "ListScheduleMatchingTimes",
        "ListSchedules",
        "CountSchedules",
        "GetWorkerBuildIdCompatibility",
        "GetWorkerTaskReachability",
        "GetWorkerVersioningRules",
        "PollWorkflowExecutionUpdate",
        "DescribeBatchOperation",
        "ListBatchOperations",
        "ListSearchAttributes",
    ];
    match method {
        "ListNamespaces" | "GetSearchAttributes" | "GetClusterInfo" | "GetSystemInfo" => (Cluster, ReadOnly),
        "RegisterNamespace"
        | "UpdateNamespace"
        | "DeprecateNamespace"
        | "DeleteNamespace"
        | "AddSearchAttributes"
        | "RemoveSearchAttributes" => (Namespace, Admin),
        m if read_only.contains(&m) => (Namespace, ReadOnly),
        _ if has_namespace => (Namespace, Write),
        _ => (Cluster, Admin),
    }
}

/// Temporal's default authorizer (with the worker role's grant, see the module doc).
pub fn authorize(claims: &Claims, method: &str, namespace: Option<&str>) -> Result<(), Error> {
    if is_open(method) {
        return Ok(());
    }
    let (scope, access) = metadata(method, namespace.is_some());
    let roles = match scope {
        Scope::Cluster => claims.system,
        Scope::Namespace => {
            let own = namespace.and_then(|n| claims.namespaces.get(n)).copied().unwrap_or_default();
            claims.system.union(own)
        }
    };
    let required = match access {
        Access::ReadOnly => Roles::READER,
        Access::Write => Roles::WRITER,
        Access::Admin => Roles::ADMIN,
    };
    if roles.at_least(required) || (roles.has(Roles::WORKER) && is_worker_method(method)) {
        return Ok(());
    }
    let target = match (scope, namespace) {
        (Scope::Namespace, Some(namespace)) => format!("namespace {namespace}"),
        _ => "the server".to_string(),
    };
    let need = match access {
        Access::ReadOnly => "read",
        Access::Write => "write",
        Access::Admin => "admin",
    };
    Err(Error::PermissionDenied(format!(
        "Request unauthorized: {method} needs the {need} role on {target}, which {} does not have.",
        match claims.subject.is_empty() {
            true => "the caller".to_string(),
            false => format!("{:?}", claims.subject),
        }
    )))
}

/// Authentication settings; authentication is on when either source is given.
#[derive(Clone, Debug, Default)]
pub struct AuthConfig {
    /// Static API keys and their permissions.
    pub api_keys: Vec<ApiKey>,
    /// A JWKS file whose keys sign accepted JWTs.
    pub jwks_file: Option<PathBuf>,
    /// The JWT claim holding the permissions (Temporal's default: `permissions`).
    pub permissions_claim: String,
    /// When set, a JWT must name this audience.
    pub audience: Option<String>,
}

#[derive(Clone, PartialEq)]
pub struct ApiKey {
    pub key: String,
    pub permissions: Vec<String>,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey").field("key", &"***").field("permissions", &self.permissions).finish()
    }
}

impl std::str::FromStr for ApiKey {
    type Err = String;

    /// `KEY=PERMISSION[,PERMISSION…]`, e.g. `s3cret=default:write,temporal-system:read`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (key, permissions) =
            s.split_once('=').ok_or_else(|| "an API key is KEY=NAMESPACE:ROLE[,NAMESPACE:ROLE...]".to_string())?;
        if key.is_empty() {
            return Err("an API key cannot be empty".into());
        }
        let permissions: Vec<String> =
            permissions.split(',').map(str::trim).filter(|p| !p.is_empty()).map(String::from).collect();
        for p in &permissions {
            let role = p.rsplit_once(':').map(|(_, role)| role).unwrap_or_default();
            if Roles::parse(role).is_none() {
                return Err(format!("permission {p:?} is not NAMESPACE:ROLE with ROLE read, write, worker or admin"));
            }
        }
        Ok(ApiKey { key: key.to_string(), permissions })
    }
}

/// Turns the `authorization` header into claims.
pub struct Authenticator {
    keys: HashMap<String, Claims>,
    jwks: Option<jsonwebtoken::jwk::JwkSet>,
    permissions_claim: String,
    audience: Option<String>,
}

impl Authenticator {
    /// Reads the JWKS file, if any; `None` when authentication is off.
    pub fn new(config: &AuthConfig) -> Result<Option<Authenticator>, String> {
        if config.api_keys.is_empty() && config.jwks_file.is_none() {
            return Ok(None);
        }
        let jwks = match &config.jwks_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read JWKS file {}: {e}", path.display()))?;
                let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&text)
                    .map_err(|e| format!("JWKS file {} is not a JSON Web Key Set: {e}", path.display()))?;
                for key in &set.keys {
                    jsonwebtoken::DecodingKey::from_jwk(key).map_err(|e| {
                        format!("JWKS file {}: unusable key {:?}: {e}", path.display(), key.common.key_id)
                    })?;
                }
                Some(set)
            }
            None => None,
        };
        let keys = config
            .api_keys
            .iter()
            .map(|k| (k.key.clone(), Claims::from_permissions("", k.permissions.iter().map(String::as_str))))
            .collect();
        let permissions_claim = match config.permissions_claim.is_empty() {
            true => "permissions".to_string(),
            false => config.permissions_claim.clone(),
        };
        Ok(Some(Authenticator { keys, jwks, permissions_claim, audience: config.audience.clone() }))
    }

    /// The caller's claims from its `authorization` header value.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Claims, Error> {
        let unauthenticated = |why: &str| Error::Unauthenticated(format!("Request unauthenticated: {why}"));
        let Some(value) = authorization.map(str::trim).filter(|v| !v.is_empty()) else {
            return Err(unauthenticated(
                "no credentials; send an API key or JWT as \"authorization: Bearer <token>\" (the SDKs' and CLI's --api-key)",
            ));
        };
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => return Err(unauthenticated("the authorization header is not \"Bearer <token>\"")),
        };
        if let Some(claims) = self.keys.get(token) {
            return Ok(claims.clone());
        }
        let Some(jwks) = &self.jwks else {
            return Err(unauthenticated("unknown API key"));
        };
        self.verify_jwt(jwks, token).map_err(|why| unauthenticated(&why))
    }

    fn verify_jwt(&self, jwks: &jsonwebtoken::jwk::JwkSet, token: &str) -> Result<Claims, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| "unknown API key, and not a JWT".to_string())?;
        let jwk = match &header.kid {
            Some(kid) => jwks.find(kid).ok_or_else(|| format!("no key {kid:?} in the JWKS"))?,
            None if jwks.keys.len() == 1 => &jwks.keys[0],
            None => return Err("the JWT names no key (kid)".into()),
        };
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|e| format!("unusable JWKS key: {e}"))?;
        let mut validation = jsonwebtoken::Validation::new(header.alg);
        validation.required_spec_claims.clear();
        match &self.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
            .map_err(|e| format!("invalid JWT: {e}"))?;
        let subject = data.claims.get("sub").and_then(|s| s.as_str()).unwrap_or_default();
        let permissions: Vec<&str> = match data.claims.get(&self.permissions_claim) {
            Some(serde_json::Value::Array(items)) => items.iter().filter_map(|p| p.as_str()).collect(),
            Some(serde_json::Value::String(one)) => vec![one.as_str()],
            _ => Vec::new(),
        };
        Ok(Claims::from_permissions(subject, permissions))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(permissions: &[&str]) -> Claims {
        Claims::from_permissions("tester", permissions.iter().copied())
    }

    #[test]
    fn permissions_map_to_roles_like_temporals_claim_mapper() {
        let c = claims(&["default:read", "default:worker", "temporal-system:admin", "other:bogus", "nocolon"]);
        assert_eq!(c.system, Roles::ADMIN);
        assert_eq!(c.namespaces.get("default"), Some(&Roles(3)));
        assert!(!c.namespaces.contains_key("other"));
    }

    #[test]
    fn readers_read_writers_write_admins_administer() {
        let reader = claims(&["ns:read"]);
        assert!(authorize(&reader, "ListWorkflowExecutions", Some("ns")).is_ok());
        assert!(authorize(&reader, "DescribeWorkflowExecution", Some("ns")).is_ok());
        assert!(authorize(&reader, "StartWorkflowExecution", Some("ns")).is_err());
        assert!(authorize(&reader, "PollWorkflowTaskQueue", Some("ns")).is_err());
        let writer = claims(&["ns:write"]);
        assert!(authorize(&writer, "StartWorkflowExecution", Some("ns")).is_ok());
        assert!(authorize(&writer, "PollActivityTaskQueue", Some("ns")).is_ok());
        assert!(authorize(&writer, "UpdateNamespace", Some("ns")).is_err());
        assert!(authorize(&writer, "AddSearchAttributes", Some("ns")).is_err());
        let admin = claims(&["ns:admin"]);
        assert!(authorize(&admin, "UpdateNamespace", Some("ns")).is_ok());
        assert!(authorize(&admin, "StartWorkflowExecution", Some("ns")).is_ok());
    }

    #[test]
    fn workers_poll_and_answer_but_neither_start_nor_list() {
        let worker = claims(&["ns:worker"]);
        for method in ["PollWorkflowTaskQueue", "RespondActivityTaskCompleted", "DescribeNamespace", "ShutdownWorker"] {
            assert!(authorize(&worker, method, Some("ns")).is_ok(), "{method}");
        }
        for method in ["StartWorkflowExecution", "SignalWorkflowExecution", "ListWorkflowExecutions", "QueryWorkflow"] {
            assert!(authorize(&worker, method, Some("ns")).is_err(), "{method}");
        }
    }

    #[test]
    fn a_namespace_role_gives_nothing_in_another_namespace_nor_on_the_cluster() {
        let admin = claims(&["ns:admin"]);
        let denied = authorize(&admin, "ListWorkflowExecutions", Some("other")).unwrap_err();
        assert!(matches!(&denied, Error::PermissionDenied(m) if m.contains("namespace other")), "{denied:?}");
        assert!(authorize(&admin, "ListNamespaces", None).is_err());
        assert!(authorize(&admin, "CreateNexusEndpoint", None).is_err());
        assert!(authorize(&admin, "GetSystemInfo", None).is_ok());
    }

    #[test]
    fn system_roles_reach_every_namespace() {
        let reader = claims(&["temporal-system:read"]);
        assert!(authorize(&reader, "ListWorkflowExecutions", Some("any")).is_ok());
        assert!(authorize(&reader, "ListNamespaces", None).is_ok());
        assert!(authorize(&reader, "StartWorkflowExecution", Some("any")).is_err());
        let admin = claims(&["temporal-system:admin"]);
        assert!(authorize(&admin, "CreateNexusEndpoint", None).is_ok());
        assert!(authorize(&admin, "RegisterNamespace", Some("new")).is_ok());
    }

    #[test]
    fn api_keys_parse_and_authenticate() {
        let key: ApiKey = "k1=default:write, temporal-system:read".parse().unwrap();
        assert_eq!(key.permissions, vec!["default:write", "temporal-system:read"]);
        assert!("nokey".parse::<ApiKey>().is_err());
        assert!("k=default:owner".parse::<ApiKey>().is_err());
        let auth = Authenticator::new(&AuthConfig { api_keys: vec![key], ..Default::default() }).unwrap().unwrap();
        let claims = auth.authenticate(Some("Bearer k1")).unwrap();
        assert_eq!(claims.namespaces.get("default"), Some(&Roles::WRITER));
        for bad in [None, Some(""), Some("k1"), Some("Bearer nope"), Some("Basic k1")] {
            assert!(matches!(auth.authenticate(bad), Err(Error::Unauthenticated(_))), "{bad:?}");
        }
    }
}
