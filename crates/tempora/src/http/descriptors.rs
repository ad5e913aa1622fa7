//! Temporal's API descriptors with their HTTP annotations (compiled by `build.rs`), and the
//! `google.api.http` bindings of the WorkflowService and OperatorService read from them.

use std::sync::LazyLock;

use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor, Value};

/// Every message of Temporal's API (imports included, so `Any` details resolve).
pub(crate) static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
    DescriptorPool::decode(&include_bytes!(concat!(env!("OUT_DIR"), "/temporal_http_descriptors.bin"))[..])
        .expect("the descriptor set built by build.rs decodes")
});

/// The services the HTTP API exposes.
pub(crate) const SERVICES: [&str; 2] =
    ["temporal.api.workflowservice.v1.WorkflowService", "temporal.api.operatorservice.v1.OperatorService"];

/// One HTTP route of a method: `verb path`, and which part of the request the body fills.
#[derive(Clone, Debug)]
pub(crate) struct Binding {
    pub method: MethodDescriptor,
    /// `GET`, `POST`, `DELETE`…
    pub verb: String,
    /// A path template: `/api/v1/namespaces/{namespace}/workflows/{execution.workflow_id}`.
    pub path: String,
    /// Empty (no body: the query string fills the request), `*` (the whole request) or a field.
    pub body: String,
}

fn string_field(rule: &DynamicMessage, name: &str) -> String {
    rule.get_field_by_name(name).and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// A `google.api.HttpRule` and its `additional_bindings`.
fn push_rule(method: &MethodDescriptor, rule: &DynamicMessage, out: &mut Vec<Binding>) {
    let pattern = ["get", "put", "post", "delete", "patch"]
        .iter()
        .find(|verb| rule.has_field_by_name(verb))
        .map(|verb| (verb.to_uppercase(), string_field(rule, verb)))
        .or_else(|| {
            let custom = rule.get_field_by_name("custom")?;
            let custom = custom.as_message()?;
            Some((string_field(custom, "kind"), string_field(custom, "path")))
        });
    if let Some((verb, path)) = pattern {
        out.push(Binding { method: method.clone(), verb, path, body: string_field(rule, "body") });
    }
    if let Some(extra) = rule.get_field_by_name("additional_bindings") {
        for r in extra.as_list().unwrap_or_default() {
            if let Some(r) = r.as_message() {
                push_rule(method, r, out);
            }
        }
    }
}

/// Every binding of the exposed services, in declaration order.
pub(crate) fn bindings() -> Vec<Binding> {
    let Some(http) = POOL.get_extension_by_name("google.api.http") else { return Vec::new() };
    let mut out = Vec::new();
    for service in SERVICES.iter().filter_map(|s| POOL.get_service_by_name(s)) {
        for method in service.methods() {
            let options = method.options();
            if !options.has_extension(&http) {
                continue;
            }
            if let Value::Message(rule) = options.get_extension(&http).as_ref() {
                push_rule(&method, rule, &mut out);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bindings_come_from_the_protos() {
        let all = bindings();
        assert!(all.len() > 200, "only {} bindings", all.len());
        let has = |verb: &str, path: &str, method: &str| {
            all.iter().any(|b| b.verb == verb && b.path == path && b.method.name() == method)
        };
        assert!(has("POST", "/api/v1/namespaces/{namespace}/workflows/{workflow_id}", "StartWorkflowExecution"));
        assert!(has(
            "GET",
            "/namespaces/{namespace}/workflows/{execution.workflow_id}/history",
            "GetWorkflowExecutionHistory"
        ));
        assert!(has("GET", "/api/v1/namespaces/{namespace}/search-attributes", "ListSearchAttributes"));
        assert!(has("DELETE", "/api/v1/namespaces/{namespace}/schedules/{schedule_id}", "DeleteSchedule"));
        // Worker RPCs have no HTTP route.
        assert!(!all.iter().any(|b| b.method.name() == "PollWorkflowTaskQueue"));
    }
}
