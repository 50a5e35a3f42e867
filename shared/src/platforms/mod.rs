//! The pull side (DESIGN 11): webinar platform API clients behind their FIFO throttles, and the
//! pure mapping of what they return to normalized events.
//!
//! - [`genesis`]: WebinarJam and EverWebinar (one API, one key per account, 20 calls/s).
//! - [`zoom`]: Zoom reports, absentees and registrants with Server-to-Server OAuth.
//! - [`mapping`]: pulled records -> [`crate::domain::WebinarEvent`]s with stable ids.
//! - [`throttle`]: the FIFO throttle every call goes through.

pub mod config;
#[cfg(feature = "sqlite")]
pub mod done_sessions;
pub mod done_store;
pub mod error;
pub mod genesis;
mod http;
pub mod lenient;
pub mod mapping;
pub mod pull;
pub mod reconcile;
pub mod throttle;
pub mod zoom;
pub mod zoom_ledger;

pub use error::{Platform, PlatformError};
pub use http::{CallCounts, CallLog, DepartureRecord};
pub use throttle::{Departure, FifoThrottle, ThrottleStats};
