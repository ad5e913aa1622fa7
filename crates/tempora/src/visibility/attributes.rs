//! Search attributes: which names exist in a namespace (system, predefined, custom) and what
//! a value written to one must look like.
//!
//! Values travel as `json/plain` payloads. On write (start, signal-with-start, child,
//! continue-as-new, upsert) every value is checked against its attribute's type and stored
//! re-encoded with the `type` metadata set, because SDKs decode by it (Python drops an
//! attribute without it). A null value in an upsert removes the attribute. Pure: no I/O.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use temporalio_protos::temporal::api::common::v1::{Payload, SearchAttributes};

use super::query::{self, Attribute, Column, ValueType};

/// A namespace's custom search attributes: name → type.
pub type CustomTypes = BTreeMap<String, ValueType>;

/// A decoded value of a search attribute.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Text(String),
    Keyword(String),
    Int(i64),
    Double(f64),
    Bool(bool),
    /// Unix nanoseconds.
    Datetime(i64),
    KeywordList(Vec<String>),
}

/// Every name a query or a write may use in one namespace.
pub struct Registry<'a> {
    pub custom: &'a CustomTypes,
}

impl Registry<'_> {
    /// A system attribute: set by the server, never by a client.
    pub fn system(name: &str) -> Option<Attribute> {
        query::system_attributes().into_iter().find(|a| a.name == name)
    }

    pub fn predefined(name: &str) -> Option<Attribute> {
        query::predefined_attributes().into_iter().find(|a| a.name == name)
    }

    /// Names Temporal reserves: the system and predefined ones, and any with its prefix.
    pub fn is_reserved(name: &str) -> bool {
        Self::system(name).is_some() || Self::predefined(name).is_some() || name.starts_with("Temporal")
    }

    /// The type of an attribute a client may write, if defined.
    pub fn writable_type(&self, name: &str) -> Option<ValueType> {
        self.custom.get(name).copied().or_else(|| Self::predefined(name).map(|a| a.value_type))
    }
}

impl query::Resolver for Registry<'_> {
    fn resolve(&self, name: &str) -> Option<Attribute> {
        if let Some(t) = self.custom.get(name) {
            return Some(Attribute {
                name: name.to_string(),
                value_type: *t,
                column: Column::Custom(name.to_string()),
            });
        }
        Self::system(name).or_else(|| Self::predefined(name))
    }
}

/// True when a payload means "no value" (an upsert of it removes the attribute).
pub fn is_null(p: &Payload) -> bool {
    let encoding = p.metadata.get("encoding").map(|e| e.as_slice());
    encoding == Some(b"binary/null") || p.data.is_empty() || p.data == b"null"
}

/// Checks every attribute of a write and returns them re-encoded with `type` metadata. Null
/// values are kept when `keep_nulls` (an upsert removes them) and dropped otherwise.
/// The error is Temporal's INVALID_ARGUMENT message.
pub fn validate(
    sa: &SearchAttributes,
    registry: &Registry<'_>,
    namespace: &str,
    keep_nulls: bool,
) -> Result<SearchAttributes, String> {
    let mut out = SearchAttributes::default();
    for (name, payload) in &sa.indexed_fields {
        if Registry::system(name).is_some() {
            return Err(format!("{name} attribute can't be set in SearchAttributes"));
        }
        let Some(value_type) = registry.writable_type(name) else {
            return Err(format!("Namespace {namespace} has no mapping defined for search attribute {name}"));
        };
        if is_null(payload) {
            if keep_nulls {
                out.indexed_fields.insert(name.clone(), payload.clone());
            }
            continue;
        }
        let value = decode(payload, value_type).ok_or_else(|| {
            // Temporal prints the value as decoded (a JSON string without its quotes).
            let raw = String::from_utf8_lossy(&payload.data);
            let shown = serde_json::from_str::<String>(&raw).unwrap_or_else(|_| raw.to_string());
            format!("invalid value for search attribute {name} of type {}: {shown}", value_type.name())
        })?;
        out.indexed_fields.insert(name.clone(), encode(&value));
    }
    Ok(out)
}

/// The type a stored payload says it has (set by `validate`).
fn stored_type(p: &Payload) -> Option<ValueType> {
    ValueType::from_name(p.metadata.get("type")?)
}

/// The decoded value of a stored attribute; `None` if it is null or was never checked.
pub fn stored_value(p: &Payload) -> Option<Value> {
    decode(p, stored_type(p)?)
}

/// Decodes a payload as `value_type`, accepting the legacy one-element list for single values.
pub fn decode(p: &Payload, value_type: ValueType) -> Option<Value> {
    if is_null(p) {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(&p.data).ok()?;
    let single = match (&json, value_type) {
        (serde_json::Value::Array(items), t) if t != ValueType::KeywordList && items.len() == 1 => &items[0],
        _ => &json,
    };
    Some(match value_type {
        ValueType::Text => Value::Text(single.as_str()?.to_string()),
        ValueType::Keyword => Value::Keyword(single.as_str()?.to_string()),
        ValueType::Int => Value::Int(single.as_i64()?),
        ValueType::Double => Value::Double(single.as_f64()?),
        ValueType::Bool => Value::Bool(single.as_bool()?),
        ValueType::Datetime => {
            let t = DateTime::parse_from_rfc3339(single.as_str()?).ok()?;
            Value::Datetime(t.with_timezone(&Utc).timestamp_nanos_opt()?)
        }
        ValueType::KeywordList => match &json {
            serde_json::Value::String(s) => Value::KeywordList(vec![s.clone()]),
            serde_json::Value::Array(items) => {
                Value::KeywordList(items.iter().map(|i| i.as_str().map(str::to_string)).collect::<Option<Vec<_>>>()?)
            }
            _ => return None,
        },
    })
}

/// A value as Temporal returns it: `json/plain` with its type in the metadata.
pub fn encode(value: &Value) -> Payload {
    let (json, value_type) = match value {
        Value::Text(s) => (serde_json::json!(s), ValueType::Text),
        Value::Keyword(s) => (serde_json::json!(s), ValueType::Keyword),
        Value::Int(n) => (serde_json::json!(n), ValueType::Int),
        Value::Double(f) => (serde_json::json!(f), ValueType::Double),
        Value::Bool(b) => (serde_json::json!(b), ValueType::Bool),
        Value::Datetime(ns) => (serde_json::json!(datetime_text(*ns)), ValueType::Datetime),
        Value::KeywordList(items) => (serde_json::json!(items), ValueType::KeywordList),
    };
    let mut payload = Payload { data: json.to_string().into_bytes(), ..Default::default() };
    payload.metadata.insert("encoding".into(), b"json/plain".to_vec());
    payload.metadata.insert("type".into(), value_type.name().as_bytes().to_vec());
    payload
}

/// RFC 3339 in UTC with as many fraction digits as needed, as Temporal formats datetimes.
pub fn datetime_text(ns: i64) -> String {
    DateTime::<Utc>::from_timestamp_nanos(ns).to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Applies an upsert to the current attributes: null values remove, others replace.
pub fn merge(current: &mut SearchAttributes, upsert: &SearchAttributes) {
    for (name, payload) in &upsert.indexed_fields {
        if is_null(payload) {
            current.indexed_fields.remove(name);
        } else {
            current.indexed_fields.insert(name.clone(), payload.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(s: &str) -> Payload {
        let mut p = Payload { data: s.as_bytes().to_vec(), ..Default::default() };
        p.metadata.insert("encoding".into(), b"json/plain".to_vec());
        p
    }

    fn attrs(fields: &[(&str, &str)]) -> SearchAttributes {
        SearchAttributes { indexed_fields: fields.iter().map(|(k, v)| (k.to_string(), json(v))).collect() }
    }

    #[test]
    fn writes_are_checked_and_typed() {
        let custom: CustomTypes =
            [("CustomKeyword".to_string(), ValueType::Keyword), ("CustomInt".to_string(), ValueType::Int)].into();
        let registry = Registry { custom: &custom };
        let ok = validate(&attrs(&[("CustomKeyword", "\"a\""), ("CustomInt", "[7]")]), &registry, "ns", false).unwrap();
        assert_eq!(ok.indexed_fields["CustomKeyword"].metadata["type"], b"Keyword");
        assert_eq!(ok.indexed_fields["CustomInt"].data, b"7");
        assert_eq!(stored_value(&ok.indexed_fields["CustomInt"]), Some(Value::Int(7)));
        let list = validate(&attrs(&[("TemporalChangeVersion", "[\"a-1\",\"b-2\"]")]), &registry, "ns", false).unwrap();
        assert_eq!(
            stored_value(&list.indexed_fields["TemporalChangeVersion"]),
            Some(Value::KeywordList(vec!["a-1".into(), "b-2".into()]))
        );

        let err = |f: &[(&str, &str)]| validate(&attrs(f), &registry, "ns", false).unwrap_err();
        assert_eq!(err(&[("Nope", "1")]), "Namespace ns has no mapping defined for search attribute Nope");
        assert_eq!(err(&[("WorkflowId", "\"x\"")]), "WorkflowId attribute can't be set in SearchAttributes");
        assert_eq!(err(&[("CustomInt", "\"x\"")]), "invalid value for search attribute CustomInt of type Int: x");
    }

    #[test]
    fn nulls_remove_on_upsert() {
        let custom: CustomTypes = [("K".to_string(), ValueType::Keyword)].into();
        let registry = Registry { custom: &custom };
        let mut current = validate(&attrs(&[("K", "\"a\"")]), &registry, "ns", false).unwrap();
        let upsert = validate(&attrs(&[("K", "null")]), &registry, "ns", true).unwrap();
        merge(&mut current, &upsert);
        assert!(current.indexed_fields.is_empty());
        assert!(validate(&attrs(&[("K", "null")]), &registry, "ns", false).unwrap().indexed_fields.is_empty());
    }

    #[test]
    fn datetimes_round_trip() {
        let custom: CustomTypes = [("D".to_string(), ValueType::Datetime)].into();
        let registry = Registry { custom: &custom };
        let v = validate(&attrs(&[("D", "\"2024-05-01T10:00:00.5+02:00\"")]), &registry, "ns", false).unwrap();
        assert_eq!(String::from_utf8_lossy(&v.indexed_fields["D"].data), "\"2024-05-01T08:00:00.500Z\"");
    }
}
