//! Data field values: type checks as in the reference (section 4). Both JSON
//! numbers and strings are accepted; values are stored as strings.

use serde_json::Value;

use crate::config::{FieldDef, FieldType};
use crate::knobs::Language;
use crate::messages::{Reason, reason_text};

/// The first value that failed, with what KlickTipp reports about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldViolation {
    pub key: String,
    pub label: String,
    pub value: String,
    pub reason: &'static str,
}

/// Validates a `fields` argument (object, or `[]`/absent for none) and returns
/// `(key, value)` pairs in request order. An empty string clears a field.
pub(crate) fn validate_fields(
    defs: &[FieldDef],
    fields: Option<&Value>,
    language: Language,
) -> Result<Vec<(String, String)>, FieldViolation> {
    let entries = match fields {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) if items.is_empty() => return Ok(Vec::new()),
        Some(Value::Object(map)) => map,
        Some(other) => {
            return Err(FieldViolation {
                key: "fields".to_owned(),
                label: "fields".to_owned(),
                value: other.to_string(),
                reason: reason_text(Reason::NotScalar, language),
            });
        }
    };
    let mut accepted = Vec::with_capacity(entries.len());
    for (key, raw) in entries {
        let violation = |label: &str, value: String, reason: Reason| FieldViolation {
            key: key.clone(),
            label: label.to_owned(),
            value,
            reason: reason_text(reason, language),
        };
        let Some(def) = defs.iter().find(|def| &def.key == key) else {
            return Err(violation(key, scalar_text(raw), Reason::UnknownField));
        };
        let label = def.label(language);
        let value = match raw {
            Value::Null => String::new(),
            Value::String(text) => text.clone(),
            Value::Number(number) => number.to_string(),
            other => return Err(violation(label, other.to_string(), Reason::NotScalar)),
        };
        if !value.is_empty()
            && let Err(reason) = check_value(def.field_type, &value)
        {
            return Err(violation(label, value, reason));
        }
        accepted.push((key.clone(), value));
    }
    Ok(accepted)
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn check_value(field_type: FieldType, value: &str) -> Result<(), Reason> {
    match field_type {
        FieldType::Line if value.contains(['\n', '\r']) => Err(Reason::SingleLine),
        FieldType::Line | FieldType::Paragraph | FieldType::Html => Ok(()),
        FieldType::Email if value.contains('@') => Ok(()),
        FieldType::Email => Err(Reason::Email),
        FieldType::Number if is_integer(value) => Ok(()),
        FieldType::Number => Err(Reason::Numeric),
        FieldType::Decimal if is_integer(value) => Ok(()),
        FieldType::Decimal => Err(Reason::Decimal),
        FieldType::Url => {
            let lower = value.to_ascii_lowercase();
            if lower.starts_with("http://") || lower.starts_with("https://") { Ok(()) } else { Err(Reason::Url) }
        }
        FieldType::Date | FieldType::DateTime if is_digits(value) => Ok(()),
        FieldType::Date | FieldType::DateTime => Err(Reason::Timestamp),
        FieldType::Time => match value.parse::<u32>() {
            Ok(seconds) if is_digits(value) && seconds < 86_400 => Ok(()),
            _ => Err(Reason::TimeOfDay),
        },
    }
}

fn is_digits(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit())
}

fn is_integer(value: &str) -> bool {
    is_digits(value.strip_prefix('-').unwrap_or(value))
}

/// Loose address check: one `@`, a non-empty local part, a dotted domain, no spaces.
pub(crate) fn is_valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    let labels: Vec<&str> = domain.split('.').collect();
    !local.is_empty()
        && local.len() <= 64
        && email.len() <= 254
        && !domain.contains('@')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && labels.len() >= 2
        && labels.iter().all(|label| !label.is_empty())
        && labels.last().is_some_and(|tld| tld.len() >= 2)
}

/// `+49 171 ...` / `0049...` -> `0049171...`; `None` when not an international number.
pub(crate) fn normalize_sms_number(raw: &str) -> Option<String> {
    let compact: String = raw.chars().filter(|c| !matches!(c, ' ' | '-' | '/' | '(' | ')' | '.')).collect();
    let digits = match compact.strip_prefix('+') {
        Some(rest) => format!("00{rest}"),
        None => compact,
    };
    let valid =
        digits.starts_with("00") && (9..=17).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    valid.then_some(digits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FieldSpec, field_defs};
    use serde_json::json;

    fn defs() -> Vec<FieldDef> {
        field_defs(&[
            FieldSpec::new("field1", "Start", FieldType::DateTime),
            FieldSpec::new("field2", "Join", FieldType::Url),
            FieldSpec::new("field3", "Minutes", FieldType::Number),
            FieldSpec::new("field4", "At", FieldType::Time),
            FieldSpec::new("field5", "Amount", FieldType::Decimal),
            FieldSpec::new("field6", "Mail", FieldType::Email),
        ])
    }

    fn check(fields: Value) -> Result<Vec<(String, String)>, FieldViolation> {
        validate_fields(&defs(), Some(&fields), Language::En)
    }

    #[test]
    fn accepts_numbers_and_strings_and_stores_strings() {
        let ok = check(json!({"field1": 1715603400, "field3": "-4", "field4": 86399, "field5": "1999", "field2": "https://x.example", "field6":"a@b", "fieldFirstName": "Alex"}))
            .expect("valid");
        assert!(ok.contains(&("field1".to_owned(), "1715603400".to_owned())));
        assert!(ok.contains(&("field4".to_owned(), "86399".to_owned())));
    }

    #[test]
    fn rejects_wrong_formats_with_label_and_key() {
        let err = check(json!({"fieldBirthday": "24.12.1990"})).expect_err("date string");
        assert_eq!(
            (err.key.as_str(), err.label.as_str(), err.value.as_str()),
            ("fieldBirthday", "Birthday", "24.12.1990")
        );
        for bad in [
            json!({"field1": 1715603400123.5}),
            json!({"field2": "x.example"}),
            json!({"field3": 1.5}),
            json!({"field4": 86400}),
            json!({"field5": "19.99"}),
            json!({"field6": "nobody"}),
            json!({"fieldFirstName": "a\nb"}),
            json!({"fieldNope": "x"}),
            json!({"fieldFirstName": ["x"]}),
        ] {
            assert!(check(bad.clone()).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn email_and_sms_rules() {
        assert!(is_valid_email("a@b.example"));
        assert!(!is_valid_email("a@b"));
        assert!(!is_valid_email("a b@c.de"));
        assert!(!is_valid_email("@c.de"));
        assert_eq!(normalize_sms_number("+49 171 1234567").as_deref(), Some("00491711234567"));
        assert_eq!(normalize_sms_number("0171 1234567"), None);
    }
}
