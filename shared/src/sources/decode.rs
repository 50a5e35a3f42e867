//! Strict decoding of request text, the same rules for forms, query strings and JSON:
//!
//! - every key and value must be valid UTF-8; anything else is a 400 `invalid_utf8` naming the
//!   field (never replaced by U+FFFD, which would end up in tag names and contact fields);
//! - a key sent twice with different values is a 400 `duplicate_key` naming the key, because
//!   "first wins" (forms) and "last wins" (JSON) would each tag the wrong person or webinar for
//!   some sender; the same key sent twice with the same value is harmless and accepted.
//!
//! Form keys ending in `[]` (`tags[]=a&tags[]=b`) are lists by convention and may repeat.
//! Error messages name a field but never echo a value.

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

use super::fields;
use super::{Rejection, RejectionKind};

/// Where form-encoded pairs came from: decides how error messages name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FormPlace {
    Body,
    Query,
}

impl FormPlace {
    fn noun(self) -> &'static str {
        match self {
            FormPlace::Body => "form field",
            FormPlace::Query => "query parameter",
        }
    }
}

/// Longest field name quoted back in a message; longer ones are cut (they are caller text).
const MAX_QUOTED_FIELD_CHARS: usize = 64;

fn quoted(field: &str) -> String {
    field.chars().take(MAX_QUOTED_FIELD_CHARS).collect()
}

pub(super) fn invalid_utf8(what: &str, field: &str) -> Rejection {
    let field = quoted(field);
    Rejection::new(
        RejectionKind::MalformedBody,
        "invalid_utf8",
        format!("The {what} '{field}' is not valid UTF-8 text; send every value UTF-8 encoded (percent-encoded in forms and URLs)."),
    )
    .with_field(field)
}

pub(super) fn duplicate_key(what: &str, field: &str) -> Rejection {
    let field = quoted(field);
    Rejection::new(
        RejectionKind::MalformedBody,
        "duplicate_key",
        format!("The {what} '{field}' is sent more than once with different values; send it once, so it is clear which value is meant."),
    )
    .with_field(field)
}

/// `application/x-www-form-urlencoded` pairs (a body or a query string), strictly decoded:
/// `+` is a space, `%XX` a byte, and the bytes of every key and value must be UTF-8. Identical
/// duplicates are kept once; conflicting ones are refused.
pub(super) fn form_pairs(raw: &[u8], place: FormPlace) -> Result<Vec<(String, String)>, Rejection> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for piece in raw.split(|byte| *byte == b'&').filter(|piece| !piece.is_empty()) {
        let (raw_key, raw_value) = match piece.iter().position(|byte| *byte == b'=') {
            Some(at) => (&piece[..at], &piece[at + 1..]),
            None => (piece, &[][..]),
        };
        let key_bytes = decode_component(raw_key);
        let key = String::from_utf8(key_bytes)
            .map_err(|error| invalid_utf8(place.noun(), &String::from_utf8_lossy(error.as_bytes())))?;
        let value = String::from_utf8(decode_component(raw_value)).map_err(|_| invalid_utf8(place.noun(), &key))?;
        if key.ends_with("[]") {
            pairs.push((key, value));
            continue;
        }
        match seen.get(&key) {
            Some(&index) if pairs[index].1 == value => {}
            Some(_) => return Err(duplicate_key(place.noun(), &key)),
            None => {
                seen.insert(key.clone(), pairs.len());
                pairs.push((key, value));
            }
        }
    }
    Ok(pairs)
}

/// The value of one query parameter, strictly: its value must be UTF-8 and a repeat must agree.
/// Other parameters are not read, so bytes in them that the bridge never uses refuse nothing (an
/// unauthenticated request stays a 401, whatever else its URL carries).
pub(super) fn query_param(raw: &[u8], name: &str) -> Result<Option<String>, Rejection> {
    let mut found: Option<String> = None;
    for piece in raw.split(|byte| *byte == b'&').filter(|piece| !piece.is_empty()) {
        let (raw_key, raw_value) = match piece.iter().position(|byte| *byte == b'=') {
            Some(at) => (&piece[..at], &piece[at + 1..]),
            None => (piece, &[][..]),
        };
        if decode_component(raw_key) != name.as_bytes() {
            continue;
        }
        let noun = FormPlace::Query.noun();
        let value = String::from_utf8(decode_component(raw_value)).map_err(|_| invalid_utf8(noun, name))?;
        match &found {
            Some(earlier) if *earlier != value => return Err(duplicate_key(noun, name)),
            _ => found = Some(value),
        }
    }
    Ok(found)
}

/// One form component: `+` is a space, then percent-decoding to raw bytes.
fn decode_component(raw: &[u8]) -> Vec<u8> {
    let spaced: Vec<u8> = raw.iter().map(|byte| if *byte == b'+' { b' ' } else { *byte }).collect();
    percent_encoding::percent_decode(&spaced).collect()
}

/// A JSON document, strictly: a UTF-8 byte-order mark is tolerated, invalid UTF-8 is a 400
/// naming the field it is in, and an object key repeated with a different value is a 400
/// naming its path (`contact.email`, `[1].kind`). serde_json's nesting limit still applies.
pub(super) fn json(body: &[u8]) -> Result<Value, Rejection> {
    let body = fields::strip_utf8_bom(body);
    if std::str::from_utf8(body).is_ok() {
        return parse_json(body);
    }
    // Find the field the invalid bytes are in: parse a copy with them replaced and look for
    // the replacement character. A body that is not JSON even then is a syntax error.
    let lossy = String::from_utf8_lossy(body);
    let document = parse_json(lossy.as_bytes())?;
    let field = replaced_field(&document, "").unwrap_or_default();
    if field.is_empty() {
        return Err(Rejection::new(
            RejectionKind::MalformedBody,
            "invalid_utf8",
            "The body is not valid UTF-8 text; send JSON encoded as UTF-8.",
        ));
    }
    Err(invalid_utf8("field", &field))
}

fn parse_json(body: &[u8]) -> Result<Value, Rejection> {
    let conflict = RefCell::new(None);
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let parsed = StrictSeed { path: String::new(), conflict: &conflict }
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value));
    match parsed {
        Ok(value) => Ok(value),
        Err(error) => match conflict.into_inner() {
            Some(path) => Err(duplicate_key("field", &path)),
            None => Err(fields::json_syntax_rejection(&error)),
        },
    }
}

/// Path of the first key or string holding U+FFFD (where invalid bytes were replaced).
fn replaced_field(value: &Value, path: &str) -> Option<String> {
    const REPLACEMENT: char = '\u{FFFD}';
    match value {
        Value::String(text) if text.contains(REPLACEMENT) => Some(path.to_owned()),
        Value::Array(items) => {
            items.iter().enumerate().find_map(|(index, item)| replaced_field(item, &format!("{path}[{index}]")))
        }
        Value::Object(object) => object.iter().find_map(|(key, item)| {
            let child = child_path(path, key);
            if key.contains(REPLACEMENT) { Some(child) } else { replaced_field(item, &child) }
        }),
        _ => None,
    }
}

fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

/// Builds a `serde_json::Value` like serde_json does, but refuses conflicting duplicate keys
/// (serde_json keeps the last one silently) and remembers where that happened.
struct StrictSeed<'a> {
    path: String,
    conflict: &'a RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for StrictSeed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictSeed<'_> {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        StrictSeed { path: self.path, conflict: self.conflict }.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let seed = StrictSeed { path: format!("{}[{}]", self.path, items.len()), conflict: self.conflict };
            match access.next_element_seed(seed)? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let path = child_path(&self.path, &key);
            let value = access.next_value_seed(StrictSeed { path: path.clone(), conflict: self.conflict })?;
            match object.get(&key) {
                Some(existing) if *existing == value => {}
                Some(_) => {
                    self.conflict.replace(Some(path));
                    return Err(de::Error::custom("an object key is repeated with a different value"));
                }
                None => {
                    object.insert(key, value);
                }
            }
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(raw: &str) -> Result<Vec<(String, String)>, Rejection> {
        form_pairs(raw.as_bytes(), FormPlace::Body)
    }

    #[test]
    fn forms_decode_plus_and_percent_and_keep_identical_duplicates_once() {
        let pairs = form("email=a%40b.example&name=Erika+M%C3%BCller&email=a%40b.example&tags[]=x&tags[]=y").unwrap();
        assert_eq!(
            pairs,
            vec![
                ("email".to_owned(), "a@b.example".to_owned()),
                ("name".to_owned(), "Erika Müller".to_owned()),
                ("tags[]".to_owned(), "x".to_owned()),
                ("tags[]".to_owned(), "y".to_owned()),
            ]
        );
    }

    #[test]
    fn forms_refuse_invalid_utf8_and_conflicting_duplicates_naming_the_field() {
        let rejection = form("email=a%40b.example&webinar_name=%FF%FEX").unwrap_err();
        assert_eq!((rejection.status(), rejection.code), (400, "invalid_utf8"));
        assert_eq!(rejection.field.as_deref(), Some("webinar_name"));
        let rejection = form("email=a%40b.example&email=b%40b.example").unwrap_err();
        assert_eq!(
            (rejection.status(), rejection.code, rejection.field.as_deref()),
            (400, "duplicate_key", Some("email"))
        );
        assert!(!rejection.message.contains("b.example"), "values are never echoed");
        let rejection = form_pairs(b"token=%C3%28", FormPlace::Query).unwrap_err();
        assert!(rejection.message.contains("query parameter 'token'"));
    }

    #[test]
    fn json_refuses_conflicting_duplicates_at_any_depth_and_keeps_identical_ones() {
        let value = json(br#"{"a":1,"a":1,"b":{"c":[1,{"d":2}]}}"#).unwrap();
        assert_eq!(value, serde_json::json!({"a":1,"b":{"c":[1,{"d":2}]}}));
        let rejection = json(br#"{"contact":{"email":"a@b.example","email":"c@b.example"}}"#).unwrap_err();
        assert_eq!((rejection.code, rejection.field.as_deref()), ("duplicate_key", Some("contact.email")));
        let rejection = json(br#"[{"kind":"registered"},{"kind":"registered","kind":"cancelled"}]"#).unwrap_err();
        assert_eq!(rejection.field.as_deref(), Some("[1].kind"));
    }

    #[test]
    fn json_with_invalid_utf8_names_the_field() {
        let rejection = json(b"{\"email\":\"a@b.example\",\"webinar\":{\"name\":\"\xFF\xFEX\"}}").unwrap_err();
        assert_eq!((rejection.status(), rejection.code), (400, "invalid_utf8"));
        assert_eq!(rejection.field.as_deref(), Some("webinar.name"));
        let rejection = json(b"{\"e\xFFmail\":\"x\"}").unwrap_err();
        assert_eq!(rejection.code, "invalid_utf8");
        assert_eq!(json(b"\xEF\xBB\xBF{\"a\":\"\xC3\xBC\"}").unwrap(), serde_json::json!({"a":"ü"}));
        assert_eq!(json(b"{\"a\":1} x").unwrap_err().code, "malformed_json");
    }
}
