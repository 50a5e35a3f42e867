//! After the drain: did every accepted event end in exactly one outcome, and does KlickTipp show
//! what the oracle says for every contact?
//!
//! The oracle's input per contact (precisely):
//! - a contact whose address KlickTipp refuses (`reject_emails`) must be absent from KlickTipp,
//!   and each of its events must be `rejected` (or dead-lettered);
//! - any other contact must show exactly the oracle's tags and fields for the documents the
//!   queue accepted for it, dead-lettered events left out (they were given up on, and are
//!   reported on their own); a contact with no such event must be absent.

use crate::oracle::{self, ExpectedContact};
use klicktipp_sim::Simulator;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use webinar_bridge::adapters::memory::DeadLetter;
use webinar_bridge::domain::{EventId, WebinarEvent};
use webinar_bridge::ports::{EventLog, EventStatus, FinalOutcome};

/// Event-log reads in flight at once (moto answers one by one; SQLite does not mind).
const READ_CONCURRENCY: usize = 16;
/// KlickTipp's error number for an address it refuses (the simulator's `reject_emails`).
const ADDRESS_REFUSED: i64 = 5;
/// Mismatches described in the report, at most.
const EXAMPLES: usize = 5;

/// The final outcome of each accepted event id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// With KlickTipp's error number.
    Rejected(Option<i64>),
    Skipped,
    DeadLettered,
    /// Completed and dead-lettered as well: two outcomes.
    Twice,
    /// Neither completed nor dead-lettered (missing, or still in progress).
    Lost,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct OutcomeCounts {
    pub applied: usize,
    pub rejected: usize,
    pub skipped: usize,
    pub dead_lettered: usize,
    pub twice: usize,
    pub lost: usize,
}

/// Reads the outcome of every accepted id.
pub async fn outcomes(
    log: Arc<dyn EventLog>,
    accepted: &BTreeSet<String>,
    dead_letters: &[DeadLetter],
) -> anyhow::Result<BTreeMap<String, Outcome>> {
    let dead: BTreeSet<String> = dead_letters.iter().filter_map(|letter| event_id_of(&letter.body)).collect();
    let mut completed: BTreeMap<String, Option<FinalOutcome>> = BTreeMap::new();
    let ids: Vec<String> = accepted.iter().cloned().collect();
    for chunk in ids.chunks(READ_CONCURRENCY) {
        let mut reads = tokio::task::JoinSet::new();
        for id in chunk {
            let (log, id) = (Arc::clone(&log), id.clone());
            reads.spawn(async move {
                let event_id: EventId = serde_json::from_value(serde_json::Value::String(id.clone()))?;
                let record = log.get(&event_id).await?;
                let outcome = record.and_then(|record| match record.status {
                    EventStatus::Completed(outcome) => Some(outcome),
                    EventStatus::InProgress { .. } => None,
                });
                anyhow::Ok((id, outcome))
            });
        }
        while let Some(read) = reads.join_next().await {
            let (id, outcome) = read??;
            completed.insert(id, outcome);
        }
    }
    Ok(completed
        .into_iter()
        .map(|(id, outcome)| {
            let dead_lettered = dead.contains(&id);
            let outcome = match (outcome, dead_lettered) {
                (Some(_), true) => Outcome::Twice,
                (Some(FinalOutcome::Applied), false) => Outcome::Applied,
                (Some(FinalOutcome::Rejected(reason)), false) => Outcome::Rejected(reason.error_number),
                (Some(FinalOutcome::Skipped { .. }), false) => Outcome::Skipped,
                (None, true) => Outcome::DeadLettered,
                (None, false) => Outcome::Lost,
            };
            (id, outcome)
        })
        .collect())
}

pub fn count(outcomes: &BTreeMap<String, Outcome>) -> OutcomeCounts {
    let mut counts = OutcomeCounts::default();
    for outcome in outcomes.values() {
        let counter = match outcome {
            Outcome::Applied => &mut counts.applied,
            Outcome::Rejected(_) => &mut counts.rejected,
            Outcome::Skipped => &mut counts.skipped,
            Outcome::DeadLettered => &mut counts.dead_lettered,
            Outcome::Twice => &mut counts.twice,
            Outcome::Lost => &mut counts.lost,
        };
        *counter += 1;
    }
    counts
}

fn event_id_of(body: &str) -> Option<String> {
    let document: serde_json::Value = serde_json::from_str(body).ok()?;
    document.get("event_id")?.as_str().map(str::to_owned)
}

/// One contact whose KlickTipp state is not the oracle's.
#[derive(Debug, Clone, Serialize)]
pub struct Mismatch {
    /// Short hash, not the address: reports end up in CI logs.
    pub contact: String,
    pub expected: Option<ExpectedContact>,
    pub actual: Option<ExpectedContact>,
    pub note: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Convergence {
    pub contacts_checked: usize,
    pub mismatched: usize,
    /// Events rejected other than for a refused address (KlickTipp error 5): transient faults
    /// taken for permanent ones.
    pub unexpected_rejections: usize,
    pub examples: Vec<Mismatch>,
}

/// Compares KlickTipp's final state with the oracle for every contact either side knows.
pub fn convergence(
    simulator: &Simulator,
    documents: &BTreeMap<String, WebinarEvent>,
    outcomes: &BTreeMap<String, Outcome>,
    refused_addresses: &BTreeSet<String>,
) -> Convergence {
    let mut events_by_email: BTreeMap<String, Vec<(&WebinarEvent, Outcome)>> = BTreeMap::new();
    for (id, outcome) in outcomes {
        if let Some(event) = documents.get(id) {
            events_by_email.entry(event.contact.email.as_str().to_owned()).or_default().push((event, *outcome));
        }
    }
    let actual: BTreeMap<String, ExpectedContact> = simulator
        .contacts()
        .into_iter()
        .map(|contact| {
            let state = ExpectedContact {
                tags: contact.tags.into_iter().collect(),
                fields: contact.fields.into_iter().collect(),
            };
            (contact.email.trim().to_lowercase(), state)
        })
        .collect();
    let emails: BTreeSet<&String> = events_by_email.keys().chain(actual.keys()).collect();
    let mut report = Convergence { contacts_checked: emails.len(), ..Convergence::default() };
    report.unexpected_rejections = events_by_email
        .iter()
        .flat_map(|(email, events)| events.iter().map(move |(_, outcome)| (email, *outcome)))
        .filter(|(email, outcome)| match outcome {
            Outcome::Rejected(error_number) => {
                !refused_addresses.contains(*email) || *error_number != Some(ADDRESS_REFUSED)
            }
            _ => false,
        })
        .count();
    for email in emails {
        let events = events_by_email.get(email).map(Vec::as_slice).unwrap_or_default();
        let actual = actual.get(email);
        let problem = if refused_addresses.contains(email) {
            judge_refused(events, actual)
        } else {
            let applied: Vec<WebinarEvent> = events
                .iter()
                .filter(|(_, outcome)| *outcome != Outcome::DeadLettered)
                .map(|(event, _)| (*event).clone())
                .collect();
            let expected = oracle::expected_contacts(&applied).remove(email.as_str());
            judge(expected, actual, events)
        };
        if let Some(mismatch) = problem {
            report.mismatched += 1;
            if report.examples.len() < EXAMPLES {
                report.examples.push(Mismatch { contact: short_hash(email), ..mismatch });
            }
        }
    }
    report
}

fn judge_refused(events: &[(&WebinarEvent, Outcome)], actual: Option<&ExpectedContact>) -> Option<Mismatch> {
    let not_refused =
        events.iter().filter(|(_, outcome)| !matches!(outcome, Outcome::Rejected(_) | Outcome::DeadLettered)).count();
    let note = match (actual, not_refused) {
        (None, 0) => return None,
        (Some(_), _) => "KlickTipp refuses this address, yet it holds the contact".to_owned(),
        (None, n) => format!("{n} event(s) of a refused address were not recorded as rejected"),
    };
    Some(Mismatch { contact: String::new(), expected: None, actual: actual.cloned(), note })
}

fn judge(
    expected: Option<ExpectedContact>,
    actual: Option<&ExpectedContact>,
    events: &[(&WebinarEvent, Outcome)],
) -> Option<Mismatch> {
    if expected.as_ref() == actual {
        return None;
    }
    let outcomes: BTreeSet<String> = events.iter().map(|(_, outcome)| format!("{outcome:?}")).collect();
    let note = format!("{} event(s); outcomes {outcomes:?}", events.len());
    Some(Mismatch { contact: String::new(), expected, actual: actual.cloned(), note })
}

fn short_hash(email: &str) -> String {
    webinar_bridge::domain::Email::parse(email)
        .map(|email| email.short_hash())
        .unwrap_or_else(|_| "unparsable".to_owned())
}
