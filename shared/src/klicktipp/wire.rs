//! Decoding the success bodies of each endpoint. Anything unexpected is `InvalidResponse`.
//!
//! KlickTipp's backend is PHP, which serialises an empty associative array as `[]`, so every map
//! accepts `[]` (and `{}`) as empty.

use super::error::KlickTippError;
use super::model::Subscriber;
use super::response::{Reply, integer, text};
use serde_json::Value;
use std::collections::BTreeMap;

fn invalid(operation: &'static str, reply: &Reply, detail: &str) -> KlickTippError {
    KlickTippError::InvalidResponse { operation, status: reply.status, detail: detail.to_owned() }
}

/// Writes answer `[true]`; anything else means we cannot tell whether the write happened.
pub(crate) fn confirmed(operation: &'static str, reply: &Reply) -> Result<(), KlickTippError> {
    match reply.body.as_array().map(Vec::as_slice) {
        Some([Value::Bool(true)]) => Ok(()),
        _ => Err(invalid(operation, reply, "expected [true]")),
    }
}

/// The contact object answered by create/update and get.
pub(crate) fn contact(operation: &'static str, reply: &Reply) -> Result<Subscriber, KlickTippError> {
    Subscriber::from_contact(&reply.body).ok_or_else(|| invalid(operation, reply, "expected a contact object"))
}

/// `[x]` (or a bare `x`) where x is a string or number, as text: search ids, redirect URLs.
pub(crate) fn single_text(operation: &'static str, reply: &Reply) -> Result<String, KlickTippError> {
    single(&reply.body)
        .and_then(text)
        .filter(|value| !value.is_empty())
        .ok_or_else(|| invalid(operation, reply, "expected a one-element array"))
}

/// `[49]`: the id of something just created.
pub(crate) fn single_id(operation: &'static str, reply: &Reply) -> Result<u64, KlickTippError> {
    single(&reply.body)
        .and_then(integer)
        .and_then(|id| u64::try_from(id).ok())
        .ok_or_else(|| invalid(operation, reply, "expected a one-element array with an id"))
}

fn single(body: &Value) -> Option<&Value> {
    match body {
        Value::Array(items) if items.len() == 1 => items.first(),
        Value::String(_) | Value::Number(_) => Some(body),
        _ => None,
    }
}

/// `{"21":"mytag"}`: tags and opt-in processes by numeric id.
pub(crate) fn id_map(operation: &'static str, reply: &Reply) -> Result<BTreeMap<u64, String>, KlickTippError> {
    string_map(operation, reply)?
        .into_iter()
        .map(|(key, name)| match key.trim().parse() {
            Ok(id) => Ok((id, name)),
            Err(_) => Err(invalid(operation, reply, "expected numeric ids as keys")),
        })
        .collect()
}

/// `{"fieldFirstName":"Vorname"}`; `null` names count as empty.
pub(crate) fn string_map(operation: &'static str, reply: &Reply) -> Result<BTreeMap<String, String>, KlickTippError> {
    match &reply.body {
        Value::Object(map) => {
            Ok(map.iter().map(|(key, value)| (key.clone(), text(value).unwrap_or_default())).collect())
        }
        Value::Array(items) if items.is_empty() => Ok(BTreeMap::new()),
        _ => Err(invalid(operation, reply, "expected a map")),
    }
}

/// The login answer `{sessid, session_name, account}`, as `(session_name, sessid)`.
pub(crate) fn session(operation: &'static str, reply: &Reply) -> Result<(String, String), KlickTippError> {
    let get = |key: &str| reply.body.get(key).and_then(Value::as_str).filter(|value| !value.is_empty());
    match (get("session_name"), get("sessid")) {
        (Some(name), Some(id)) => Ok((name.to_owned(), id.to_owned())),
        _ => Err(invalid(operation, reply, "login answer lacks session_name or sessid")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reply(body: Value) -> Reply {
        Reply { status: 200, body }
    }

    #[test]
    fn writes_must_be_confirmed() {
        assert!(confirmed("op", &reply(json!([true]))).is_ok());
        for body in [json!([false]), json!([]), json!(true), json!({}), Value::Null, json!([true, true])] {
            let error = confirmed("op", &reply(body)).unwrap_err();
            assert!(matches!(error, KlickTippError::InvalidResponse { .. }));
        }
    }

    #[test]
    fn maps_accept_php_empty_arrays() {
        assert!(id_map("op", &reply(json!([]))).expect("empty").is_empty());
        assert!(id_map("op", &reply(json!({}))).expect("empty").is_empty());
        assert!(string_map("op", &reply(json!([]))).expect("empty").is_empty());
        assert!(id_map("op", &reply(json!([1, 2]))).is_err());
    }

    #[test]
    fn id_maps() {
        let optins = id_map("op", &reply(json!({"3": "", "23": "my-optin-process"}))).expect("map");
        assert_eq!(optins, BTreeMap::from([(3, String::new()), (23, "my-optin-process".to_owned())]));
        assert!(id_map("op", &reply(json!({"x": "y"}))).is_err());
    }

    #[test]
    fn single_values() {
        assert_eq!(single_id("op", &reply(json!([49]))).ok(), Some(49));
        assert_eq!(single_id("op", &reply(json!(["49"]))).ok(), Some(49));
        assert!(single_id("op", &reply(json!([]))).is_err());
        assert!(single_id("op", &reply(json!([-1]))).is_err());
        assert_eq!(single_text("op", &reply(json!([123]))).ok().as_deref(), Some("123"));
        let url = "https://example.com/pending/abc";
        assert_eq!(single_text("op", &reply(json!([url]))).ok().as_deref(), Some(url));
        assert!(single_text("op", &reply(json!([""]))).is_err());
    }

    #[test]
    fn login_answer() {
        let body = json!({"sessid": "abc", "session_name": "SSESS0123", "account": {"uid": "1"}});
        assert_eq!(session("op", &reply(body)).ok(), Some(("SSESS0123".to_owned(), "abc".to_owned())));
        assert!(session("op", &reply(json!({"sessid": "abc"}))).is_err());
    }
}
