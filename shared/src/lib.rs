//! webinar-bridge: the engine behind the ingest and consumer Lambdas and `webinar-bridge serve`.
//!
//! `domain` is pure; `sources` parses and authenticates webhooks; everything that talks to the
//! outside world sits behind the traits in `ports` with adapters in `adapters`.

pub mod adapters;
pub mod config;
pub mod consume;
pub mod domain;
pub mod ingest;
pub mod klicktipp;
pub mod platforms;
pub mod ports;
pub mod secret;
pub mod sources;
pub mod story;
pub mod tag_resolver;
pub mod tags_ahead;
pub mod telemetry;
pub mod worker;

pub use secret::Secret;
