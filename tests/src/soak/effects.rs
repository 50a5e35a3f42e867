//! Duplicate and redundant effects, read from the simulator's request log and final state.
//!
//! The log is replayed in order, applying every call that KlickTipp answered with a 2xx (a
//! timed-out call is logged with its real answer: its effect happened). One caveat: a 200 whose
//! body is `{"error":12}` had no effect but is logged as 200; the replay counts it as applied,
//! which can only hide an "untag of a tag never set", never invent one.

use klicktipp_sim::{LoggedRequest, Simulator};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Effects that happened more often than the events call for: each one fails the soak.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DuplicateEffects {
    /// Tag names created more than once (`POST /tag` succeeding twice, or two tags of one name).
    pub tags_created_twice: BTreeSet<String>,
    /// Addresses held by more than one contact.
    pub duplicate_contacts: BTreeSet<String>,
    /// `POST /subscriber/untag` of a tag that was never set on that contact.
    pub untags_never_set: usize,
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
    /// An untag of a tag the contact had, but no longer.
    pub untag: usize,
}

impl RedundantCalls {
    pub fn total(&self) -> usize {
        self.tag + self.untag
    }
}

pub fn examine(simulator: &Simulator) -> (DuplicateEffects, RedundantCalls) {
    let mut replay = Replay::default();
    for request in simulator.request_log() {
        replay.apply(&request);
    }
    let mut duplicates = DuplicateEffects {
        tags_created_twice: replay.created.into_iter().filter(|(_, count)| *count > 1).map(|(name, _)| name).collect(),
        untags_never_set: replay.untags_never_set,
        ..DuplicateEffects::default()
    };
    let mut ids_per_name: BTreeMap<String, usize> = BTreeMap::new();
    for name in simulator.tags().into_values() {
        *ids_per_name.entry(name).or_default() += 1;
    }
    duplicates.tags_created_twice.extend(ids_per_name.into_iter().filter(|(_, ids)| *ids > 1).map(|(name, _)| name));
    let mut seen = BTreeSet::new();
    for contact in simulator.contacts() {
        let email = contact.email.trim().to_lowercase();
        if !seen.insert(email.clone()) {
            duplicates.duplicate_contacts.insert(email);
        }
    }
    (duplicates, replay.redundant)
}

#[derive(Default)]
struct Replay {
    /// Successful creations per tag name.
    created: BTreeMap<String, usize>,
    /// Tag ids on each contact now, and every tag id ever set on it.
    tagged: HashMap<String, BTreeSet<u64>>,
    ever_tagged: HashMap<String, BTreeSet<u64>>,
    untags_never_set: usize,
    redundant: RedundantCalls,
}

impl Replay {
    fn apply(&mut self, request: &LoggedRequest) {
        if !(200..300).contains(&request.status) {
            return;
        }
        let body = &request.body;
        match request.endpoint.as_str() {
            "POST /tag" => {
                if let Some(name) = body.get("name").and_then(Value::as_str) {
                    *self.created.entry(name.to_owned()).or_default() += 1;
                }
            }
            "POST /subscriber" => {
                if let (Some(email), Some(tag)) = (email_of(body), body.get("tagid").and_then(tag_id)) {
                    self.set(&email, &[tag]);
                }
            }
            "POST /subscriber/tag" => {
                let tags: Vec<u64> = body
                    .get("tagids")
                    .and_then(Value::as_array)
                    .map(|ids| ids.iter().filter_map(tag_id).collect())
                    .unwrap_or_default();
                if let Some(email) = email_of(body) {
                    let present = self.tagged.get(&email);
                    if !tags.is_empty() && tags.iter().all(|tag| present.is_some_and(|present| present.contains(tag))) {
                        self.redundant.tag += 1;
                    }
                    self.set(&email, &tags);
                }
            }
            "POST /subscriber/untag" => {
                if let (Some(email), Some(tag)) = (email_of(body), body.get("tagid").and_then(tag_id)) {
                    let ever = self.ever_tagged.get(&email).is_some_and(|ever| ever.contains(&tag));
                    let removed = self.tagged.get_mut(&email).is_some_and(|present| present.remove(&tag));
                    match (ever, removed) {
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
        self.ever_tagged.entry(email.to_owned()).or_default().extend(tags);
    }
}

fn email_of(body: &Value) -> Option<String> {
    body.get("email").and_then(Value::as_str).map(|email| email.trim().to_lowercase())
}

/// A tag id as JSON number or numeric string.
fn tag_id(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| value.as_str().and_then(|text| text.trim().parse().ok()))
}
