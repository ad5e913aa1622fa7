//! Visibility RPCs: List/Scan/Count with Temporal's query language, the older
//! ListOpen/ListClosed (rewritten to queries, as Temporal does), and the search attribute
//! registry (GetSearchAttributes; OperatorService Add/List/Remove).

use std::collections::HashMap;

use temporalio_protos::temporal::api::enums::v1::IndexedValueType;
use temporalio_protos::temporal::api::operatorservice::v1 as ops;
use temporalio_protos::temporal::api::workflow::v1::WorkflowExecutionInfo;
use temporalio_protos::temporal::api::workflowservice::v1::{self as ws, count_workflow_executions_response};
use tonic::Request;

use super::Frontend;
use crate::error::{Error, Result};
use crate::visibility::attributes::{self, Registry, Value};
use crate::visibility::query::{self, ValueType};
use crate::visibility::{CountRequest, Cursor, GroupValue, ListRequest, PAGE_SIZE_MAX};

/// The names of `WorkflowExecutionStatus` values as queries and group values spell them.
const STATUS_NAMES: [&str; 7] =
    ["Running", "Completed", "Failed", "Canceled", "Terminated", "ContinuedAsNew", "TimedOut"];

impl Frontend {
    /// Parses a query against a namespace's attributes (which must exist).
    fn parse_query(&self, namespace: &str, q: &str) -> Result<query::Parsed> {
        self.svc.namespaces.get(namespace)?;
        let custom = self.svc.namespaces.custom_types(namespace);
        query::parse(q, &Registry { custom: &custom }).map_err(|e| Error::InvalidArgument(e.to_string()))
    }

    async fn list(
        &self,
        namespace: String,
        q: &str,
        page_size: i32,
        token: &[u8],
    ) -> Result<(Vec<WorkflowExecutionInfo>, Vec<u8>)> {
        // A GROUP BY in a List is ignored, as Temporal (1.32) does.
        let parsed = self.parse_query(&namespace, q)?;
        let page_size = if page_size <= 0 { PAGE_SIZE_MAX } else { (page_size as usize).min(PAGE_SIZE_MAX) };
        let after = if token.is_empty() { None } else { Some(Cursor::from_token(token)?) };
        let request = ListRequest {
            namespace,
            filter: parsed.filter,
            hide_divisions: !parsed.names_namespace_division,
            page_size,
            after,
            by_run_id: false,
        };
        let rows = self.svc.store().list_executions(request).await?;
        // A full page may be followed by more; the token is its last row's sort key.
        let token =
            if rows.len() == page_size { rows.last().map(|(c, _)| c.token()).unwrap_or_default() } else { Vec::new() };
        let infos =
            rows.into_iter().map(|(_, info)| prost::Message::decode(info.as_slice()).unwrap_or_default()).collect();
        Ok((infos, token))
    }

    pub async fn list_workflow_executions(
        &self,
        r: Request<ws::ListWorkflowExecutionsRequest>,
    ) -> Result<ws::ListWorkflowExecutionsResponse> {
        let r = r.into_inner();
        let (executions, next_page_token) = self.list(r.namespace, &r.query, r.page_size, &r.next_page_token).await?;
        Ok(ws::ListWorkflowExecutionsResponse { executions, next_page_token })
    }

    pub async fn scan_workflow_executions(
        &self,
        r: Request<ws::ScanWorkflowExecutionsRequest>,
    ) -> Result<ws::ScanWorkflowExecutionsResponse> {
        let r = r.into_inner();
        let (executions, next_page_token) = self.list(r.namespace, &r.query, r.page_size, &r.next_page_token).await?;
        Ok(ws::ScanWorkflowExecutionsResponse { executions, next_page_token })
    }

    pub async fn list_open_workflow_executions(
        &self,
        r: Request<ws::ListOpenWorkflowExecutionsRequest>,
    ) -> Result<ws::ListOpenWorkflowExecutionsResponse> {
        use ws::list_open_workflow_executions_request::Filters;
        let r = r.into_inner();
        let mut clauses = vec!["ExecutionStatus = 'Running'".to_string()];
        clauses.extend(time_clause("StartTime", r.start_time_filter.as_ref()));
        match r.filters {
            Some(Filters::ExecutionFilter(f)) => clauses.push(format!("WorkflowId = {}", quoted(&f.workflow_id))),
            Some(Filters::TypeFilter(f)) => clauses.push(format!("WorkflowType = {}", quoted(&f.name))),
            None => {}
        }
        let q = clauses.join(" AND ");
        let (executions, next_page_token) = self.list(r.namespace, &q, r.maximum_page_size, &r.next_page_token).await?;
        Ok(ws::ListOpenWorkflowExecutionsResponse { executions, next_page_token })
    }

    pub async fn list_closed_workflow_executions(
        &self,
        r: Request<ws::ListClosedWorkflowExecutionsRequest>,
    ) -> Result<ws::ListClosedWorkflowExecutionsResponse> {
        use ws::list_closed_workflow_executions_request::Filters;
        let r = r.into_inner();
        let mut clauses = vec!["ExecutionStatus != 'Running'".to_string()];
        // For closed runs Temporal applies the time filter to the close time.
        clauses.extend(time_clause("CloseTime", r.start_time_filter.as_ref()));
        match r.filters {
            Some(Filters::ExecutionFilter(f)) => clauses.push(format!("WorkflowId = {}", quoted(&f.workflow_id))),
            Some(Filters::TypeFilter(f)) => clauses.push(format!("WorkflowType = {}", quoted(&f.name))),
            Some(Filters::StatusFilter(f)) => clauses.push(format!("ExecutionStatus = {}", f.status)),
            None => {}
        }
        let q = clauses.join(" AND ");
        let (executions, next_page_token) = self.list(r.namespace, &q, r.maximum_page_size, &r.next_page_token).await?;
        Ok(ws::ListClosedWorkflowExecutionsResponse { executions, next_page_token })
    }

    /// tempora keeps no archive (closed runs go when their retention passes), as a Temporal
    /// cluster without archival answers.
    pub async fn list_archived_workflow_executions(
        &self,
        _r: Request<ws::ListArchivedWorkflowExecutionsRequest>,
    ) -> Result<ws::ListArchivedWorkflowExecutionsResponse> {
        Err(Error::invalid("Cluster is not configured for visibility archival."))
    }

    pub async fn count_workflow_executions(
        &self,
        r: Request<ws::CountWorkflowExecutionsRequest>,
    ) -> Result<ws::CountWorkflowExecutionsResponse> {
        let r = r.into_inner();
        let parsed = self.parse_query(&r.namespace, &r.query)?;
        let request = CountRequest {
            namespace: r.namespace,
            filter: parsed.filter,
            hide_divisions: !parsed.names_namespace_division,
            group_by: parsed.group_by,
        };
        let counted = self.svc.store().count_executions(request).await?;
        let groups = counted
            .groups
            .into_iter()
            .map(|(value, count)| count_workflow_executions_response::AggregationGroup {
                group_values: vec![group_payload(value)],
                count,
            })
            .collect();
        Ok(ws::CountWorkflowExecutionsResponse { count: counted.total, groups })
    }

    pub async fn get_search_attributes(
        &self,
        _r: Request<ws::GetSearchAttributesRequest>,
    ) -> Result<ws::GetSearchAttributesResponse> {
        let mut keys = system_keys();
        for ns in self.svc.namespaces.all() {
            for (name, t) in self.svc.namespaces.custom_types(&ns.name).iter() {
                keys.insert(name.clone(), t.number());
            }
        }
        Ok(ws::GetSearchAttributesResponse { keys })
    }

    pub async fn list_search_attributes(
        &self,
        r: Request<ops::ListSearchAttributesRequest>,
    ) -> Result<ops::ListSearchAttributesResponse> {
        let r = r.into_inner();
        check_namespace(&r.namespace)?;
        self.svc.namespaces.get(&r.namespace)?;
        let custom = self.svc.namespaces.custom_types(&r.namespace);
        Ok(ops::ListSearchAttributesResponse {
            custom_attributes: custom.iter().map(|(n, t)| (n.clone(), t.number())).collect(),
            system_attributes: system_keys(),
            storage_schema: HashMap::new(),
        })
    }

    pub async fn add_search_attributes(
        &self,
        r: Request<ops::AddSearchAttributesRequest>,
    ) -> Result<ops::AddSearchAttributesResponse> {
        let r = r.into_inner();
        check_namespace(&r.namespace)?;
        if r.search_attributes.is_empty() {
            return Err(Error::invalid("SearchAttributes are not set on request."));
        }
        let mut added = Vec::new();
        for (name, t) in &r.search_attributes {
            if name.is_empty() {
                return Err(Error::invalid("Search attribute name is not set on request."));
            }
            if Registry::is_reserved(name) {
                return Err(Error::invalid(format!("Search attribute {name} is reserved by system.")));
            }
            let value_type = match IndexedValueType::try_from(*t) {
                Err(_) => return Err(Error::invalid(format!("Unknown search attribute type: {t}."))),
                Ok(IndexedValueType::Unspecified) => return Err(Error::invalid(
                    "Unable to create search attributes: cannot have more than 0 search attribute of type Unspecified.",
                )),
                Ok(_) => ValueType::from_i32(*t)
                    .ok_or_else(|| Error::invalid(format!("Unknown search attribute type: {t}.")))?,
            };
            added.push((name.clone(), value_type));
        }
        self.svc
            .namespaces
            .update(&r.namespace, |record| {
                // Adding an existing attribute again (of any type) is a no-op, as on Temporal's
                // SQL visibility.
                for (name, value_type) in &added {
                    record.search_attributes.entry(name.clone()).or_insert(value_type.number());
                }
                Ok(())
            })
            .await?;
        Ok(ops::AddSearchAttributesResponse {})
    }

    pub async fn remove_search_attributes(
        &self,
        r: Request<ops::RemoveSearchAttributesRequest>,
    ) -> Result<ops::RemoveSearchAttributesResponse> {
        let r = r.into_inner();
        check_namespace(&r.namespace)?;
        if r.search_attributes.is_empty() {
            return Err(Error::invalid("SearchAttributes are not set on request."));
        }
        if let Some(name) =
            r.search_attributes.iter().find(|n| Registry::system(n).is_some() || Registry::predefined(n).is_some())
        {
            return Err(Error::invalid(format!("Unable to remove non-custom search attributes: {name}.")));
        }
        // Removing an unknown name is a no-op, as in Temporal.
        self.svc
            .namespaces
            .update(&r.namespace, |record| {
                for name in &r.search_attributes {
                    record.search_attributes.remove(name);
                }
                Ok(())
            })
            .await?;
        Ok(ops::RemoveSearchAttributesResponse {})
    }
}

/// The OperatorService's own wording for a missing namespace.
fn check_namespace(namespace: &str) -> Result<()> {
    if namespace.is_empty() {
        return Err(Error::invalid("Namespace is not set on request."));
    }
    Ok(())
}

/// The system and predefined attributes by name, with their `IndexedValueType`.
fn system_keys() -> HashMap<String, i32> {
    query::system_attributes()
        .into_iter()
        .chain(query::predefined_attributes())
        .map(|a| (a.name, a.value_type.number()))
        .collect()
}

/// A group of Count as Temporal returns it: a typed Keyword payload (a status by its name).
fn group_payload(value: GroupValue) -> temporalio_protos::temporal::api::common::v1::Payload {
    match value {
        GroupValue::Int(Some(n)) => {
            let name = STATUS_NAMES.get((n - 1) as usize).map_or_else(|| n.to_string(), |s| s.to_string());
            attributes::encode(&Value::Keyword(name))
        }
        GroupValue::Text(Some(s)) => attributes::encode(&Value::Keyword(s)),
        GroupValue::Int(None) | GroupValue::Text(None) => {
            let mut p =
                temporalio_protos::temporal::api::common::v1::Payload { data: b"null".to_vec(), ..Default::default() };
            p.metadata.insert("encoding".into(), b"binary/null".to_vec());
            p
        }
    }
}

/// A string literal of the query language.
fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// `<column> BETWEEN earliest AND latest` of an old-style time filter, if it sets one.
fn time_clause(
    column: &str,
    filter: Option<&temporalio_protos::temporal::api::filter::v1::StartTimeFilter>,
) -> Option<String> {
    let f = filter?;
    let ns = |t: Option<&prost_types::Timestamp>| t.map(|t| t.seconds.saturating_mul(1_000_000_000) + t.nanos as i64);
    match (ns(f.earliest_time.as_ref()), ns(f.latest_time.as_ref())) {
        (None, None) => None,
        (e, l) => Some(format!("{column} BETWEEN {} AND {}", e.unwrap_or(0), l.unwrap_or(i64::MAX))),
    }
}
