//! Nexus endpoints: the OperatorService registry (Create, Update, Delete, Get, List).
//!
//! An endpoint names a target (a namespace and task queue, or an external URL) that Nexus
//! operations are routed to. The registry is cluster-wide: all endpoints are held in memory,
//! each committed (a `nexus_endpoint` record) before it is visible. Validation and messages
//! are Temporal's; where Temporal has a bug we do not copy it (an update keeps `created_time`;
//! an update cannot take another endpoint's name).
//!
//! The registry itself (`crate::endpoints`) belongs to the history service, which resolves an
//! operation's endpoint when it dispatches the operation's tasks.

use prost::Message;
use temporalio_protos::temporal::api::nexus::v1::{endpoint_target, Endpoint, EndpointSpec};
use temporalio_protos::temporal::api::operatorservice::v1 as ops;
use tonic::Request;

use super::Frontend;
use crate::clock::proto;
use crate::error::{Error, Result};
use crate::store::{Record, RecordKind, Write};

const NAME_BYTES_MAX: usize = 200;
const NAME_PATTERN: &str = r"^[a-zA-Z][a-zA-Z0-9\-]*[a-zA-Z0-9]$";
const TASK_QUEUE_BYTES_MAX: usize = 1000;
const URL_BYTES_MAX: usize = 4096;
const DESCRIPTION_BYTES_MAX: usize = 20_000;
const PAGE_SIZE_DEFAULT: usize = 100;
const PAGE_SIZE_MAX: i32 = 1000;

impl Frontend {
    pub async fn create_nexus_endpoint(
        &self,
        r: Request<ops::CreateNexusEndpointRequest>,
    ) -> Result<ops::CreateNexusEndpointResponse> {
        let spec = self.checked_endpoint_spec(r.into_inner().spec)?;
        let _write = self.svc.endpoints.write.lock().await;
        if self.svc.endpoints.id_of_name(&spec.name).is_some() {
            return Err(name_taken(&spec.name));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let endpoint = Endpoint {
            version: 1,
            url_prefix: format!("/nexus/endpoints/{id}/services"),
            id,
            spec: Some(spec),
            created_time: Some(proto::timestamp(self.svc.now_ms())),
            last_modified_time: None,
        };
        self.commit_endpoint(&endpoint).await?;
        Ok(ops::CreateNexusEndpointResponse { endpoint: Some(endpoint) })
    }

    pub async fn update_nexus_endpoint(
        &self,
        r: Request<ops::UpdateNexusEndpointRequest>,
    ) -> Result<ops::UpdateNexusEndpointResponse> {
        let r = r.into_inner();
        let spec = self.checked_endpoint_spec(r.spec)?;
        let _write = self.svc.endpoints.write.lock().await;
        let not_found = || Error::not_found(format!("error updating Nexus endpoint. endpoint ID {} not found", r.id));
        let current = self.svc.endpoints.get(&r.id).ok_or_else(not_found)?;
        if current.version != r.version {
            return Err(version_mismatch(r.version, current.version));
        }
        if self.svc.endpoints.id_of_name(&spec.name).is_some_and(|id| id != r.id) {
            return Err(name_taken(&spec.name));
        }
        let endpoint = Endpoint {
            version: current.version + 1,
            spec: Some(spec),
            last_modified_time: Some(proto::timestamp(self.svc.now_ms())),
            ..current
        };
        self.commit_endpoint(&endpoint).await?;
        Ok(ops::UpdateNexusEndpointResponse { endpoint: Some(endpoint) })
    }

    pub async fn delete_nexus_endpoint(
        &self,
        r: Request<ops::DeleteNexusEndpointRequest>,
    ) -> Result<ops::DeleteNexusEndpointResponse> {
        let r = r.into_inner();
        let mut issues = id_issues(&r.id);
        if r.version <= 0 {
            issues.push("endpoint version is non-positive".to_string());
        }
        if !issues.is_empty() {
            return Err(Error::invalid(issues.join(", ")));
        }
        // As in Temporal, the version is only checked to be positive, not compared.
        let _write = self.svc.endpoints.write.lock().await;
        if self.svc.endpoints.get(&r.id).is_none() {
            return Err(Error::not_found(format!("error deleting nexus endpoint with ID: {}", r.id)));
        }
        let delete = Write::DeleteRecord { kind: RecordKind::NexusEndpoint, scope: String::new(), id: r.id.clone() };
        self.svc.store().commit(vec![delete]).await?;
        self.svc.endpoints.by_id.lock().expect("endpoints lock").remove(&r.id);
        Ok(ops::DeleteNexusEndpointResponse {})
    }

    pub async fn get_nexus_endpoint(
        &self,
        r: Request<ops::GetNexusEndpointRequest>,
    ) -> Result<ops::GetNexusEndpointResponse> {
        let r = r.into_inner();
        let issues = id_issues(&r.id);
        if !issues.is_empty() {
            return Err(Error::invalid(issues.join(", ")));
        }
        let endpoint = self
            .svc
            .endpoints
            .get(&r.id)
            .ok_or_else(|| Error::not_found(format!("Nexus endpoint with ID `{}` not found", r.id)))?;
        Ok(ops::GetNexusEndpointResponse { endpoint: Some(endpoint) })
    }

    /// Endpoints by id; a name asks for that one endpoint (exact match, paging ignored).
    pub async fn list_nexus_endpoints(
        &self,
        r: Request<ops::ListNexusEndpointsRequest>,
    ) -> Result<ops::ListNexusEndpointsResponse> {
        let r = r.into_inner();
        if !r.name.is_empty() {
            let endpoints = self.svc.endpoints.id_of_name(&r.name).and_then(|id| self.svc.endpoints.get(&id));
            return Ok(ops::ListNexusEndpointsResponse {
                endpoints: endpoints.into_iter().collect(),
                ..Default::default()
            });
        }
        if r.page_size < 0 {
            return Err(Error::invalid("page_size is negative"));
        }
        if r.page_size > PAGE_SIZE_MAX {
            return Err(Error::invalid(format!("page_size exceeds limit of {PAGE_SIZE_MAX}")));
        }
        let page_size = if r.page_size == 0 { PAGE_SIZE_DEFAULT } else { r.page_size as usize };
        let after = String::from_utf8(r.next_page_token).map_err(|_| Error::invalid("invalid next_page_token"))?;
        let by_id = self.svc.endpoints.by_id.lock().expect("endpoints lock");
        let endpoints: Vec<Endpoint> = by_id
            .range::<String, _>((std::ops::Bound::Excluded(&after), std::ops::Bound::Unbounded))
            .take(page_size)
            .map(|(_, e)| e.clone())
            .collect();
        // As in Temporal, a full page always carries a token (the next page may be empty).
        let next_page_token =
            if endpoints.len() == page_size { endpoints.last().map(|e| e.id.clone().into_bytes()) } else { None };
        Ok(ops::ListNexusEndpointsResponse { next_page_token: next_page_token.unwrap_or_default(), endpoints })
    }

    async fn commit_endpoint(&self, endpoint: &Endpoint) -> Result<()> {
        let record = Record {
            kind: RecordKind::NexusEndpoint,
            scope: String::new(),
            id: endpoint.id.clone(),
            data: serde_json::to_string(endpoint).map_err(|e| Error::Internal(format!("endpoint: {e}")))?,
        };
        self.svc.store().commit(vec![Write::Record(record)]).await?;
        self.svc.endpoints.by_id.lock().expect("endpoints lock").insert(endpoint.id.clone(), endpoint.clone());
        Ok(())
    }

    /// Temporal's checks of a spec, every problem named in one INVALID_ARGUMENT (a target
    /// namespace that does not exist is a FAILED_PRECONDITION of its own).
    fn checked_endpoint_spec(&self, spec: Option<EndpointSpec>) -> Result<EndpointSpec> {
        let spec = spec.unwrap_or_default();
        let mut issues = Vec::new();
        if spec.name.is_empty() {
            issues.push("endpoint name not set".to_string());
        } else {
            if spec.name.len() > NAME_BYTES_MAX {
                issues.push(format!("endpoint name exceeds length limit of {NAME_BYTES_MAX}"));
            }
            if !valid_name(&spec.name) {
                issues.push(format!("endpoint name must match the regex: {NAME_PATTERN:?}"));
            }
        }
        match spec.target.as_ref().and_then(|t| t.variant.as_ref()) {
            None => {
                issues.push("empty target variant".to_string());
                return Err(Error::invalid(issues.join(", ")));
            }
            Some(endpoint_target::Variant::Worker(worker)) => {
                if worker.namespace.is_empty() {
                    issues.push("target namespace not set".to_string());
                } else if let Err(e) = self.svc.namespaces.get(&worker.namespace) {
                    return Err(Error::FailedPrecondition(format!(
                        "could not verify namespace referenced by target exists: {e}"
                    )));
                }
                if let Some(problem) = task_queue_problem(&worker.task_queue) {
                    issues.push(format!("invalid target task queue: {problem:?}"));
                }
            }
            Some(endpoint_target::Variant::External(external)) => issues.extend(url_problem(&external.url)),
        }
        if spec.description.as_ref().is_some_and(|d| d.encoded_len() > DESCRIPTION_BYTES_MAX) {
            issues.push(format!("description size exceeds limit of {DESCRIPTION_BYTES_MAX}"));
        }
        match issues.is_empty() {
            true => Ok(spec),
            false => Err(Error::invalid(issues.join(", "))),
        }
    }
}

fn name_taken(name: &str) -> Error {
    Error::AlreadyExists(format!("error creating Nexus endpoint. Endpoint with name {name} already registered"))
}

fn version_mismatch(received: i64, expected: i64) -> Error {
    Error::FailedPrecondition(format!("nexus endpoint version mismatch. received: {received} expected {expected}"))
}

/// `^[a-zA-Z][a-zA-Z0-9\-]*[a-zA-Z0-9]$`, without a regex engine.
fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else { return false };
    bytes.len() >= 2
        && first.is_ascii_alphabetic()
        && last.is_ascii_alphanumeric()
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
}

fn task_queue_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("taskQueue is not set")
    } else if name.len() > TASK_QUEUE_BYTES_MAX {
        Some("taskQueue length exceeds limit")
    } else if name.starts_with("/_sys/") {
        Some("task queue name cannot start with reserved prefix /_sys/")
    } else {
        None
    }
}

fn url_problem(url: &str) -> Option<String> {
    if url.is_empty() {
        return Some("empty target URL".into());
    }
    if url.len() > URL_BYTES_MAX {
        return Some(format!("target URL length exceeds limit of {URL_BYTES_MAX}"));
    }
    // A URL's scheme: a letter, then letters, digits, '+', '-' or '.', up to the first ':'.
    let scheme = match url.split_once(':') {
        Some((s, _))
            if s.starts_with(|c: char| c.is_ascii_alphabetic())
                && s.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            s.to_ascii_lowercase()
        }
        _ => String::new(),
    };
    match scheme.as_str() {
        "http" | "https" => None,
        _ => Some(format!("invalid target URL scheme: {scheme:?}, expected http or https")),
    }
}

/// An endpoint id's problems, in Temporal's words (ids are UUIDs).
fn id_issues(id: &str) -> Vec<String> {
    if id.is_empty() {
        return vec!["endpoint ID not set".into()];
    }
    if uuid::Uuid::parse_str(id).is_ok() {
        return Vec::new();
    }
    let problem = match id.len() {
        32 | 36 | 38 | 45 => "invalid UUID format".to_string(),
        n => format!("invalid UUID length: {n}"),
    };
    vec![format!("malformed endpoint ID: {problem:?}")]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_urls_and_ids_are_checked_as_temporal_does() {
        for ok in ["ab", "Ab-9", "a--b", "my-endpoint"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["a", "1a", "-a", "a-", "a.b", "a_b", "_a", ""] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert_eq!(url_problem("http://localhost:8080/x"), None);
        assert_eq!(url_problem("HTTPS://example.com"), None);
        assert_eq!(url_problem("not a url").unwrap(), r#"invalid target URL scheme: "", expected http or https"#);
        assert_eq!(url_problem("ftp://x").unwrap(), r#"invalid target URL scheme: "ftp", expected http or https"#);
        assert_eq!(id_issues("abc"), vec![r#"malformed endpoint ID: "invalid UUID length: 3""#.to_string()]);
        assert!(id_issues("2d88cbc2-30e4-4313-83e7-fcf622b711f0").is_empty());
        assert_eq!(
            format!("endpoint name must match the regex: {NAME_PATTERN:?}"),
            r#"endpoint name must match the regex: "^[a-zA-Z][a-zA-Z0-9\\-]*[a-zA-Z0-9]$""#
        );
    }
}
