//! Turning an HTTP answer (status, `Retry-After`, body bytes) into a JSON value or a typed error.
//!
//! KlickTipp's error bodies come in many shapes (reference section 3): an array of strings, a
//! bare JSON string, an unquoted `[Missing required argument email]`, `{error, code?,
//! error_message?}`, field errors `{error: 8, field, name, field_value, reason}`, and even
//! `{error}` inside a 200. Parsing is lenient; classification uses only status and `error`.

use super::error::{FieldError, KlickTippError};
use serde_json::{Map, Value};
use std::time::Duration;

/// A successful answer: its status and its JSON body (`Null` for an empty body).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: Value,
}

/// Plain-text error bodies longer than this are a proxy's page, not KlickTipp's words.
const MAX_PLAIN_TEXT_MESSAGE: usize = 200;

pub(crate) fn interpret(
    operation: &'static str,
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Result<Reply, KlickTippError> {
    match status {
        429 => Err(KlickTippError::RateLimited { operation, retry_after }),
        500..=599 => Err(KlickTippError::Server { operation, status }),
        200..=299 => success(operation, status, body),
        300..=399 => Err(KlickTippError::InvalidResponse {
            operation,
            status,
            detail: "unexpected redirect; check KLICKTIPP_BASE_URL".into(),
        }),
        _ => Err(rejection(operation, status, body)),
    }
}

fn success(operation: &'static str, status: u16, body: &[u8]) -> Result<Reply, KlickTippError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Reply { status, body: Value::Null });
    }
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Err(KlickTippError::InvalidResponse { operation, status, detail: describe_non_json(body) });
    };
    // A `{error: n}` body is a refusal even under 200; adopted from connectors that saw it.
    if let Value::Object(object) = &value
        && let Some(error) = object.get("error").and_then(integer)
    {
        return Err(rejection_from_object(operation, status, object, Some(error)));
    }
    Ok(Reply { status, body: value })
}

/// Parse any error body into `Rejected`.
pub(crate) fn rejection(operation: &'static str, status: u16, body: &[u8]) -> KlickTippError {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => {
            let error = object.get("error").and_then(integer);
            rejection_from_object(operation, status, &object, error)
        }
        Ok(value) => rejected(operation, status, messages_of(&value)),
        Err(_) => rejected(operation, status, plain_text_messages(body)),
    }
}

fn rejected(operation: &'static str, status: u16, messages: Vec<String>) -> KlickTippError {
    KlickTippError::Rejected { operation, status, error: None, code: None, field: None, messages }
}

fn rejection_from_object(
    operation: &'static str,
    status: u16,
    object: &Map<String, Value>,
    error: Option<i64>,
) -> KlickTippError {
    let messages = ["error_message", "message"].iter().filter_map(|key| object.get(*key).and_then(text)).collect();
    KlickTippError::Rejected {
        operation,
        status,
        error,
        code: object.get("code").and_then(integer),
        field: field_error(object),
        messages,
    }
}

fn field_error(object: &Map<String, Value>) -> Option<Box<FieldError>> {
    let get = |key: &str| object.get(key).and_then(text);
    let field = FieldError { key: get("name"), label: get("field"), value: get("field_value"), reason: get("reason") };
    (field != FieldError::default()).then(|| Box::new(field))
}

fn messages_of(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items.iter().filter_map(text).collect(),
        other => text(other).into_iter().collect(),
    }
}

/// `[Missing required argument email]` (unquoted) or a short plain sentence; HTML and long
/// pages are dropped rather than echoed into error messages.
fn plain_text_messages(body: &[u8]) -> Vec<String> {
    let body = String::from_utf8_lossy(body);
    let trimmed = body.trim();
    let inner = trimmed.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')).unwrap_or(trimmed).trim();
    if inner.is_empty() || inner.starts_with('<') || inner.chars().count() > MAX_PLAIN_TEXT_MESSAGE {
        return Vec::new();
    }
    vec![inner.trim_matches('"').to_owned()]
}

fn describe_non_json(body: &[u8]) -> String {
    let looks_like_html = body.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'<');
    let kind = if looks_like_html { "an HTML page" } else { "not JSON" };
    format!("body is {kind} ({} bytes)", body.len())
}

/// An integer that may arrive as a JSON number or a numeric string.
pub(crate) fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// A scalar as text (`null`, arrays and objects have none).
pub(crate) fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::klicktipp::ErrorClass;

    fn parse(status: u16, body: &str) -> Result<Reply, KlickTippError> {
        interpret("op", status, None, body.as_bytes())
    }

    fn messages(error: &KlickTippError) -> &[String] {
        match error {
            KlickTippError::Rejected { messages, .. } => messages,
            other => panic!("not a rejection: {other:?}"),
        }
    }

    #[test]
    fn array_of_strings() {
        let error = parse(403, r#"["API access denied."]"#).unwrap_err();
        assert_eq!(messages(&error), ["API access denied."]);
        assert_eq!(error.class(), ErrorClass::Relogin);
        let german = parse(403, r#"["API Zugriff verweigert"]"#).unwrap_err();
        assert_eq!(german.class(), error.class());
    }

    #[test]
    fn bare_json_string() {
        let body = r#""No route found for \"DELETE /api/tag.json\": Method Not Allowed (Allow: GET, POST)""#;
        let error = parse(405, body).unwrap_err();
        assert_eq!(messages(&error).len(), 1);
        assert_eq!(error.class(), ErrorClass::Permanent);
    }

    #[test]
    fn unquoted_bracket_text() {
        let error = parse(401, "[Missing required argument email]").unwrap_err();
        assert_eq!(messages(&error), ["Missing required argument email"]);
    }

    #[test]
    fn business_error_with_code_and_message() {
        let error = parse(406, r#"{"error":10,"code":5,"error_message":"Ungültige E-Mail-Adresse."}"#).unwrap_err();
        assert_eq!(error.error_number(), Some(10));
        assert!(matches!(error, KlickTippError::Rejected { code: Some(5), .. }));
        assert_eq!(messages(&error), ["Ungültige E-Mail-Adresse."]);
        assert_eq!(error.class(), ErrorClass::Permanent);
    }

    #[test]
    fn retryable_business_errors() {
        assert!(parse(406, r#"{"error":6}"#).unwrap_err().is_retryable());
        assert!(parse(406, r#"{"error":"12"}"#).unwrap_err().is_retryable());
        assert!(!parse(406, r#"{"error":5}"#).unwrap_err().is_retryable());
    }

    #[test]
    fn field_error() {
        let body = r#"{"error":8,"field":"Lead Value","name":"fieldLeadValue","field_value":"A","reason":"must be a numeric value"}"#;
        let error = parse(406, body).unwrap_err();
        assert_eq!(error.error_number(), Some(8));
        let field = error.field_error().expect("field detail");
        assert_eq!(field.key.as_deref(), Some("fieldLeadValue"));
        assert_eq!(field.label.as_deref(), Some("Lead Value"));
        assert_eq!(field.value.as_deref(), Some("A"));
        assert_eq!(field.reason.as_deref(), Some("must be a numeric value"));
    }

    #[test]
    fn error_inside_a_200() {
        let error = parse(200, r#"{"error":7}"#).unwrap_err();
        assert_eq!((error.status(), error.error_number()), (Some(200), Some(7)));
        assert_eq!(error.class(), ErrorClass::Permanent);
        assert!(parse(200, r#"{"error":12}"#).unwrap_err().is_retryable());
    }

    #[test]
    fn contact_object_is_not_an_error() {
        let reply = parse(200, r#"{"id":"1","email":"a@b.example","error":null}"#).expect("success");
        assert_eq!(reply.body["id"], "1");
    }

    #[test]
    fn html_from_a_proxy() {
        let page = "<html><body><h1>502 Bad Gateway</h1></body></html>";
        assert!(matches!(parse(502, page), Err(KlickTippError::Server { status: 502, .. })));
        let error = parse(200, page).unwrap_err();
        assert!(matches!(error, KlickTippError::InvalidResponse { status: 200, .. }));
        assert!(error.is_retryable());
        let forbidden = parse(403, page).unwrap_err();
        assert!(messages(&forbidden).is_empty());
    }

    #[test]
    fn empty_bodies() {
        assert!(matches!(parse(500, ""), Err(KlickTippError::Server { status: 500, .. })));
        assert_eq!(parse(200, "").expect("empty success").body, Value::Null);
        assert!(messages(&parse(404, "").unwrap_err()).is_empty());
    }

    #[test]
    fn rate_limited_keeps_retry_after() {
        let error = interpret("op", 429, Some(Duration::from_secs(3)), b"").unwrap_err();
        assert_eq!(error.retry_after(), Some(Duration::from_secs(3)));
        assert!(error.is_retryable());
    }

    #[test]
    fn redirect_is_not_followed() {
        assert!(matches!(parse(301, ""), Err(KlickTippError::InvalidResponse { status: 301, .. })));
    }
}
