//! The pure core: events, contact state, tags, field mapping and planning. No I/O, no AWS, no
//! HTTP, no async runtime: everything here is a function of its inputs.

mod email;
mod event;

pub use email::{Email, EmailError};
pub use event::{
    Cents, ContactInfo, ContactKey, EVENT_SCHEMA_VERSION, EventId, EventKind, Facts, Interval, Source, UnknownKind,
    WebinarEvent, WebinarInfo, WebinarKey,
};
