//! The KlickTipp API client (DESIGN 5, 6): typed operations, lenient parsing of KlickTipp's many
//! answer shapes, error classes, session and partner authentication, retries and the rate cap.
//!
//! - `client`: the HTTP machinery every operation runs through; `operations`: the endpoints.
//! - `response` + `wire`: answers to values or typed errors; `error`: the classes.
//! - `auth`: partner signing and the shared session; `rate_limit`, `retry`: pacing.
//!
//! Every HTTP attempt (logins, replays and retries included) first waits for a slot of the
//! client's `RateLimiter`. A call makes at most `max_attempts` attempts: retryable errors wait
//! `backoff_base * 2^(n-1)` (capped at 5 s, equal jitter), a 429 waits `Retry-After` or 1 s (a
//! `Retry-After` over 30 s is handed back to the caller instead). A refused session is renewed
//! once per attempt, shared by all concurrent callers. After the last attempt the last error is
//! returned; requeueing is the caller's decision.

mod auth;
mod client;
mod config;
pub mod deadline;
mod error;
mod model;
mod operations;
mod rate_limit;
mod redact;
mod response;
mod retry;
mod wire;

pub use auth::partner_signature;
pub use client::KlickTippClient;
pub use config::{
    DEFAULT_BACKOFF_BASE, DEFAULT_BASE_URL, DEFAULT_MAX_ATTEMPTS, DEFAULT_RATE_PER_SECOND, DEFAULT_REQUEST_TIMEOUT,
    KlickTippAuth, KlickTippConfig,
};
pub use error::{ErrorClass, FieldError, KlickTippError};
pub use model::{FieldValue, Subscriber, UpsertSubscriber};
pub use operations::UPSERT_SUBSCRIBER;
pub use rate_limit::RateLimiter;
