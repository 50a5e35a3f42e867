//! Field problems: a data field value KlickTipp refused (DESIGN 6). The contact and its tags are
//! applied without that field; the problem is kept beside the contact so a user can see it, and
//! the same value is not sent again until it changes.

use super::contact::DesiredContact;
use super::event::EventId;
use super::fields::FieldValue;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// One refused field value. Never holds the value itself (contact data), only its fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldProblem {
    /// KlickTipp's error number (8: field validation failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_number: Option<i64>,
    /// KlickTipp's reason, redacted (no addresses).
    pub reason: String,
    /// The event whose application found the problem.
    pub event_id: EventId,
    /// [`value_fingerprint`] of the refused value.
    pub value_fingerprint: String,
}

impl FieldProblem {
    /// True when `value` is the value KlickTipp refused.
    pub fn refused(&self, value: &FieldValue) -> bool {
        self.value_fingerprint == value_fingerprint(value)
    }
}

/// Field key -> its problem.
pub type FieldProblems = BTreeMap<String, FieldProblem>;

/// A short, stable fingerprint of a field value (not reversible in practice, safe to store).
pub fn value_fingerprint(value: &FieldValue) -> String {
    let text = match value {
        FieldValue::Number(number) => format!("n:{number}"),
        FieldValue::Text(text) => format!("t:{text}"),
    };
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
}

/// Leaves out of `desired` every field whose value KlickTipp already refused: it is sent again
/// only once it changes.
pub fn withhold_refused(desired: &mut DesiredContact, problems: &FieldProblems) {
    desired.fields.retain(|key, value| !problems.get(key).is_some_and(|problem| problem.refused(value)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(value: &FieldValue) -> FieldProblem {
        FieldProblem {
            error_number: Some(8),
            reason: "must be a numeric value".into(),
            event_id: EventId::from_sender("e1").expect("valid id"),
            value_fingerprint: value_fingerprint(value),
        }
    }

    #[test]
    fn a_refused_value_is_withheld_until_it_changes() {
        let refused = FieldValue::Text("Spring Launch".into());
        let problems = FieldProblems::from([("field101".to_owned(), problem(&refused))]);
        let mut desired = DesiredContact::default();
        desired.fields.insert("field101".into(), refused.clone());
        desired.fields.insert("fieldFirstName".into(), FieldValue::Text("Erika".into()));
        withhold_refused(&mut desired, &problems);
        assert_eq!(desired.fields.keys().collect::<Vec<_>>(), ["fieldFirstName"]);

        let mut changed = DesiredContact::default();
        changed.fields.insert("field101".into(), FieldValue::Text("Autumn Talk".into()));
        withhold_refused(&mut changed, &problems);
        assert_eq!(changed.fields.len(), 1, "a changed value is sent again");
    }

    #[test]
    fn fingerprints_tell_numbers_from_text() {
        assert_ne!(value_fingerprint(&FieldValue::Number(1)), value_fingerprint(&FieldValue::Text("1".into())));
        assert_eq!(value_fingerprint(&FieldValue::Number(1)).len(), 16);
    }
}
