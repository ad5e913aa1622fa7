//! Protobuf messages that hold `Any` (protocol messages) cannot go through the API types'
//! serde (their `Any` needs a type registry): such fields are serialised as their protobuf
//! bytes instead (`#[serde(with = "proto_serde::list")]`).

use prost::Message;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub mod list {
    use super::*;

    pub fn serialize<T: Message, S: Serializer>(items: &[T], s: S) -> Result<S::Ok, S::Error> {
        let encoded: Vec<Vec<u8>> = items.iter().map(|m| m.encode_to_vec()).collect();
        encoded.serialize(s)
    }

    pub fn deserialize<'de, T: Message + Default, D: Deserializer<'de>>(d: D) -> Result<Vec<T>, D::Error> {
        let encoded = Vec::<Vec<u8>>::deserialize(d)?;
        encoded.iter().map(|b| T::decode(b.as_slice()).map_err(serde::de::Error::custom)).collect()
    }
}
