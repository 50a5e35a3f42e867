//! The pure core: events, contact state, tags, field mapping and planning. No I/O, no AWS, no
//! HTTP, no async runtime: everything here is a function of its inputs.

mod contact;
mod email;
mod event;
mod fields;
mod plan;
mod problems;
mod state;
mod tags;
mod webinar_settings;

pub use contact::{AppliedView, ContactRecord, DEFAULT_FULL_ATTENDANCE_PERCENT, DesiredContact, Settings};
pub use email::{Email, EmailError};
pub use event::{
    Cents, ContactInfo, ContactKey, EVENT_SCHEMA_VERSION, EventId, EventKind, Facts, Interval, Source, UnknownKind,
    WebinarEvent, WebinarInfo, WebinarKey,
};
pub use event::{EngagementLabelError, MAX_ENGAGEMENT_LABEL_CHARS, engagement_label};
pub use fields::{FieldFormat, FieldMap, FieldMapError, FieldValue, LogicalField, url_with_scheme};
pub use fields::{custom_fact_key, custom_field_name};
pub use plan::{Plan, Upsert, plan};
pub use problems::{FieldProblem, FieldProblems, value_fingerprint, withhold_refused};
pub use state::{Attendance, ContactState, FieldSlot, Registration, Stamp, Stamped, StateLabel};
pub use tags::{
    DEFAULT_TAG_TEMPLATE, Language, MAX_STATE_WORD_CHARS, StateNames, StateNamesError, TagTemplate, TagTemplateError,
    all_distinct, preview, session_date,
};
pub use webinar_settings::{
    ALL as ALL_WEBINARS, Effective, MappedTag, WebinarSetting, WebinarSettingsError, WebinarSettingsSet, parse_seed,
    setting_key, state_label,
};
