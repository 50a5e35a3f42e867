//! The simulator's data, credentials, call log, rate windows and tokens. Lives
//! behind one `std::sync::Mutex`; every operation is short and synchronous.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::data::PlatformData;
use crate::knobs::Knobs;

/// One sliding window is one second long.
pub(crate) const WINDOW: Duration = Duration::from_secs(1);
/// Zoom's `next_page_token` lives 15 minutes.
const PAGE_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);

/// Credentials and data the simulator starts with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimConfig {
    pub data: PlatformData,
    /// WebinarJam/EverWebinar API keys; each is valid on both base paths (one key per account).
    pub api_keys: Vec<String>,
    pub zoom: ZoomCredentials,
    pub knobs: Knobs,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            data: PlatformData::default(),
            api_keys: vec![DEFAULT_API_KEY.to_owned()],
            zoom: ZoomCredentials::default(),
            knobs: Knobs::default(),
        }
    }
}

impl SimConfig {
    /// The default credentials with this data.
    pub fn with_data(data: PlatformData) -> Self {
        Self { data, ..Self::default() }
    }
}

/// The default WebinarJam/EverWebinar API key.
pub const DEFAULT_API_KEY: &str = "sim-api-key";

/// A Zoom Server-to-Server OAuth app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ZoomCredentials {
    pub account_id: String,
    pub client_id: String,
    pub client_secret: String,
}

impl Default for ZoomCredentials {
    fn default() -> Self {
        Self {
            account_id: "sim-account".to_owned(),
            client_id: "sim-client-id".to_owned(),
            client_secret: "sim-client-secret".to_owned(),
        }
    }
}

/// One API call as the simulator answered it (admin calls are not logged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    /// Milliseconds since the simulator started (or was reset).
    pub at_ms: u64,
    pub method: String,
    pub path: String,
    /// `METHOD /route`, e.g. `POST /everwebinar/registrants`, `GET /v2/webinars/{id}/registrants`.
    pub endpoint: String,
    /// The WebinarJam API key the call carried, if any.
    pub api_key: Option<String>,
    /// Form (or query) parameters, `api_key` left out.
    pub params: BTreeMap<String, String>,
    pub status: u16,
}

/// Calls in one second of the simulator's life.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecondStats {
    /// Whole seconds since start (or reset).
    pub second: u64,
    pub calls: u64,
    pub http_429: u64,
    pub calls_by_endpoint: BTreeMap<String, u64>,
}

/// Counters over the call log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallStats {
    pub calls: u64,
    pub calls_by_endpoint: BTreeMap<String, u64>,
    pub calls_by_status: BTreeMap<u16, u64>,
    pub http_429: u64,
    /// Seconds with at least one call, in order.
    pub per_second: Vec<SecondStats>,
    /// The most non-429 calls seen in any sliding 1-second window (any key).
    pub max_accepted_in_any_window: u64,
    /// The same per WebinarJam/EverWebinar API key (calls without a key left out).
    pub max_accepted_in_any_window_by_key: BTreeMap<String, u64>,
}

impl CallStats {
    pub fn from_log(log: &[CallRecord]) -> Self {
        let mut stats = CallStats::default();
        let mut seconds: BTreeMap<u64, SecondStats> = BTreeMap::new();
        for call in log {
            stats.calls += 1;
            *stats.calls_by_endpoint.entry(call.endpoint.clone()).or_default() += 1;
            *stats.calls_by_status.entry(call.status).or_default() += 1;
            let second = call.at_ms / 1000;
            let slot = seconds.entry(second).or_insert_with(|| SecondStats { second, ..SecondStats::default() });
            slot.calls += 1;
            *slot.calls_by_endpoint.entry(call.endpoint.clone()).or_default() += 1;
            if call.status == 429 {
                stats.http_429 += 1;
                slot.http_429 += 1;
            }
        }
        stats.per_second = seconds.into_values().collect();
        stats.max_accepted_in_any_window = max_in_window(log.iter().filter(|c| c.status != 429).map(|c| c.at_ms));
        let mut by_key: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        for call in log.iter().filter(|c| c.status != 429) {
            if let Some(key) = &call.api_key {
                by_key.entry(key).or_default().push(call.at_ms);
            }
        }
        stats.max_accepted_in_any_window_by_key =
            by_key.into_iter().map(|(key, times)| (key.to_owned(), max_in_window(times.into_iter()))).collect();
        stats
    }
}

/// The largest number of timestamps (ms, ascending) within any 1000 ms span.
fn max_in_window(times: impl Iterator<Item = u64>) -> u64 {
    let mut window: VecDeque<u64> = VecDeque::new();
    let mut best = 0;
    for at in times {
        window.push_back(at);
        while window.front().is_some_and(|first| at - first >= 1000) {
            window.pop_front();
        }
        best = best.max(window.len() as u64);
    }
    best
}

pub(crate) struct PageCursor {
    pub scope: String,
    pub offset: usize,
    issued: Instant,
}

pub(crate) enum TokenCheck {
    Valid,
    Expired,
    Unknown,
}

pub(crate) struct SimState {
    pub config: SimConfig,
    pub knobs: Knobs,
    pub log: Vec<CallRecord>,
    started: Instant,
    jam_windows: HashMap<String, VecDeque<Instant>>,
    zoom_window: VecDeque<Instant>,
    tokens: HashMap<String, Instant>,
    page_tokens: HashMap<String, PageCursor>,
    rng: StdRng,
    /// The base URL, for `next_page_url` and `api_url`.
    pub base_url: String,
}

impl SimState {
    pub fn new(config: SimConfig, base_url: String) -> Self {
        let knobs = config.knobs.clone();
        let rng = StdRng::seed_from_u64(knobs.seed);
        Self {
            config,
            knobs,
            log: Vec::new(),
            started: Instant::now(),
            jam_windows: HashMap::new(),
            zoom_window: VecDeque::new(),
            tokens: HashMap::new(),
            page_tokens: HashMap::new(),
            rng,
            base_url,
        }
    }

    pub fn elapsed_ms(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.started).as_millis()).unwrap_or(u64::MAX)
    }

    pub fn set_knobs(&mut self, knobs: Knobs) {
        self.rng = StdRng::seed_from_u64(knobs.seed);
        self.knobs = knobs;
    }

    /// Log, counters, windows and tokens cleared; data and knobs kept (the RNG is re-seeded).
    pub fn reset(&mut self) {
        self.log.clear();
        self.started = Instant::now();
        self.jam_windows.clear();
        self.zoom_window.clear();
        self.tokens.clear();
        self.page_tokens.clear();
        self.rng = StdRng::seed_from_u64(self.knobs.seed);
    }

    /// Admits a WebinarJam call for `api_key` into its window, or refuses it.
    pub fn admit_jam(&mut self, api_key: &str, now: Instant) -> bool {
        let limit = self.knobs.jam_rate_for(api_key);
        let window = self.jam_windows.entry(api_key.to_owned()).or_default();
        admit(window, limit, now)
    }

    pub fn admit_zoom(&mut self, now: Instant) -> bool {
        admit(&mut self.zoom_window, self.knobs.zoom_rate_per_second, now)
    }

    fn fault_applies(&self, path: &str) -> bool {
        self.knobs.fault_path_prefix.as_deref().is_none_or(|prefix| path.starts_with(prefix))
    }

    /// Counts down `throttle_next_calls`; true when this call is to be answered 429.
    pub fn take_forced_429(&mut self, path: &str) -> bool {
        if self.knobs.throttle_next_calls > 0 && self.fault_applies(path) {
            self.knobs.throttle_next_calls -= 1;
            return true;
        }
        false
    }

    /// The fault for this call, if any: counted faults first, then the random ones.
    pub fn draw_fault(&mut self, path: &str) -> Option<Fault> {
        if !self.fault_applies(path) {
            return None;
        }
        if self.knobs.fail_next_calls > 0 {
            self.knobs.fail_next_calls -= 1;
            return Some(Fault::Status(self.knobs.fault_status));
        }
        if self.knobs.stall_next_calls > 0 {
            self.knobs.stall_next_calls -= 1;
            return Some(Fault::Stall(Duration::from_millis(self.knobs.stall_ms)));
        }
        let (rate_5xx, rate_stall) = (self.knobs.fault_rate_5xx, self.knobs.fault_rate_stall);
        if rate_5xx <= 0.0 && rate_stall <= 0.0 {
            return None;
        }
        let draw: f64 = self.rng.random();
        if draw < rate_5xx {
            Some(Fault::Status(self.knobs.fault_status))
        } else if draw < rate_5xx + rate_stall {
            Some(Fault::Stall(Duration::from_millis(self.knobs.stall_ms)))
        } else {
            None
        }
    }

    pub fn issue_token(&mut self, now: Instant) -> String {
        let token = format!("sim_{}", self.random_word(40));
        let ttl = Duration::from_secs(self.knobs.zoom_token_ttl_seconds);
        self.tokens.insert(token.clone(), now + ttl);
        token
    }

    pub fn check_token(&self, token: &str, now: Instant) -> TokenCheck {
        match self.tokens.get(token) {
            Some(expires) if *expires > now => TokenCheck::Valid,
            Some(_) => TokenCheck::Expired,
            None => TokenCheck::Unknown,
        }
    }

    /// Every token issued so far is expired from now on. Returns how many.
    pub fn expire_tokens(&mut self, now: Instant) -> usize {
        for expires in self.tokens.values_mut() {
            *expires = now;
        }
        self.tokens.len()
    }

    pub fn issue_page_token(&mut self, scope: String, offset: usize, now: Instant) -> String {
        self.page_tokens.retain(|_, cursor| now.duration_since(cursor.issued) < PAGE_TOKEN_TTL);
        let token = self.random_word(32);
        self.page_tokens.insert(token.clone(), PageCursor { scope, offset, issued: now });
        token
    }

    /// The offset a page token stands for, when it is live and was issued for `scope`.
    pub fn page_offset(&self, token: &str, scope: &str, now: Instant) -> Option<usize> {
        self.page_tokens
            .get(token)
            .filter(|cursor| cursor.scope == scope && now.duration_since(cursor.issued) < PAGE_TOKEN_TTL)
            .map(|cursor| cursor.offset)
    }

    fn random_word(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..len).map(|_| char::from(ALPHABET[self.rng.random_range(0..ALPHABET.len())])).collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    Status(u16),
    Stall(Duration),
}

/// Sliding window: refused when `limit` calls were already admitted in the last second.
fn admit(window: &mut VecDeque<Instant>, limit: Option<u32>, now: Instant) -> bool {
    let Some(limit) = limit else {
        return true;
    };
    while window.front().is_some_and(|first| now.saturating_duration_since(*first) >= WINDOW) {
        window.pop_front();
    }
    if window.len() >= limit as usize {
        return false;
    }
    window.push_back(now);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_slides() {
        let start = Instant::now();
        let mut window = VecDeque::new();
        for i in 0..20 {
            assert!(admit(&mut window, Some(20), start + Duration::from_millis(i * 10)), "call {i}");
        }
        assert!(!admit(&mut window, Some(20), start + Duration::from_millis(999)));
        assert!(admit(&mut window, Some(20), start + Duration::from_millis(1000)));
        assert!(!admit(&mut window, Some(20), start + Duration::from_millis(1001)));
    }

    #[test]
    fn max_in_window_counts_a_sliding_second() {
        assert_eq!(max_in_window([0, 100, 999, 1000, 1500, 1998].into_iter()), 4);
        assert_eq!(max_in_window([0, 1000, 2000].into_iter()), 1);
        assert_eq!(max_in_window(std::iter::empty()), 0);
    }
}
