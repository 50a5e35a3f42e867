//! The claim rule every event-log adapter decides by (memory, SQLite, DynamoDB): what a claim
//! does given the stored record. Adapters differ only in how they read the record and make the
//! write conditional; the decision is this one function.

use crate::ports::{Claim, EventRecord, EventStatus};
use chrono::{DateTime, Utc};

/// `Claimed` means: write a new in-progress record (with the claimant's token) over whatever is
/// stored. An expired record counts as absent; a lapsed lease on the same payload is taken over.
pub fn decide_claim(existing: Option<&EventRecord>, fingerprint: &str, now: DateTime<Utc>) -> Claim {
    match existing {
        None => Claim::Claimed,
        Some(record) if record.expires_at <= now => Claim::Claimed,
        Some(record) if record.fingerprint != fingerprint => Claim::PayloadMismatch,
        Some(EventRecord { status: EventStatus::Completed(outcome), .. }) => Claim::Completed(outcome.clone()),
        Some(EventRecord { status: EventStatus::InProgress { lease_until }, .. }) if *lease_until > now => Claim::Busy,
        Some(_) => Claim::Claimed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::EventId;
    use crate::ports::FinalOutcome;

    fn record(status: EventStatus, expires_in: i64) -> EventRecord {
        let now = DateTime::<Utc>::UNIX_EPOCH;
        EventRecord {
            event_id: EventId::from_sender("evt").expect("id"),
            fingerprint: "fp".into(),
            status,
            updated_at: now,
            expires_at: now + chrono::Duration::seconds(expires_in),
        }
    }

    #[test]
    fn the_rule_covers_every_stored_state() {
        let now = DateTime::<Utc>::UNIX_EPOCH;
        let live = EventStatus::InProgress { lease_until: now + chrono::Duration::seconds(1) };
        let lapsed = EventStatus::InProgress { lease_until: now };
        let done = EventStatus::Completed(FinalOutcome::Applied);
        assert_eq!(decide_claim(None, "fp", now), Claim::Claimed);
        assert_eq!(decide_claim(Some(&record(live.clone(), 60)), "fp", now), Claim::Busy);
        assert_eq!(decide_claim(Some(&record(lapsed, 60)), "fp", now), Claim::Claimed);
        assert_eq!(decide_claim(Some(&record(done.clone(), 60)), "fp", now), Claim::Completed(FinalOutcome::Applied));
        assert_eq!(decide_claim(Some(&record(done, 0)), "other", now), Claim::Claimed, "expired counts as absent");
        assert_eq!(decide_claim(Some(&record(live, 60)), "other", now), Claim::PayloadMismatch);
    }
}
