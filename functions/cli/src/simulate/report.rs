//! The one JSON document `simulate` prints (DESIGN 9). Nothing in it depends on the wall clock.

use klicktipp_sim::{ContactView, Simulator};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use webinar_bridge::ingest::IngestResponse;
use webinar_bridge::worker::BatchSummary;

#[derive(Debug, Serialize)]
pub struct Report {
    pub responses: Vec<ResponseLine>,
    pub events: EventCounts,
    pub klicktipp: KlickTippReport,
    /// With `--platform` only (DESIGN 11).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<super::platform::PlatformReport>,
}

#[derive(Debug, Serialize)]
pub struct ResponseLine {
    pub line: usize,
    pub status: u16,
    pub body: Value,
}

/// Invariant: `accepted = applied + duplicates + rejected + skipped + dead_lettered`.
#[derive(Debug, Default, Serialize)]
pub struct EventCounts {
    /// Event ids in accepted responses, repeats included.
    pub accepted: usize,
    pub applied: usize,
    /// Accepted again under an id already accepted: dropped by the queue's deduplication, found
    /// completed in the event log, or flagged for a different payload under a known id.
    pub duplicates: usize,
    /// Refused by KlickTipp for good.
    pub rejected: usize,
    pub skipped: usize,
    pub dead_lettered: usize,
}

impl EventCounts {
    pub fn new(accepted: usize, dropped_by_queue: usize, consumed: &BatchSummary, dead_lettered: usize) -> Self {
        Self {
            accepted,
            applied: consumed.applied,
            duplicates: dropped_by_queue + consumed.duplicates + consumed.flagged,
            // An unreadable message can only come from a corrupt queue; it is refused for good too.
            rejected: consumed.rejected + consumed.unreadable,
            skipped: consumed.skipped,
            dead_lettered,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct KlickTippReport {
    pub calls: u64,
    pub calls_by_endpoint: BTreeMap<String, u64>,
    pub contacts: Vec<ContactLine>,
}

impl KlickTippReport {
    pub fn of(simulator: &Simulator) -> Self {
        let mut contacts: Vec<ContactLine> = simulator.contacts().into_iter().map(ContactLine::from).collect();
        contacts.sort_by(|a, b| a.email.cmp(&b.email));
        Self { calls: simulator.total_calls(), calls_by_endpoint: simulator.calls_by_endpoint(), contacts }
    }
}

#[derive(Debug, Serialize)]
pub struct ContactLine {
    pub email: String,
    pub status: String,
    pub tags: Vec<String>,
    pub fields: BTreeMap<String, String>,
}

impl From<ContactView> for ContactLine {
    fn from(contact: ContactView) -> Self {
        let mut tags = contact.tags;
        tags.sort();
        Self { email: contact.email, status: contact.status, tags, fields: contact.fields }
    }
}

/// How many events an answer accepted: the ids of `{"status":"accepted"}`, else none.
pub fn accepted_events(response: &IngestResponse) -> usize {
    let accepted = response.status == 200 && response.body.get("status").and_then(Value::as_str) == Some("accepted");
    if !accepted {
        return 0;
    }
    match response.body.get("event_ids").and_then(Value::as_array) {
        Some(ids) => ids.len(),
        None => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_every_id_of_an_accepted_answer() {
        let one = IngestResponse { status: 200, body: json!({"status": "accepted", "event_id": "a"}) };
        let two = IngestResponse {
            status: 200,
            body: json!({"status": "accepted", "event_id": "a", "event_ids": ["a", "b"]}),
        };
        let ignored = IngestResponse { status: 200, body: json!({"status": "ignored"}) };
        let refused = IngestResponse { status: 401, body: json!({"error": "invalid_secret"}) };
        assert_eq!([&one, &two, &ignored, &refused].map(accepted_events), [1, 2, 0, 0]);
    }
}
