//! Rate limits, paging, response style and fault injection.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// All knobs. Missing keys in JSON take the defaults below; unknown keys are
/// rejected so a typo in `--knobs-json` or `PUT /_sim/knobs` is not silently ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Knobs {
    /// WebinarJam/EverWebinar: calls per API key in any sliding 1-second window
    /// (20, hard-coded by the platform). The next call answers 429
    /// "Too many requests" without `Retry-After`. `None` = unlimited.
    pub jam_rate_per_second: Option<u32>,
    /// Per-key overrides of `jam_rate_per_second`, API key -> calls per second.
    pub jam_rate_per_key: BTreeMap<String, u32>,
    /// `/registrants` page size. The API does not document it; 100 here.
    pub jam_page_size: usize,
    /// Serve numbers as strings (`"schedule":"45"`, `"attended_live":"1"`) and
    /// hours without the leading zero (`"2026-02-10 9:00"`), as the real API does.
    pub jam_lenient_types: bool,
    /// Zoom: calls per account in any sliding 1-second window; above it 429
    /// with `Retry-After`. `None` = unlimited.
    pub zoom_rate_per_second: Option<u32>,
    /// The `Retry-After` seconds of Zoom's 429.
    pub zoom_retry_after_seconds: u64,
    /// Lifetime of issued Zoom tokens (`expires_in`).
    pub zoom_token_ttl_seconds: u64,
    /// Zoom's default `page_size` (its maximum is 300).
    pub zoom_default_page_size: usize,
    /// The next N API calls (matching `fault_path_prefix`) answer `fault_status`.
    pub fail_next_calls: u32,
    pub fault_status: u16,
    /// The next N API calls (matching `fault_path_prefix`) answer 429 as the
    /// platform does for a rate limit, whatever the window holds.
    pub throttle_next_calls: u32,
    /// The next N API calls (matching `fault_path_prefix`) stall `stall_ms`
    /// before answering normally (a client with a shorter timeout sees a timeout).
    pub stall_next_calls: u32,
    pub stall_ms: u64,
    /// Probabilities (0..1) per API call, drawn once per call: a `fault_status`
    /// answer, or a stall of `stall_ms`.
    pub fault_rate_5xx: f64,
    pub fault_rate_stall: f64,
    /// Faults apply only to paths starting with this (e.g. `/everwebinar`, `/v2`); `None` = all.
    pub fault_path_prefix: Option<String>,
    /// Seed of the fault RNG; re-applied by `set_knobs` and `reset`.
    pub seed: u64,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            jam_rate_per_second: Some(20),
            jam_rate_per_key: BTreeMap::new(),
            jam_page_size: 100,
            jam_lenient_types: true,
            zoom_rate_per_second: None,
            zoom_retry_after_seconds: 1,
            zoom_token_ttl_seconds: 3600,
            zoom_default_page_size: 30,
            fail_next_calls: 0,
            fault_status: 503,
            throttle_next_calls: 0,
            stall_next_calls: 0,
            stall_ms: 30_000,
            fault_rate_5xx: 0.0,
            fault_rate_stall: 0.0,
            fault_path_prefix: None,
            seed: 0,
        }
    }
}

impl Knobs {
    /// Merges a partial JSON object (top-level keys) into these knobs.
    pub fn merged_with(&self, patch: &Value) -> Result<Knobs, String> {
        let Value::Object(patch) = patch else {
            return Err("knobs patch must be a JSON object".to_owned());
        };
        let mut current = serde_json::to_value(self).map_err(|e| e.to_string())?;
        if let Value::Object(current) = &mut current {
            for (key, value) in patch {
                current.insert(key.clone(), value.clone());
            }
        }
        let knobs: Knobs = serde_json::from_value(current).map_err(|e| e.to_string())?;
        knobs.validate()?;
        Ok(knobs)
    }

    pub fn validate(&self) -> Result<(), String> {
        for (name, rate) in [("fault_rate_5xx", self.fault_rate_5xx), ("fault_rate_stall", self.fault_rate_stall)] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be between 0 and 1, not {rate}"));
            }
        }
        if !(500..=599).contains(&self.fault_status) {
            return Err(format!("fault_status must be a 5xx status, not {}", self.fault_status));
        }
        if self.jam_page_size == 0 || self.zoom_default_page_size == 0 {
            return Err("page sizes must be at least 1".to_owned());
        }
        Ok(())
    }

    /// The WebinarJam limit for this key.
    pub fn jam_rate_for(&self, api_key: &str) -> Option<u32> {
        self.jam_rate_per_key.get(api_key).copied().or(self.jam_rate_per_second)
    }
}
