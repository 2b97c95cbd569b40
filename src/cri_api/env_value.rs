//! The JSON form of `KeyValue.value` in stored records. CRI v0.34 made it `bytes` (environment
//! values need not be UTF-8); records written before hold a JSON string. A UTF-8 value is still
//! written as a string, so those records stay readable by older berth; any other value as an
//! array of byte values. Both forms read back.

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserializer, Serializer};

pub fn serialize<S: Serializer>(value: &[u8], s: S) -> Result<S::Ok, S::Error> {
    match std::str::from_utf8(value) {
        Ok(text) => s.serialize_str(text),
        Err(_) => s.collect_seq(value),
    }
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    d.deserialize_any(BytesOrString)
}

struct BytesOrString;

impl<'de> Visitor<'de> for BytesOrString {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string or an array of bytes")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
        Ok(v.as_bytes().to_vec())
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(b) = seq.next_element::<u8>()? {
            out.push(b);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::cri_api::KeyValue;

    fn kv(value: &[u8]) -> KeyValue {
        KeyValue {
            key: "K".into(),
            value: value.to_vec(),
        }
    }

    #[test]
    fn utf8_values_stay_strings_and_others_round_trip() {
        let text = serde_json::to_string(&kv("grüß".as_bytes())).unwrap();
        assert_eq!(text, r#"{"key":"K","value":"grüß"}"#);
        let raw = serde_json::to_string(&kv(&[0xff, b'a'])).unwrap();
        assert_eq!(raw, r#"{"key":"K","value":[255,97]}"#);
        let back: KeyValue = serde_json::from_str(&raw).unwrap();
        assert_eq!(back.value, vec![0xff, b'a']);
        let old: KeyValue = serde_json::from_str(r#"{"key":"K","value":"v=1"}"#).unwrap();
        assert_eq!(old.value, b"v=1");
        assert!(serde_json::from_str::<KeyValue>(r#"{"key":"K","value":[256]}"#).is_err());
    }
}
