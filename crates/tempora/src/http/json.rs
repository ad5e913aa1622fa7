//! Proto3 JSON as grpc-gateway writes it (through prost-reflect), and Temporal's payload
//! "shorthand" (api-go `common/v1/payload_json.go`): a `json/plain` payload is written as the
//! JSON it holds, a `Payloads` as an array of them, and the same forms are accepted on input.

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use prost_reflect::{DeserializeOptions, DynamicMessage, Kind, MessageDescriptor, SerializeOptions};
use serde_json::{json, Map, Value as Json};

use super::descriptors::POOL;

const PAYLOAD: &str = "temporal.api.common.v1.Payload";
const PAYLOADS: &str = "temporal.api.common.v1.Payloads";

/// Encoded message bytes of type `d` → JSON. Defaults are skipped, names are lowerCamel, enums
/// are names and 64-bit integers strings, as protojson writes them.
pub(crate) fn bytes_to_json(bytes: &[u8], d: &MessageDescriptor, shorthand: bool) -> Result<Json, String> {
    let message = DynamicMessage::decode(d.clone(), bytes).map_err(|e| e.to_string())?;
    let mut value = message
        .serialize_with_options(serde_json::value::Serializer, &SerializeOptions::new())
        .map_err(|e| e.to_string())?;
    if shorthand {
        shorthand_out(d, &mut value);
    }
    Ok(value)
}

/// Encoded message bytes of type `d` → JSON text; without shorthand straight from the message
/// (no intermediate `Value`: a history page of a thousand events is written in one pass).
pub(crate) fn bytes_to_json_text(
    bytes: &[u8],
    d: &MessageDescriptor,
    shorthand: bool,
    pretty: bool,
) -> Result<Vec<u8>, String> {
    if shorthand || pretty {
        let value = bytes_to_json(bytes, d, shorthand)?;
        let text = if pretty { serde_json::to_vec_pretty(&value) } else { serde_json::to_vec(&value) };
        return text.map_err(|e| e.to_string());
    }
    let message = DynamicMessage::decode(d.clone(), bytes).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(bytes.len() * 2);
    let mut serializer = serde_json::Serializer::new(&mut out);
    message.serialize_with_options(&mut serializer, &SerializeOptions::new()).map_err(|e| e.to_string())?;
    Ok(out)
}

/// JSON → a message of type `d`. Unknown fields are refused (as grpc-gateway does); field
/// names may be lowerCamel or as in the proto; enums names or numbers.
pub(crate) fn json_to_message(
    mut value: Json,
    d: &MessageDescriptor,
    shorthand: bool,
) -> Result<DynamicMessage, String> {
    if shorthand {
        shorthand_in(d, &mut value);
    }
    DynamicMessage::deserialize_with_options(d.clone(), value, &DeserializeOptions::new()).map_err(|e| {
        let text = e.to_string();
        // Temporal's words for the common mistake (it also gives the line and column).
        match text.strip_prefix("unrecognized field name '").and_then(|r| r.split_once('\'')) {
            Some((field, _)) => format!("temporalproto: unknown field \"{field}\""),
            None => text,
        }
    })
}

fn metadata(p: &Json, key: &str) -> Option<Vec<u8>> {
    p.get("metadata")?.get(key)?.as_str().and_then(|s| B64.decode(s).ok())
}

/// One payload in shorthand, if it has one.
fn payload_short(p: &Json) -> Option<Json> {
    let keys = p.get("metadata").and_then(Json::as_object).map_or(0, Map::len);
    let data = || p.get("data").and_then(Json::as_str).and_then(|s| B64.decode(s).ok()).unwrap_or_default();
    match metadata(p, "encoding")?.as_slice() {
        // Temporal writes null as the whole binary/null payload, not as JSON null.
        b"binary/null" => Some(json!({"metadata": {"encoding": B64.encode("binary/null")}})),
        b"json/plain" if keys == 1 => serde_json::from_slice(&data()).ok(),
        b"json/protobuf" if keys == 2 => {
            let message_type = String::from_utf8(metadata(p, "messageType")?).ok()?;
            let mut object: Map<String, Json> = serde_json::from_slice(&data()).ok()?;
            object.insert("_protoMessageType".into(), Json::String(message_type));
            Some(Json::Object(object))
        }
        _ => None,
    }
}

fn shorthand_out(d: &MessageDescriptor, v: &mut Json) {
    match d.full_name() {
        PAYLOAD => {
            if let Some(short) = payload_short(v) {
                *v = short;
            }
        }
        PAYLOADS => {
            let Some(list) = v.get_mut("payloads").and_then(Json::as_array_mut) else {
                *v = json!([]);
                return;
            };
            match list.iter().map(payload_short).collect::<Option<Vec<_>>>() {
                Some(all) => *v = Json::Array(all),
                // As Temporal: the list keeps its long form, its elements are still shortened.
                None => {
                    for p in list.iter_mut() {
                        if let Some(short) = payload_short(p) {
                            *p = short;
                        }
                    }
                }
            }
        }
        name if name.starts_with("google.protobuf.") => {}
        _ => walk_fields(d, v, shorthand_out),
    }
}

/// Applies `f` to every message-typed field of `v` (singular, repeated, map values, `Any`).
fn walk_fields(d: &MessageDescriptor, v: &mut Json, f: fn(&MessageDescriptor, &mut Json)) {
    let Some(object) = v.as_object_mut() else { return };
    for field in d.fields() {
        let key = if object.contains_key(field.json_name()) { field.json_name() } else { field.name() };
        let Some(value) = object.get_mut(key) else { continue };
        let Kind::Message(md) = field.kind() else { continue };
        if field.is_map() {
            if let (Kind::Message(vd), Some(entries)) = (md.map_entry_value_field().kind(), value.as_object_mut()) {
                entries.values_mut().for_each(|x| f(&vd, x));
            }
        } else if field.is_list() {
            if let Some(items) = value.as_array_mut() {
                items.iter_mut().for_each(|x| f(&md, x));
            }
        } else if md.full_name() == "google.protobuf.Any" {
            let type_name = value.get("@type").and_then(Json::as_str).and_then(|t| t.rsplit('/').next());
            if let Some(ad) = type_name.and_then(|t| POOL.get_message_by_name(t)) {
                if !ad.full_name().starts_with("google.protobuf.") {
                    f(&ad, value);
                }
            }
        } else {
            f(&md, value);
        }
    }
}

/// One payload from its shorthand (or standard) form.
fn payload_long(v: &Json) -> Json {
    let b64 = |s: &str| B64.encode(s);
    if v.is_null() {
        return json!({"metadata": {"encoding": b64("binary/null")}});
    }
    if let Some(object) = v.as_object() {
        // The standard form: base64 metadata (with an encoding) and base64 data, nothing else.
        if let Some(md) = object.get("metadata").and_then(Json::as_object) {
            let is_b64 = |x: &Json| x.as_str().is_some_and(|s| B64.decode(s).is_ok());
            let md_ok = md.contains_key("encoding") && md.values().all(is_b64);
            let null = md.get("encoding").and_then(Json::as_str) == Some(b64("binary/null").as_str());
            if md_ok && ((object.len() == 1 && null) || (object.len() == 2 && object.get("data").is_some_and(is_b64))) {
                return v.clone();
            }
        }
        if let Some(message_type) = object.get("_protoMessageType").and_then(Json::as_str) {
            let mut rest = object.clone();
            rest.remove("_protoMessageType");
            let data = serde_json::to_vec(&rest).unwrap_or_default();
            return json!({"metadata": {"encoding": b64("json/protobuf"), "messageType": b64(message_type)},
                          "data": B64.encode(data)});
        }
    }
    let data = serde_json::to_vec(v).unwrap_or_default();
    json!({"metadata": {"encoding": b64("json/plain")}, "data": B64.encode(data)})
}

fn shorthand_in(d: &MessageDescriptor, v: &mut Json) {
    match d.full_name() {
        PAYLOAD => *v = payload_long(v),
        PAYLOADS => {
            if v.is_null() {
                *v = json!({});
            } else if let Some(items) = v.as_array() {
                *v = json!({"payloads": items.iter().map(payload_long).collect::<Vec<_>>()});
            } else {
                walk_fields(d, v, shorthand_in);
            }
        }
        name if name.starts_with("google.protobuf.") => {}
        _ => walk_fields(d, v, shorthand_in),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use temporalio_protos::temporal::api::common::v1::{Payload, Payloads};
    use temporalio_protos::temporal::api::workflowservice::v1::SignalWorkflowExecutionRequest;

    fn json_payload(data: &str) -> Payload {
        Payload {
            metadata: [("encoding".to_string(), b"json/plain".to_vec())].into(),
            data: data.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    fn descriptor(name: &str) -> MessageDescriptor {
        POOL.get_message_by_name(name).unwrap()
    }

    #[test]
    fn payloads_are_written_in_shorthand_and_read_back() {
        let request = SignalWorkflowExecutionRequest {
            namespace: "default".into(),
            signal_name: "go".into(),
            input: Some(Payloads { payloads: vec![json_payload(r#"{"a":1}"#), json_payload("5")] }),
            ..Default::default()
        };
        let d = descriptor("temporal.api.workflowservice.v1.SignalWorkflowExecutionRequest");
        let short = bytes_to_json(&request.encode_to_vec(), &d, true).unwrap();
        assert_eq!(short["input"], json!([{"a": 1}, 5]));
        assert_eq!(short["signalName"], "go");
        let long = bytes_to_json(&request.encode_to_vec(), &d, false).unwrap();
        assert_eq!(long["input"]["payloads"][1]["data"], B64.encode("5"));
        for (value, shorthand) in [(short, true), (long, false)] {
            let back = json_to_message(value, &d, shorthand).unwrap();
            let back = SignalWorkflowExecutionRequest::decode(back.encode_to_vec().as_slice()).unwrap();
            assert_eq!(back.input.unwrap().payloads[0].data, br#"{"a":1}"#);
        }
    }

    #[test]
    fn a_payload_that_has_no_shorthand_keeps_its_form_in_a_shortened_list() {
        let binary = Payload {
            metadata: [("encoding".to_string(), b"binary/plain".to_vec())].into(),
            data: vec![0, 1],
            ..Default::default()
        };
        let d = descriptor(PAYLOADS);
        let bytes = Payloads { payloads: vec![json_payload("1"), binary] }.encode_to_vec();
        let v = bytes_to_json(&bytes, &d, true).unwrap();
        assert_eq!(v, json!({"payloads": [1, {"metadata": {"encoding": B64.encode("binary/plain")}, "data": "AAE="}]}));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let d = descriptor("temporal.api.workflowservice.v1.SignalWorkflowExecutionRequest");
        let err = json_to_message(json!({"bogusField": 1}), &d, true).unwrap_err();
        assert!(err.contains("bogusField"), "{err}");
    }
}
