//! The contact data the client sends and receives.

use super::redact::contact_hash;
use super::response::{integer, text};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Field values are the domain's: KlickTipp formats (Unix seconds, x100 decimals) are decided there.
pub use crate::domain::FieldValue;

/// `POST /subscriber`: create the contact or update the one with this address.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct UpsertSubscriber {
    pub email: String,
    /// Opt-in process; `None` runs the account's default double opt-in.
    pub listid: Option<u64>,
    /// One tag to apply in the same call.
    pub tagid: Option<u64>,
    /// Field key (`fieldFirstName`, `field12345`) to value.
    pub fields: BTreeMap<String, FieldValue>,
}

impl UpsertSubscriber {
    pub fn new(email: impl Into<String>) -> Self {
        Self { email: email.into(), ..Self::default() }
    }

    /// The JSON body; absent options are left out rather than sent as `null`.
    pub(crate) fn to_body(&self) -> Value {
        let mut body = Map::new();
        body.insert("email".into(), json!(self.email));
        if let Some(listid) = self.listid {
            body.insert("listid".into(), json!(listid));
        }
        if let Some(tagid) = self.tagid {
            body.insert("tagid".into(), json!(tagid));
        }
        // `sms_number` mapped to KlickTipp's own SMS field travels as the subscriber's `smsnumber`.
        let mut fields = self.fields.clone();
        if let Some(sms) = fields.remove(crate::domain::KLICKTIPP_SMS_NUMBER) {
            body.insert("smsnumber".into(), json!(sms));
        }
        if !fields.is_empty() {
            body.insert("fields".into(), json!(fields));
        }
        Value::Object(body)
    }
}

/// Contact data stays out of debug output: the address as a hash, fields by key only.
impl fmt::Debug for UpsertSubscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpsertSubscriber")
            .field("contact", &contact_hash(&self.email))
            .field("listid", &self.listid)
            .field("tagid", &self.tagid)
            .field("fields", &self.fields.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A KlickTipp contact, read leniently: ids may be strings or integers, `tags` may be missing.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Subscriber {
    pub id: String,
    pub email: String,
    /// As KlickTipp spells it, e.g. `Subscribed`, `Opt-In Pending` (casing varies).
    pub status: String,
    /// Tag ids, sorted and without duplicates.
    pub tags: Vec<u64>,
    /// Every `field*` entry with a value, as text.
    pub fields: BTreeMap<String, String>,
}

impl Subscriber {
    /// Parse KlickTipp's contact object; `None` when it has no id (so it is not a contact).
    pub(crate) fn from_contact(value: &Value) -> Option<Self> {
        let object = value.as_object()?;
        let id = object.get("id").and_then(text).filter(|id| !id.is_empty())?;
        let get_text = |key: &str| object.get(key).and_then(text).unwrap_or_default();
        let fields = object
            .iter()
            .filter(|(key, _)| key.starts_with("field"))
            .filter_map(|(key, value)| Some((key.clone(), text(value)?)))
            .collect();
        Some(Self { id, email: get_text("email"), status: get_text("status"), tags: tag_ids(object), fields })
    }
}

/// `tags` when present (`["17","18"]`, `[17]`, `{}` or `[]`); otherwise the keys of
/// `manual_tags` and `smart_tags`, which carry the same ids with timestamps.
fn tag_ids(contact: &Map<String, Value>) -> Vec<u64> {
    let ids_in = |value: &Value| -> Vec<u64> {
        match value {
            Value::Array(items) => items.iter().filter_map(id_number).collect(),
            Value::Object(map) => map.keys().filter_map(|key| key.trim().parse().ok()).collect(),
            _ => Vec::new(),
        }
    };
    let ids: BTreeSet<u64> = match contact.get("tags") {
        Some(tags) => ids_in(tags).into_iter().collect(),
        None => ["manual_tags", "smart_tags"].iter().filter_map(|key| contact.get(*key)).flat_map(ids_in).collect(),
    };
    ids.into_iter().collect()
}

fn id_number(value: &Value) -> Option<u64> {
    integer(value).and_then(|id| u64::try_from(id).ok())
}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("id", &self.id)
            .field("contact", &contact_hash(&self.email))
            .field("status", &self.status)
            .field("tags", &self.tags)
            .field("fields", &self.fields.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_values_serialize_untagged() {
        let fields = BTreeMap::from([
            ("fieldFirstName".to_owned(), FieldValue::from("Erika")),
            ("field42".to_owned(), FieldValue::from(1_715_603_400)),
        ]);
        let encoded = serde_json::to_string(&fields).expect("serializes");
        assert_eq!(encoded, r#"{"field42":1715603400,"fieldFirstName":"Erika"}"#);
        let decoded: BTreeMap<String, FieldValue> = serde_json::from_str(&encoded).expect("deserializes");
        assert_eq!(decoded, fields);
    }

    #[test]
    fn upsert_body_leaves_out_what_is_not_set() {
        let mut request = UpsertSubscriber::new("a@b.example");
        assert_eq!(request.to_body(), json!({"email": "a@b.example"}));
        request.listid = Some(3);
        request.tagid = Some(17);
        request.fields.insert("fieldLeadValue".into(), FieldValue::Number(1999));
        assert_eq!(
            request.to_body(),
            json!({"email": "a@b.example", "listid": 3, "tagid": 17, "fields": {"fieldLeadValue": 1999}})
        );
        assert!(!format!("{request:?}").contains("a@b.example"));
    }

    #[test]
    fn parses_the_documented_contact_object() {
        let contact = json!({"id":"155988456","listid":"368370","optin":"28.12.2024 22:52:09",
            "email":"a@b.example","status":"Opt-In Pending","bounce":"Not Bounced","sms_phone":null,
            "fieldFirstName":"Alex","fieldLastName":"","field42":1715603400,"fieldBirthday":null,
            "tags":["17","18"],"manual_tags":{"21":"1759753677"},"smart_tags":{"17":"1758821945"}});
        let subscriber = Subscriber::from_contact(&contact).expect("a contact");
        assert_eq!(subscriber.id, "155988456");
        assert_eq!(subscriber.email, "a@b.example");
        assert_eq!(subscriber.status, "Opt-In Pending");
        assert_eq!(subscriber.tags, [17, 18]);
        assert_eq!(subscriber.fields["fieldFirstName"], "Alex");
        assert_eq!(subscriber.fields["field42"], "1715603400");
        assert!(!subscriber.fields.contains_key("fieldBirthday"));
        assert!(!format!("{subscriber:?}").contains("a@b.example"));
    }

    #[test]
    fn lenient_ids_and_tags() {
        let numeric = Subscriber::from_contact(&json!({"id": 7, "email": "a@b.example", "tags": [3, "1", 3]}));
        assert_eq!(numeric.map(|s| (s.id, s.tags)), Some(("7".into(), vec![1, 3])));
        let empty_map = Subscriber::from_contact(&json!({"id": "7", "tags": {}})).expect("a contact");
        assert!(empty_map.tags.is_empty());
        let from_maps = Subscriber::from_contact(&json!({"id": "7", "manual_tags": {"21": "1"}, "smart_tags": []}))
            .expect("contact");
        assert_eq!(from_maps.tags, [21]);
        assert!(Subscriber::from_contact(&json!({"email": "a@b.example"})).is_none());
        assert!(Subscriber::from_contact(&json!([true])).is_none());
    }
}
