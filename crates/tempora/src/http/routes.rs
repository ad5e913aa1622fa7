//! Matching a request's verb and path against the bindings' path templates, and building the
//! request message from the path variables, the query string and the body, by grpc-gateway's
//! rules: a `*` body is the whole request (the query string is then ignored); otherwise each
//! query key is a field path (lowerCamel or snake_case, unknown keys ignored); path variables
//! are set last and win.

use base64::{engine::general_purpose, Engine};
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value};
use serde_json::Value as Json;

use super::descriptors::Binding;
use super::json;

#[derive(Clone, Debug, PartialEq)]
enum Segment {
    Literal(String),
    /// `{field.path}`: one segment.
    Variable(String),
    /// `{field.path=**}`: the rest of the path.
    Rest(String),
}

/// `/api/v1/namespaces/{namespace}/workflows/{execution.workflow_id}` → segments.
fn parse_template(template: &str) -> Option<Vec<Segment>> {
    let mut segments = Vec::new();
    let mut rest = template.trim_start_matches('/');
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('{') {
            let end = r.find('}')?;
            let (name, pattern) = r[..end].split_once('=').unwrap_or((&r[..end], "*"));
            segments.push(match pattern {
                "*" => Segment::Variable(name.into()),
                "**" => Segment::Rest(name.into()),
                _ => return None,
            });
            rest = r[end + 1..].trim_start_matches('/');
        } else {
            let end = rest.find('/').unwrap_or(rest.len());
            segments.push(Segment::Literal(rest[..end].into()));
            rest = rest[end..].trim_start_matches('/');
        }
    }
    Some(segments)
}

pub(crate) struct Route {
    pub binding: Binding,
    segments: Vec<Segment>,
}

pub(crate) struct Routes {
    routes: Vec<Route>,
}

pub(crate) enum Match<'a> {
    Found(&'a Route, Vec<(String, String)>),
    /// The path exists under another verb (grpc-gateway answers 501).
    MethodNotAllowed,
    NotFound,
}

fn match_segments(segments: &[Segment], parts: &[&str]) -> Option<Vec<(String, String)>> {
    let mut vars = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        match segment {
            Segment::Literal(l) => (parts.get(i)? == l).then_some(())?,
            Segment::Variable(name) => {
                let value = percent_encoding::percent_decode_str(parts.get(i)?).decode_utf8().ok()?;
                vars.push((name.clone(), value.into_owned()));
            }
            Segment::Rest(name) => {
                let joined = parts[i..].join("/");
                let value = percent_encoding::percent_decode_str(&joined).decode_utf8().ok()?;
                vars.push((name.clone(), value.into_owned()));
                return Some(vars);
            }
        }
    }
    (segments.len() == parts.len()).then_some(vars)
}

impl Routes {
    pub(crate) fn new(bindings: Vec<Binding>) -> Routes {
        let mut routes: Vec<Route> = bindings
            .into_iter()
            .filter_map(|b| Some(Route { segments: parse_template(&b.path)?, binding: b }))
            .collect();
        // A literal beats a variable at the same position.
        routes.sort_by_key(|r| r.segments.iter().map(|s| !matches!(s, Segment::Literal(_))).collect::<Vec<_>>());
        Routes { routes }
    }

    pub(crate) fn find(&self, verb: &str, path: &str) -> Match<'_> {
        // Split on the raw '/', then percent-decode each segment: `%2F` stays inside a variable.
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let mut other_verb = false;
        for route in &self.routes {
            if let Some(vars) = match_segments(&route.segments, &parts) {
                if route.binding.verb == verb {
                    return Match::Found(route, vars);
                }
                other_verb = true;
            }
        }
        if other_verb {
            Match::MethodNotAllowed
        } else {
            Match::NotFound
        }
    }
}

/// `execution.workflow_id` (or `execution.workflowId`) → the fields along the path.
fn resolve(d: &MessageDescriptor, path: &str) -> Option<Vec<FieldDescriptor>> {
    let names: Vec<&str> = path.split('.').collect();
    let mut fields = Vec::new();
    let mut current = d.clone();
    for (i, name) in names.iter().enumerate() {
        let field = current.get_field_by_name(name).or_else(|| current.get_field_by_json_name(name))?;
        if i + 1 < names.len() {
            match field.kind() {
                Kind::Message(m) if !field.is_list() && !field.is_map() => current = m,
                _ => return None,
            }
        }
        fields.push(field);
    }
    Some(fields)
}

/// One path segment or query value as the field's type.
fn scalar(f: &FieldDescriptor, s: &str) -> Result<Value, String> {
    let bad = |e: &dyn std::fmt::Display| format!("parsing field \"{}\": {e}", f.name());
    Ok(match f.kind() {
        Kind::String => Value::String(s.into()),
        Kind::Bool => Value::Bool(match s {
            "true" | "True" | "TRUE" | "t" | "T" | "1" => true,
            "false" | "False" | "FALSE" | "f" | "F" | "0" => false,
            _ => return Err(bad(&format!("strconv.ParseBool: parsing \"{s}\": invalid syntax"))),
        }),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(s.parse().map_err(|_| bad(&int_error(s)))?),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(s.parse().map_err(|_| bad(&int_error(s)))?),
        Kind::Uint32 | Kind::Fixed32 => Value::U32(s.parse().map_err(|_| bad(&int_error(s)))?),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(s.parse().map_err(|_| bad(&int_error(s)))?),
        Kind::Float => Value::F32(s.parse().map_err(|e| bad(&e))?),
        Kind::Double => Value::F64(s.parse().map_err(|e| bad(&e))?),
        Kind::Bytes => Value::Bytes(
            general_purpose::STANDARD
                .decode(s)
                .or_else(|_| general_purpose::URL_SAFE.decode(s))
                .or_else(|_| general_purpose::URL_SAFE_NO_PAD.decode(s))
                .or_else(|_| general_purpose::STANDARD_NO_PAD.decode(s))
                .map_err(|e| bad(&e))?
                .into(),
        ),
        Kind::Enum(e) => Value::EnumNumber(match e.get_value_by_name(s) {
            Some(v) => v.number(),
            None => s.parse().map_err(|_| bad(&format!("\"{s}\" is not a valid value")))?,
        }),
        // Durations, timestamps, wrappers: their JSON string form.
        Kind::Message(m) => {
            Value::Message(json::json_to_message(Json::String(s.into()), &m, false).map_err(|e| bad(&e))?)
        }
    })
}

fn int_error(s: &str) -> String {
    format!("strconv.ParseInt: parsing \"{s}\": invalid syntax")
}

fn set_path(message: &mut DynamicMessage, fields: &[FieldDescriptor], values: &[&str]) -> Result<(), String> {
    let Some((leaf, parents)) = fields.split_last() else { return Ok(()) };
    let mut current = message;
    for parent in parents {
        current = current
            .get_field_mut(parent)
            .as_message_mut()
            .ok_or_else(|| format!("field \"{}\" is not a message", parent.name()))?;
    }
    if leaf.is_list() {
        let list = values.iter().map(|v| scalar(leaf, v)).collect::<Result<Vec<_>, _>>()?;
        current.set_field(leaf, Value::List(list));
    } else if values.len() > 1 {
        return Err(format!("too many values for field \"{}\": {}", leaf.name(), values.join(", ")));
    } else if let Some(value) = values.first() {
        current.set_field(leaf, scalar(leaf, value)?);
    }
    Ok(())
}

/// Query keys that are switches of the gateway, not request fields.
pub(crate) const SWITCHES: [&str; 2] = ["pretty", "noPayloadShorthand"];

/// The request message of `route` from the path variables, the query string and the body.
pub(crate) fn build_request(
    route: &Route,
    vars: &[(String, String)],
    query: &str,
    body: &[u8],
    shorthand: bool,
) -> Result<DynamicMessage, String> {
    let d = route.binding.method.input();
    let mut message = match route.binding.body.as_str() {
        "" => DynamicMessage::new(d.clone()),
        field => {
            let value: Json = if body.iter().all(u8::is_ascii_whitespace) {
                Json::Object(Default::default())
            } else {
                serde_json::from_slice(body).map_err(|e| e.to_string())?
            };
            if field == "*" {
                json::json_to_message(value, &d, shorthand)?
            } else {
                let path = resolve(&d, field).ok_or_else(|| format!("no field {field} for the body"))?;
                let mut wrapper = serde_json::Map::new();
                wrapper.insert(path[0].json_name().to_owned(), value);
                json::json_to_message(Json::Object(wrapper), &d, shorthand)?
            }
        }
    };
    if route.binding.body != "*" {
        let mut grouped: Vec<(String, Vec<String>)> = Vec::new();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            if SWITCHES.contains(&key.as_ref()) || vars.iter().any(|(name, _)| *name == key) {
                continue;
            }
            match grouped.iter_mut().find(|(name, _)| *name == key) {
                Some((_, values)) => values.push(value.into_owned()),
                None => grouped.push((key.into_owned(), vec![value.into_owned()])),
            }
        }
        for (key, values) in grouped {
            if let Some(fields) = resolve(&d, &key) {
                let values: Vec<&str> = values.iter().map(String::as_str).collect();
                set_path(&mut message, &fields, &values)?;
            }
        }
    }
    for (name, value) in vars {
        let fields = resolve(&d, name).ok_or_else(|| format!("no field {name} for a path variable"))?;
        set_path(&mut message, &fields, &[value])?;
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::descriptors::bindings;
    use prost_reflect::ReflectMessage;

    fn routes() -> Routes {
        Routes::new(bindings())
    }

    #[test]
    fn every_template_parses() {
        for b in bindings() {
            assert!(parse_template(&b.path).is_some(), "{}", b.path);
        }
    }

    #[test]
    fn paths_find_their_method_and_variables() {
        let routes = routes();
        let Match::Found(route, vars) = routes.find("GET", "/api/v1/namespaces/default/workflows/a%20b/history") else {
            panic!("no route")
        };
        assert_eq!(route.binding.method.name(), "GetWorkflowExecutionHistory");
        assert_eq!(vars, [("namespace".into(), "default".into()), ("execution.workflow_id".into(), "a b".into())]);
        let message = build_request(route, &vars, "maximumPageSize=2&execution.runId=r1&bogus=1", b"", true).unwrap();
        assert_eq!(message.descriptor().name(), "GetWorkflowExecutionHistoryRequest");
        let json = json::bytes_to_json(&prost::Message::encode_to_vec(&message), &message.descriptor(), true).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"namespace": "default", "execution": {"workflowId": "a b", "runId": "r1"}, "maximumPageSize": 2})
        );
        assert!(matches!(
            routes.find("PUT", "/api/v1/namespaces/default/workflows/x/history"),
            Match::MethodNotAllowed
        ));
        assert!(matches!(routes.find("GET", "/api/v1/nothing"), Match::NotFound));
    }

    #[test]
    fn path_variables_win_over_the_body_and_bad_values_are_named() {
        let routes = routes();
        let Match::Found(route, vars) = routes.find("POST", "/api/v1/namespaces/default/workflows/wf-5") else {
            panic!("no route")
        };
        let message = build_request(route, &vars, "", br#"{"workflowId":"other"}"#, true).unwrap();
        assert_eq!(message.get_field_by_name("workflow_id").unwrap().as_str(), Some("wf-5"));
        let Match::Found(route, vars) = routes.find("GET", "/api/v1/namespaces/default/workflows/x/history") else {
            panic!("no route")
        };
        let err = build_request(route, &vars, "maximumPageSize=abc", b"", true).unwrap_err();
        assert_eq!(err, r#"parsing field "maximum_page_size": strconv.ParseInt: parsing "abc": invalid syntax"#);
        let err = build_request(route, &vars, "maximumPageSize=1&maximumPageSize=2", b"", true).unwrap_err();
        assert_eq!(err, r#"too many values for field "maximum_page_size": 1, 2"#);
    }
}
