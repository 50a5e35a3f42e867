//! Duplicate and redundant effects, read from the simulator's request log and final state.
//!
//! The log is replayed in order, applying every call that KlickTipp answered with a 2xx (a
//! timed-out call is logged with its real answer: its effect happened). One caveat: a 200 whose
//! body is `{"error":12}` had no effect but is logged as 200; the replay counts it as applied,
//! which can only hide an "untag of a tag never set", never invent one.
//!
//! An untag of a tag the bridge once tried to set on that contact, but which never took effect,
//! is the bridge cleaning up a tag whose fate it could not know (the call failed or its answer
//! was lost): redundant, not a duplicate. Only an untag of a tag it never even tried to set
//! counts as a duplicate effect.

use klicktipp_sim::{LoggedRequest, Simulator};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Effects that happened more often than the events call for: each one fails the soak.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DuplicateEffects {
    /// Tag names the account holds more than once.
    pub tags_created_twice: BTreeSet<String>,
    /// Addresses held by more than one contact.
    pub duplicate_contacts: BTreeSet<String>,
    /// `POST /subscriber/untag` of a tag the bridge never tried to set on that contact.
    pub untags_never_set: usize,
    /// For each name created twice: its `POST /tag` calls and the `GET /tag` calls between
    /// them, as "at_ms endpoint status", to show how it came about.
    pub tag_creation_trails: BTreeMap<String, Vec<String>>,
}

/// Names whose `POST /tag` was answered 200 more than once. Not a duplicate effect by itself:
/// a 200 carrying `{"error":12}` created nothing, and the client then looks the name up and
/// posts again. The account's tags decide (`tags_created_twice`).
pub fn creations_answered_200_twice(simulator: &Simulator) -> usize {
    let mut answered: BTreeMap<String, usize> = BTreeMap::new();
    for request in simulator.request_log() {
        if request.endpoint == "POST /tag"
            && request.status == 200
            && let Some(name) = request.body.get("name").and_then(Value::as_str)
        {
            *answered.entry(name.to_owned()).or_default() += 1;
        }
    }
    answered.values().filter(|count| **count > 1).count()
}

impl DuplicateEffects {
    pub fn total(&self) -> usize {
        self.tags_created_twice.len() + self.duplicate_contacts.len() + self.untags_never_set
    }
}

/// Calls that changed nothing: expected after an ambiguous timeout or a crash, reported only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RedundantCalls {
    /// A tag call whose tags were all already on the contact.
    pub tag: usize,
    /// An untag of a tag the contact had but no longer has, or that a failed call tried to set.
    pub untag: usize,
}

impl RedundantCalls {
    pub fn total(&self) -> usize {
        self.tag + self.untag
    }
}

pub fn examine(simulator: &Simulator) -> (DuplicateEffects, RedundantCalls) {
    let log = simulator.request_log();
    let mut replay = Replay::default();
    for request in &log {
        replay.apply(request);
    }
    let mut duplicates = DuplicateEffects { untags_never_set: replay.untags_never_set, ..DuplicateEffects::default() };
    let mut ids_per_name: BTreeMap<String, usize> = BTreeMap::new();
    for name in simulator.tags().into_values() {
        *ids_per_name.entry(name).or_default() += 1;
    }
    duplicates.tags_created_twice.extend(ids_per_name.into_iter().filter(|(_, ids)| *ids > 1).map(|(name, _)| name));
    duplicates.tag_creation_trails =
        duplicates.tags_created_twice.iter().map(|name| (name.clone(), creation_trail(&log, name))).collect();
    let mut seen = BTreeSet::new();
    for contact in simulator.contacts() {
        let email = contact.email.trim().to_lowercase();
        if !seen.insert(email.clone()) {
            duplicates.duplicate_contacts.insert(email);
        }
    }
    (duplicates, replay.redundant)
}

/// The calls that created `name`, and the tag listings in between.
fn creation_trail(log: &[LoggedRequest], name: &str) -> Vec<String> {
    let creates = |request: &&LoggedRequest| {
        request.endpoint == "POST /tag" && request.body.get("name").and_then(Value::as_str) == Some(name)
    };
    let first = log.iter().position(|request| creates(&request)).unwrap_or(0);
    let last = log.iter().rposition(|request| creates(&request)).unwrap_or(0);
    log[first..=last]
        .iter()
        .filter(|request| creates(request) || request.endpoint == "GET /tag")
        .map(|request| format!("{} {} {}", request.at_ms, request.endpoint, request.status))
        .collect()
}

#[derive(Default)]
struct Replay {
    /// Tag ids on each contact now.
    tagged: HashMap<String, BTreeSet<u64>>,
    /// Tag ids any call tried to set on each contact, whatever the answer.
    attempted: HashMap<String, BTreeSet<u64>>,
    untags_never_set: usize,
    redundant: RedundantCalls,
}

impl Replay {
    fn apply(&mut self, request: &LoggedRequest) {
        let body = &request.body;
        if let Some(email) = email_of(body) {
            self.attempted.entry(email).or_default().extend(tags_set_by(request));
        }
        if !(200..300).contains(&request.status) {
            return;
        }
        match request.endpoint.as_str() {
            "POST /subscriber" | "POST /subscriber/tag" => {
                let tags = tags_set_by(request);
                if let Some(email) = email_of(body) {
                    let present = self.tagged.get(&email);
                    let all_present = tags.iter().all(|tag| present.is_some_and(|present| present.contains(tag)));
                    if request.endpoint == "POST /subscriber/tag" && !tags.is_empty() && all_present {
                        self.redundant.tag += 1;
                    }
                    self.set(&email, &tags);
                }
            }
            "POST /subscriber/untag" => {
                if let (Some(email), Some(tag)) = (email_of(body), body.get("tagid").and_then(tag_id)) {
                    let tried = self.attempted.get(&email).is_some_and(|tried| tried.contains(&tag));
                    let removed = self.tagged.get_mut(&email).is_some_and(|present| present.remove(&tag));
                    match (tried, removed) {
                        (false, _) => self.untags_never_set += 1,
                        (true, false) => self.redundant.untag += 1,
                        (true, true) => {}
                    }
                }
            }
            _ => {}
        }
    }

    fn set(&mut self, email: &str, tags: &[u64]) {
        self.tagged.entry(email.to_owned()).or_default().extend(tags);
    }
}

/// The tag ids a tag-setting call (upsert with `tagid`, or tag with `tagids`) names.
fn tags_set_by(request: &LoggedRequest) -> Vec<u64> {
    let body = &request.body;
    match request.endpoint.as_str() {
        "POST /subscriber" => body.get("tagid").and_then(tag_id).into_iter().collect(),
        "POST /subscriber/tag" => body
            .get("tagids")
            .and_then(Value::as_array)
            .map(|ids| ids.iter().filter_map(tag_id).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn email_of(body: &Value) -> Option<String> {
    body.get("email").and_then(Value::as_str).map(|email| email.trim().to_lowercase())
}

/// A tag id as JSON number or numeric string.
fn tag_id(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| value.as_str().and_then(|text| text.trim().parse().ok()))
}
