//! JSON shapes of KlickTipp answers: ids are strings in maps and objects,
//! every field is a string, dates are `dd.mm.yyyy hh:mm:ss`.

use serde_json::{Map, Value, json};

use crate::clock::format_datetime;
use crate::state::{Contact, ContactStatus, SimState};

/// A map answer; `[]` instead of `{}` when empty and the PHP-quirk knob is on.
pub(crate) fn id_map<I>(entries: I, empty_as_array: bool) -> Value
where
    I: IntoIterator<Item = (String, Value)>,
{
    let map: Map<String, Value> = entries.into_iter().collect();
    if map.is_empty() && empty_as_array { Value::Array(Vec::new()) } else { Value::Object(map) }
}

fn timestamps(entries: &std::collections::BTreeMap<u64, u64>, empty_as_array: bool) -> Value {
    id_map(entries.iter().map(|(id, at)| (id.to_string(), Value::String(at.to_string()))), empty_as_array)
}

/// The full contact object of `GET /subscriber/{id}` and `POST /subscriber`.
pub(crate) fn contact_object(state: &SimState, contact: &Contact) -> Value {
    let empty_as_array = state.knobs.empty_maps_as_arrays;
    let by_api = "0.0.0.0 - By API Request";
    let subscribed = contact.subscribed_at.map(format_datetime);
    let mut object = json!({
        "id": contact.id.to_string(),
        "listid": contact.listid.to_string(),
        "optin": format_datetime(contact.optin_at),
        "optin_ip": by_api,
        "email": contact.email,
        "status": contact.status.label(),
        "bounce": "Not Bounced",
        "date": subscribed.clone().unwrap_or_default(),
        "ip": if subscribed.is_some() { by_api } else { "" },
        "unsubscription": contact.unsubscribed_at.map(format_datetime).unwrap_or_default(),
        "unsubscription_ip": if contact.status == ContactStatus::Unsubscribed { by_api } else { "" },
        "referrer": "",
        "sms_phone": contact.sms,
        "sms_status": contact.sms.as_ref().map(|_| "Subscribed"),
        "sms_bounce": contact.sms.as_ref().map(|_| "Not Bounced"),
        "sms_date": "",
        "sms_unsubscription": "",
        "sms_referrer": "",
    });
    if let Value::Object(map) = &mut object {
        for def in &state.fields {
            let value = contact.fields.get(&def.key).cloned().unwrap_or_default();
            map.insert(def.key.clone(), Value::String(value));
        }
        let all_tags: Vec<Value> = contact
            .smart_tags
            .keys()
            .chain(contact.manual_tags.keys())
            .map(|id| Value::String(id.to_string()))
            .collect();
        map.insert("tags".to_owned(), Value::Array(all_tags));
        map.insert("manual_tags".to_owned(), timestamps(&contact.manual_tags, empty_as_array));
        map.insert("smart_tags".to_owned(), timestamps(&contact.smart_tags, empty_as_array));
        for engagement in [
            "campaigns_started",
            "campaigns_finished",
            "notification_emails_sent",
            "notification_emails_opened",
            "notification_emails_clicked",
            "emails_sent",
            "emails_opened",
            "emails_clicked",
        ] {
            map.insert(engagement.to_owned(), id_map([], empty_as_array));
        }
    }
    object
}
