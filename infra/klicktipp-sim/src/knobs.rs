//! Switches for the behaviours the reference leaves open ([I]) and for fault injection.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// All knobs. Missing keys in JSON take the defaults below; unknown keys are
/// rejected so a typo in `--knobs-json` or `PUT /_sim/knobs` is not silently ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Knobs {
    /// `None` = unlimited. Rolling window: a request is answered 429 when this
    /// many requests were already accepted (non-429) in the last 1000 ms.
    pub rate_limit_per_second: Option<u32>,
    /// 429 answers carry `Retry-After: 1`.
    pub retry_after: bool,
    /// Probabilities (0..1) per call on a known route; drawn once per call,
    /// mutually exclusive, in this order. 500 (empty body), 502 (HTML) and
    /// error 12 happen before any effect; a timeout applies the call and then
    /// holds its normal answer back for `timeout_ms`, so the effect happens
    /// even when the client gives up.
    pub fault_rate_500: f64,
    pub fault_rate_502_html: f64,
    pub fault_rate_timeout: f64,
    pub timeout_ms: u64,
    /// 406 `{"error":12}` (retryable internal error).
    pub fault_rate_error12: f64,
    /// A session dies after this many authenticated calls / seconds.
    pub session_expiry_calls: Option<u32>,
    pub session_expiry_seconds: Option<u64>,
    pub language: Language,
    pub duplicate_tag_names: DuplicateTagPolicy,
    pub unknown_tag_answer: UnknownTagAnswer,
    /// Answer `[]` instead of `{}` for empty maps (PHP serialises an empty array so).
    pub empty_maps_as_arrays: bool,
    /// A 200 whose body is `{"error":12}`; no effect happens.
    pub error_in_200_rate: f64,
    /// These emails (case-insensitive) get a permanent 406 `{"error":5}` on
    /// `POST /subscriber` and sign-in.
    pub reject_emails: Vec<String>,
    /// The answer shape of `GET /subscriber` (the sources disagree).
    pub subscriber_index_shape: SubscriberIndexShape,
    /// Seed of the fault-injection RNG; re-applied by `set_knobs` and `reset`.
    pub seed: u64,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            rate_limit_per_second: None,
            retry_after: false,
            fault_rate_500: 0.0,
            fault_rate_502_html: 0.0,
            fault_rate_timeout: 0.0,
            // Longer than any sane client timeout, so a timeout fault is a timeout.
            timeout_ms: 30_000,
            fault_rate_error12: 0.0,
            session_expiry_calls: None,
            session_expiry_seconds: None,
            language: Language::En,
            duplicate_tag_names: DuplicateTagPolicy::Allow,
            unknown_tag_answer: UnknownTagAnswer::Error403,
            empty_maps_as_arrays: false,
            error_in_200_rate: 0.0,
            reject_emails: Vec::new(),
            subscriber_index_shape: SubscriberIndexShape::Object,
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
        serde_json::from_value(current).map_err(|e| e.to_string())
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Language {
    #[default]
    #[serde(alias = "en", alias = "EN", alias = "english")]
    En,
    #[serde(alias = "de", alias = "DE", alias = "german")]
    De,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DuplicateTagPolicy {
    /// `POST /tag` with an existing name creates a second tag of that name.
    #[default]
    #[serde(alias = "allow")]
    Allow,
    /// `POST /tag` with an existing name (case-insensitive) answers a 406 array.
    #[serde(alias = "reject")]
    Reject,
}

/// `GET /subscriber`: the OpenAPI spec's `{"subscribers":["123"]}` or a plain `["123"]`
/// (older connector fixtures).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriberIndexShape {
    #[default]
    Object,
    Array,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum UnknownTagAnswer {
    /// 406 `{"error":403}` ("tag not found").
    #[default]
    #[serde(alias = "error403", alias = "403")]
    Error403,
    /// 406 `{"error":7}`, as an old fixture suggests.
    #[serde(alias = "error7", alias = "7")]
    Error7,
}

impl UnknownTagAnswer {
    pub fn code(self) -> u32 {
        match self {
            Self::Error403 => 403,
            Self::Error7 => 7,
        }
    }
}
