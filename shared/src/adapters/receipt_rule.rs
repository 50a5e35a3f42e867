//! The receipt rule every receipt log decides by (memory, SQLite, DynamoDB): what an ingest
//! receipt for an event id does given the stored record. Adapters differ only in how they read
//! the record and make the write conditional; the decision and the records written are these
//! functions.

use crate::domain::EventId;
use crate::ports::{Receipt, ReceiptRecord};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// The rule every receipt log follows: no live record means new; a live one with the same
/// fingerprint is a redelivery; with another fingerprint a refused reuse.
pub fn decide_receipt(existing: Option<&ReceiptRecord>, fingerprint: &str, now: DateTime<Utc>) -> Receipt {
    match existing {
        None => Receipt::New,
        Some(record) if record.expires_at <= now => Receipt::New,
        Some(record) if record.fingerprint == fingerprint => Receipt::SamePayload,
        Some(record) => Receipt::DifferentPayload { first_seen: record.first_seen },
    }
}

/// A fresh receipt for `event_id`.
pub fn new_receipt(event_id: &EventId, fingerprint: &str, now: DateTime<Utc>, retention: Duration) -> ReceiptRecord {
    ReceiptRecord {
        event_id: event_id.clone(),
        fingerprint: fingerprint.to_owned(),
        first_seen: now,
        expires_at: expires_at(now, retention),
        rejected_reuses: 0,
        last_rejected_at: None,
        last_rejected_fingerprint: None,
    }
}

/// `record` with one more refused reuse of `fingerprint` at `now`.
pub fn with_rejected_reuse(record: &ReceiptRecord, fingerprint: &str, now: DateTime<Utc>) -> ReceiptRecord {
    ReceiptRecord {
        rejected_reuses: record.rejected_reuses.saturating_add(1),
        last_rejected_at: Some(now),
        last_rejected_fingerprint: Some(fingerprint.to_owned()),
        ..record.clone()
    }
}

/// `now + retention`, saturating at the latest time there is.
fn expires_at(now: DateTime<Utc>, retention: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(retention)
        .ok()
        .and_then(|delta| now.checked_add_signed(delta))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_receipt_decides_redelivery_or_refused_reuse_and_an_expired_one_counts_as_absent() {
        let now: DateTime<Utc> = "2026-03-01T10:00:00Z".parse().expect("a time");
        let id = EventId::from_sender("generic:a:1").expect("a valid id");
        let hour = Duration::from_secs(3600);
        assert_eq!(decide_receipt(None, "fp", now), Receipt::New);
        let record = new_receipt(&id, "fp", now, hour);
        assert_eq!(record.expires_at, now + chrono::Duration::hours(1));
        assert_eq!(decide_receipt(Some(&record), "fp", now), Receipt::SamePayload);
        assert_eq!(decide_receipt(Some(&record), "other", now), Receipt::DifferentPayload { first_seen: now });
        assert_eq!(decide_receipt(Some(&record), "other", record.expires_at), Receipt::New);
        let refused = with_rejected_reuse(&with_rejected_reuse(&record, "a", now), "b", now);
        assert_eq!((refused.rejected_reuses, refused.last_rejected_fingerprint.as_deref()), (2, Some("b")));
        assert_eq!((refused.first_seen, &refused.fingerprint), (now, &record.fingerprint), "the first payload stays");
    }
}
