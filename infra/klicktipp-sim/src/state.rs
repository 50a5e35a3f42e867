//! The simulated account's data, sessions, request log and counters. Lives
//! behind one `std::sync::Mutex`; every operation is short and synchronous.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::{FieldDef, OptInProcess, SimConfig, field_defs, optin_processes};
use crate::knobs::Knobs;

/// First ids handed out; distinct ranges make a mixed-up id obvious in a test.
const FIRST_TAG_ID: u64 = 101;
const FIRST_CONTACT_ID: u64 = 1001;
const FIRST_SMART_TAG_ID: u64 = 900_001;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContactStatus {
    Pending,
    Subscribed,
    Unsubscribed,
}

impl ContactStatus {
    pub fn label(self) -> &'static str {
        match self {
            Self::Pending => "Opt-In Pending",
            Self::Subscribed => "Subscribed",
            Self::Unsubscribed => "Unsubscribed",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Contact {
    pub id: u64,
    /// The alphanumeric "contact key" of redirect links; also accepted by `GET /subscriber/{key}`.
    pub key: String,
    /// As first given (trimmed); empty for an SMS-only contact.
    pub email: String,
    pub sms: Option<String>,
    pub status: ContactStatus,
    pub listid: u64,
    /// Only fields that were set to a non-empty value.
    pub fields: BTreeMap<String, String>,
    /// Tag id -> Unix seconds of the first tagging.
    pub manual_tags: BTreeMap<u64, u64>,
    pub smart_tags: BTreeMap<u64, u64>,
    pub optin_at: u64,
    pub subscribed_at: Option<u64>,
    pub unsubscribed_at: Option<u64>,
}

#[derive(Debug, Clone)]
pub(crate) struct ManualTag {
    pub name: String,
    pub text: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub created: Instant,
    pub calls: u32,
}

#[derive(Debug, Clone)]
pub(crate) struct ListbuildingEntry {
    pub apikey: String,
    pub listid: u64,
    pub tagid: u64,
    pub smart_tag: u64,
}

/// A contact as tests and `simulate` see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactView {
    pub id: u64,
    pub email: String,
    /// `Opt-In Pending`, `Subscribed` or `Unsubscribed`.
    pub status: String,
    pub listid: u64,
    /// Manual tag names, sorted (smart tags are not included).
    pub tags: Vec<String>,
    /// Only non-empty fields.
    pub fields: BTreeMap<String, String>,
    /// KlickTipp's own SMS number (`smsnumber`), stored as `0049…`; left out when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms: Option<String>,
}

/// One API request (never `/_sim/*`), in the order they were handled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedRequest {
    /// When it was handled (before any injected delay), in ms since the simulator started.
    pub at_ms: u64,
    pub method: String,
    /// As requested, including a `.json` suffix.
    pub path: String,
    /// `"POST /subscriber"`, `"GET /subscriber/{id}"`, ...
    pub endpoint: String,
    /// The parsed body (forms in their PHP structure); `null` when empty.
    pub body: Value,
    pub status: u16,
    /// Request headers, lower-case names.
    pub headers: BTreeMap<String, String>,
}

pub(crate) struct SimState {
    pub config: SimConfig,
    pub knobs: Knobs,
    pub fields: Vec<FieldDef>,
    pub processes: Vec<OptInProcess>,
    pub listbuilding: Vec<ListbuildingEntry>,
    pub tags: BTreeMap<u64, ManualTag>,
    pub smart_tags: BTreeMap<u64, String>,
    pub next_tag_id: u64,
    pub contacts: BTreeMap<u64, Contact>,
    /// Lower-cased email -> contact id.
    pub contact_by_email: HashMap<String, u64>,
    pub contact_by_sms: HashMap<String, u64>,
    pub next_contact_id: u64,
    pub session_name: String,
    pub sessions: HashMap<String, Session>,
    pub log: Vec<LoggedRequest>,
    pub calls_by_endpoint: BTreeMap<String, u64>,
    pub calls_by_status: BTreeMap<u16, u64>,
    /// Arrival times of accepted requests within the last second.
    pub accepted_recently: VecDeque<Instant>,
    pub rng: StdRng,
    pub started: Instant,
}

impl SimState {
    pub fn new(config: SimConfig, knobs: Knobs, session_name: String) -> Self {
        let processes = optin_processes();
        let mut smart_tags = BTreeMap::new();
        let mut next_smart_tag = FIRST_SMART_TAG_ID;
        // One smart tag per opt-in process exists in the account (so untagging a
        // smart tag can be tried), but it is never set on contacts: nothing says
        // KlickTipp does, and it would show up in every contact's `tags`.
        for process in &processes {
            let name = if process.name.is_empty() {
                "Predefined double opt-in process".to_owned()
            } else {
                process.name.clone()
            };
            smart_tags.insert(next_smart_tag, format!("Opt-in: {name}"));
            next_smart_tag += 1;
        }
        let mut tags = BTreeMap::new();
        let mut listbuilding = Vec::new();
        for key in &config.listbuilding_keys {
            if key.tagid != 0 {
                tags.entry(key.tagid)
                    .or_insert_with(|| ManualTag { name: format!("Listbuilding {}", key.apikey), text: String::new() });
            }
            smart_tags.insert(next_smart_tag, format!("API key: {}", key.apikey));
            listbuilding.push(ListbuildingEntry {
                apikey: key.apikey.clone(),
                listid: key.listid,
                tagid: key.tagid,
                smart_tag: next_smart_tag,
            });
            next_smart_tag += 1;
        }
        let next_tag_id = tags.keys().next_back().map_or(FIRST_TAG_ID, |last| (last + 1).max(FIRST_TAG_ID));
        let rng = StdRng::seed_from_u64(knobs.seed);
        Self {
            fields: field_defs(&config.custom_fields),
            config,
            knobs,
            processes,
            listbuilding,
            tags,
            smart_tags,
            next_tag_id,
            contacts: BTreeMap::new(),
            contact_by_email: HashMap::new(),
            contact_by_sms: HashMap::new(),
            next_contact_id: FIRST_CONTACT_ID,
            session_name,
            sessions: HashMap::new(),
            log: Vec::new(),
            calls_by_endpoint: BTreeMap::new(),
            calls_by_status: BTreeMap::new(),
            accepted_recently: VecDeque::new(),
            rng,
            started: Instant::now(),
        }
    }

    /// Back to the start configuration; knobs stay as they are now.
    pub fn reset(&mut self) {
        let knobs = self.knobs.clone();
        let fresh = Self::new(self.config.clone(), knobs, self.session_name.clone());
        *self = fresh;
    }

    pub fn set_knobs(&mut self, knobs: Knobs) {
        self.rng = StdRng::seed_from_u64(knobs.seed);
        self.knobs = knobs;
    }

    pub fn process(&self, listid: u64) -> Option<&OptInProcess> {
        self.processes.iter().find(|p| p.id == listid)
    }

    pub fn contact_id_by_email(&self, email: &str) -> Option<u64> {
        self.contact_by_email.get(&email.trim().to_lowercase()).copied()
    }

    pub fn contact_id_by_key(&self, key: &str) -> Option<u64> {
        self.contacts.values().find(|contact| contact.key == key).map(|contact| contact.id)
    }

    // --- sessions ---------------------------------------------------------

    fn session_expired(&self, session: &Session, now: Instant) -> bool {
        let by_calls = self.knobs.session_expiry_calls.is_some_and(|limit| session.calls >= limit);
        let by_age = self
            .knobs
            .session_expiry_seconds
            .is_some_and(|secs| now.duration_since(session.created) >= Duration::from_secs(secs));
        by_calls || by_age
    }

    pub fn session_alive(&self, sessid: &str, now: Instant) -> bool {
        self.sessions.get(sessid).is_some_and(|session| !self.session_expired(session, now))
    }

    /// Counts one authenticated call; a session past its expiry is removed for good.
    pub fn use_session(&mut self, sessid: &str, now: Instant) -> bool {
        if !self.session_alive(sessid, now) {
            self.sessions.remove(sessid);
            return false;
        }
        if let Some(session) = self.sessions.get_mut(sessid) {
            session.calls += 1;
        }
        true
    }

    // --- request log --------------------------------------------------------

    pub fn record(&mut self, entry: LoggedRequest) {
        *self.calls_by_endpoint.entry(entry.endpoint.clone()).or_default() += 1;
        *self.calls_by_status.entry(entry.status).or_default() += 1;
        self.log.push(entry);
    }

    pub fn elapsed_ms(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.started).as_millis()).unwrap_or(u64::MAX)
    }

    // --- views ----------------------------------------------------------------

    pub fn contact_views(&self) -> Vec<ContactView> {
        let mut views: Vec<ContactView> = self
            .contacts
            .values()
            .map(|contact| {
                let mut tags: Vec<String> =
                    contact.manual_tags.keys().filter_map(|id| self.tags.get(id).map(|tag| tag.name.clone())).collect();
                tags.sort();
                ContactView {
                    id: contact.id,
                    email: contact.email.clone(),
                    status: contact.status.label().to_owned(),
                    listid: contact.listid,
                    tags,
                    fields: contact.fields.clone(),
                    sms: contact.sms.clone(),
                }
            })
            .collect();
        views.sort_by(|a, b| a.email.cmp(&b.email).then(a.id.cmp(&b.id)));
        views
    }

    pub fn tag_names(&self) -> BTreeMap<u64, String> {
        self.tags.iter().map(|(id, tag)| (*id, tag.name.clone())).collect()
    }
}

/// Deterministic, never all digits, so it cannot be mistaken for an id.
pub(crate) fn contact_key(id: u64) -> String {
    let digest = Sha256::digest(format!("klicktipp-sim-contact-{id}").as_bytes());
    format!("k{}", &hex::encode(digest)[..11])
}
