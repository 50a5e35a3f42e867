//! WebinarJam and EverWebinar "Custom Webhook" deliveries (`reference/webinar-platforms.md` 1.1).
//!
//! The platform signs nothing, publishes no payload schema and sends no event time, so this
//! parser is strict about the shared secret and lenient about everything else: JSON or form,
//! flat or nested keys, a table of field-name aliases, numbers as strings and the reverse.
//! The event kind comes from the automation rule's URL path, never from the body.

use super::fields::{self, AliasRow, LooseBody};
use super::{GenesisProduct, RawRequest, Rejection, RejectionKind, SourceOutcome};
use crate::domain::engagement_label;
use crate::domain::{
    Cents, ContactInfo, EVENT_SCHEMA_VERSION, Email, EventId, EventKind, Facts, Source, WebinarEvent, WebinarInfo,
};
use crate::secret::Secret;

/// Turns one authenticated WebinarJam/EverWebinar webhook into one event.
pub fn parse(
    product: GenesisProduct,
    kind: &str,
    request: &RawRequest,
    secret: &Secret,
) -> Result<SourceOutcome, Rejection> {
    parse_with(product, kind, request, secret, &FieldAliases::default())
}

/// [`parse`] with the configured field aliases. Once the secret matched, a refusal of what the
/// body or rule URL says (400, 422) is marked parkable: the platform never resends it.
pub fn parse_with(
    product: GenesisProduct,
    kind: &str,
    request: &RawRequest,
    secret: &Secret,
    aliases: &FieldAliases,
) -> Result<SourceOutcome, Rejection> {
    authenticate(request, secret)?;
    parse_authenticated(product, kind, request, aliases).map_err(Rejection::parkable)
}

/// Everything after authentication: a parked body is run through this again (reprocess).
pub(super) fn parse_authenticated(
    product: GenesisProduct,
    kind: &str,
    request: &RawRequest,
    aliases: &FieldAliases,
) -> Result<SourceOutcome, Rejection> {
    let format = body_format(request)?;
    let kind = parse_kind(kind)?;
    let body = match format {
        BodyFormat::Json => LooseBody::from_json_with(&request.body, &aliases.rows, ALIASES)?,
        BodyFormat::Form => LooseBody::from_form_with(&request.body, &aliases.rows, ALIASES)?,
    };
    let mut event = build_event(source_of(product), kind, &body, request)?;
    if kind == EventKind::Engaged {
        let label = read_engagement(request, &body)?;
        // The label is part of what the event says: another label for the same person is another event.
        event.event_id = EventId::hashed(&event.source, &[event.event_id.as_str().as_bytes(), label.as_bytes()]);
        event.facts.engagement = Some(label);
    }
    Ok(SourceOutcome::Events(vec![event]))
}

/// The label of an engagement rule URL (`/hooks/webinarjam/engaged?label=Clicked%20Offer`), or
/// a `label` field of the body.
fn read_engagement(request: &RawRequest, body: &LooseBody<Field>) -> Result<String, Rejection> {
    let raw = request.strict_query_param("label")?.or_else(|| body.get(Field::EngagementLabel).map(str::to_owned));
    let raw = raw.ok_or_else(|| {
        Rejection::unprocessable(
            "missing_label",
            "An engaged webhook needs a label: end the rule URL with ?label=Clicked%20Offer (a short name of what the person did).",
            "label",
        )
    })?;
    engagement_label(&raw).map_err(|error| {
        Rejection::unprocessable("invalid_label", format!("The label is not usable: {error}."), "label")
    })
}

fn source_of(product: GenesisProduct) -> Source {
    match product {
        GenesisProduct::WebinarJam => Source::Webinarjam,
        GenesisProduct::EverWebinar => Source::Everwebinar,
    }
}

/// `Authorization: Bearer <secret>` or `?token=<secret>`; either one matching is enough.
fn authenticate(request: &RawRequest, secret: &Secret) -> Result<(), Rejection> {
    let query_token = request.strict_query_param("token")?;
    let presented: Vec<&str> = fields::bearer_token(request).into_iter().chain(query_token.as_deref()).collect();
    if presented.is_empty() {
        return Err(Rejection::unauthorized(
            "missing_secret",
            "This webhook needs the bridge's secret: send it as 'Authorization: Bearer <secret>' or add ?token=<secret> to the URL.",
        ));
    }
    // Compare every presented token so timing does not tell which one was checked.
    let matched = presented.iter().fold(false, |any, token| secret.matches(token.as_bytes()) | any);
    if matched {
        Ok(())
    } else {
        Err(Rejection::unauthorized(
            "invalid_secret",
            "The secret does not match this bridge's webhook secret; copy the webhook URL or token again from the bridge configuration.",
        ))
    }
}

enum BodyFormat {
    Json,
    Form,
}

/// JSON or form by `Content-Type`; without one, a body starting with `{` is JSON, else a form.
fn body_format(request: &RawRequest) -> Result<BodyFormat, Rejection> {
    match request.media_type().as_deref() {
        Some("application/json") => Ok(BodyFormat::Json),
        Some("application/x-www-form-urlencoded") => Ok(BodyFormat::Form),
        None if looks_like_json(&request.body) => Ok(BodyFormat::Json),
        None => Ok(BodyFormat::Form),
        Some(_) => Err(Rejection::new(
            RejectionKind::UnsupportedMediaType,
            "unsupported_media_type",
            "Send the body as application/json or application/x-www-form-urlencoded.",
        )),
    }
}

fn looks_like_json(body: &[u8]) -> bool {
    fields::strip_utf8_bom(body)
        .iter()
        .find(|byte| !byte.is_ascii_whitespace())
        .is_some_and(|byte| matches!(byte, b'{' | b'['))
}

/// The kinds a rule URL may end in: DESIGN's names plus the words people tend to type.
/// Compared without case or separators, so `no-show`, `NoShow` and `no_show` are the same.
const KIND_ALIASES: &[(EventKind, &[&str])] = &[
    (EventKind::Registered, &["registered", "register", "registration", "signup"]),
    (EventKind::Cancelled, &["cancelled", "canceled", "cancel", "cancellation", "unregistered"]),
    (EventKind::Attended, &["attended", "attend", "attended_live", "attendee", "live"]),
    (EventKind::LeftEarly, &["left_early", "left", "left_before"]),
    (EventKind::FullyAttended, &["fully_attended", "stayed", "stayed_until", "stayed_to_end"]),
    (EventKind::NoShow, &["no_show", "did_not_attend", "not_attended", "missed"]),
    (EventKind::ReplayWatched, &["replay_watched", "replay", "attended_replay", "watched_replay"]),
    (EventKind::Purchased, &["purchased", "purchase", "buyer", "bought"]),
    (EventKind::Engaged, &["engaged", "engagement"]),
];

fn parse_kind(raw: &str) -> Result<EventKind, Rejection> {
    let wanted = fields::normalize_key(raw);
    KIND_ALIASES
        .iter()
        .find(|(_, names)| names.iter().any(|name| fields::key_matches(&wanted, name)))
        .map(|(kind, _)| *kind)
        .ok_or_else(|| {
            Rejection::unprocessable(
                "unknown_kind",
                "The last part of the webhook URL is not a known event kind; use one of registered, cancelled, attended, left_early, fully_attended, no_show, replay_watched, purchased, engaged (with ?label=...).",
                "kind",
            )
        })
}

/// The values this source reads from a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Email,
    FirstName,
    LastName,
    /// A single "name": split into first and last when neither is sent on its own.
    FullName,
    Phone,
    PhoneCountryCode,
    WebinarId,
    WebinarName,
    SessionId,
    SessionDate,
    Timezone,
    JoinUrl,
    ReplayUrl,
    /// Length of the webinar (`webinar.duration`), as opposed to the registrant's `duration`.
    WebinarDuration,
    MinutesAttended,
    PurchaseAmount,
    RegistrantId,
    /// When the person registered (the registrants API calls it `signup_date`).
    SignupDate,
    /// The label of an engagement, when the rule URL does not carry `?label=`.
    EngagementLabel,
    RescheduleUrl,
    CancelUrl,
    ThankYouUrl,
    UtmSource,
    UtmMedium,
    UtmCampaign,
    GdprStatus,
    GdprDate,
    Organization,
    JobTitle,
}

/// Fields that go to `Facts::fields` unchanged, under their logical name (domain::fields).
const EXTRA_FIELDS: &[(Field, &str)] = &[
    (Field::RescheduleUrl, "reschedule_url"),
    (Field::CancelUrl, "cancel_url"),
    (Field::ThankYouUrl, "thank_you_url"),
    (Field::UtmSource, "utm_source"),
    (Field::UtmMedium, "utm_medium"),
    (Field::UtmCampaign, "utm_campaign"),
    (Field::GdprStatus, "gdpr_status"),
    (Field::Organization, "organization"),
    (Field::JobTitle, "job_title"),
];

/// Key names per field, most specific first (an earlier alias wins when several are present).
/// Keys match without case or separators, and a nested key also matches as `<parent>_<key>`,
/// so `{"webinar":{"id":..}}` is `webinar_id` and `schedule[date]` is `schedule_date`.
const ALIASES: &[AliasRow<Field>] = &[
    (Field::Email, &["email", "email_address"]),
    (Field::FirstName, &["first_name", "fname", "given_name"]),
    (Field::LastName, &["last_name", "lname", "surname", "family_name"]),
    (Field::FullName, &["name", "full_name", "user_name"]),
    (Field::Phone, &["phone", "phone_number"]),
    (Field::PhoneCountryCode, &["phone_country_code", "phone_prefix"]),
    (Field::WebinarId, &["webinar_id", "webinar_hash"]),
    (Field::WebinarName, &["webinar_name", "webinar", "webinar_title", "event_name", "title"]),
    (Field::SessionId, &["schedule", "schedule_id", "session_id"]),
    (
        Field::SessionDate,
        &["date", "event_date", "webinar_date", "session_date", "schedule_date", "start_time", "starts_at"],
    ),
    (Field::Timezone, &["timezone", "tz"]),
    (Field::JoinUrl, &["live_room_url", "live_room", "join_url", "direct_live_room_url"]),
    (Field::ReplayUrl, &["replay_room_url", "replay_room", "replay_url", "direct_replay_room_url"]),
    (Field::WebinarDuration, &["webinar_duration"]),
    (Field::MinutesAttended, &["time_live", "minutes_attended", "duration"]),
    (Field::PurchaseAmount, &["revenue_live", "revenue", "amount", "purchase_amount", "price"]),
    (Field::RegistrantId, &["user_id", "lead_id", "registrant_id"]),
    (Field::SignupDate, &["signup_date", "registration_date", "registered_at", "signup_time"]),
    (Field::EngagementLabel, &["engagement_label", "label"]),
    (Field::RescheduleUrl, &["reschedule_url", "reschedule_link", "reschedule"]),
    (Field::CancelUrl, &["cancel_url", "cancel_link", "cancellation_url", "unregister_url"]),
    (Field::ThankYouUrl, &["thank_you_url", "thankyou_url", "thank_you_page", "thank_you"]),
    (Field::UtmSource, &["utm_source"]),
    (Field::UtmMedium, &["utm_medium"]),
    (Field::UtmCampaign, &["utm_campaign"]),
    (Field::GdprStatus, &["gdpr_status", "gdpr_consent", "gdpr"]),
    (Field::GdprDate, &["gdpr_status_date", "gdpr_date", "gdpr_consent_date"]),
    (Field::Organization, &["organization", "organisation", "company", "org"]),
    (Field::JobTitle, &["job_title", "position"]),
];

/// The names `BRIDGE_FIELD_ALIASES` uses for this source's fields.
const FIELD_NAMES: &[(Field, &str)] = &[
    (Field::Email, "email"),
    (Field::FirstName, "first_name"),
    (Field::LastName, "last_name"),
    (Field::FullName, "full_name"),
    (Field::Phone, "phone"),
    (Field::PhoneCountryCode, "phone_country_code"),
    (Field::WebinarId, "webinar_id"),
    (Field::WebinarName, "webinar_name"),
    (Field::SessionId, "session_id"),
    (Field::SessionDate, "session_date"),
    (Field::Timezone, "timezone"),
    (Field::JoinUrl, "join_url"),
    (Field::ReplayUrl, "replay_url"),
    (Field::WebinarDuration, "webinar_duration"),
    (Field::MinutesAttended, "minutes_attended"),
    (Field::PurchaseAmount, "purchase_amount"),
    (Field::RegistrantId, "registrant_id"),
    (Field::SignupDate, "signup_date"),
    (Field::EngagementLabel, "engagement_label"),
    (Field::RescheduleUrl, "reschedule_url"),
    (Field::CancelUrl, "cancel_url"),
    (Field::ThankYouUrl, "thank_you_url"),
    (Field::UtmSource, "utm_source"),
    (Field::UtmMedium, "utm_medium"),
    (Field::UtmCampaign, "utm_campaign"),
    (Field::GdprStatus, "gdpr_status"),
    (Field::GdprDate, "gdpr_date"),
    (Field::Organization, "organization"),
    (Field::JobTitle, "job_title"),
];

/// Longest alias a person may configure, in characters.
const MAX_ALIAS_CHARS: usize = 100;

/// Body key names a marketer adds per field (`BRIDGE_FIELD_ALIASES`, a JSON object such as
/// `{"email":["e_mail","Email Address"]}`), tried before the built-in names. Keys compare like
/// the built-in ones: without case, spaces or punctuation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldAliases {
    rows: Vec<(Field, Vec<String>)>,
}

impl FieldAliases {
    /// Reads the JSON object; the error is one sentence naming what is wrong (and, for an unknown
    /// field, the known ones).
    pub fn parse_json(raw: &str) -> Result<Self, String> {
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(raw).map_err(|_| {
            "must be a JSON object of field name -> list of body keys, e.g. {\"email\":[\"e_mail\",\"Email Address\"]}"
                .to_owned()
        })?;
        let mut rows: Vec<(Field, Vec<String>)> = Vec::new();
        for (name, value) in object {
            let wanted = fields::normalize_key(&name);
            let field = FIELD_NAMES
                .iter()
                .find(|(_, known)| fields::key_matches(&wanted, known))
                .map(|(field, _)| *field)
                .ok_or_else(|| {
                    let known: Vec<&str> = FIELD_NAMES.iter().map(|(_, known)| *known).collect();
                    format!("unknown field {name:?}; known fields: {}", known.join(", "))
                })?;
            let names: Vec<String> = match value {
                serde_json::Value::String(one) => vec![one],
                serde_json::Value::Array(many) => many
                    .into_iter()
                    .map(|item| match item {
                        serde_json::Value::String(text) => Ok(text),
                        _ => Err(format!("the aliases of {name:?} must be strings")),
                    })
                    .collect::<Result<_, _>>()?,
                _ => return Err(format!("the aliases of {name:?} must be a list of body keys")),
            };
            if names.is_empty() || names.len() > fields::MAX_EXTRA_ALIASES {
                return Err(format!("{name:?} needs 1 to {} aliases", fields::MAX_EXTRA_ALIASES));
            }
            for alias in &names {
                if fields::normalize_key(alias).is_empty() || alias.chars().count() > MAX_ALIAS_CHARS {
                    return Err(format!(
                        "the alias {alias:?} of {name:?} must have a letter or digit and at most {MAX_ALIAS_CHARS} characters"
                    ));
                }
            }
            if rows.iter().any(|(seen, _)| *seen == field) {
                return Err(format!("the field {name:?} is named twice"));
            }
            rows.push((field, names));
        }
        Ok(Self { rows })
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

fn build_event(
    source: Source,
    kind: EventKind,
    body: &LooseBody<Field>,
    request: &RawRequest,
) -> Result<WebinarEvent, Rejection> {
    let contact = read_contact(body)?;
    let webinar = read_webinar(&source, body)?;
    let event_id = identity_hash(&source, kind, &contact.email, &webinar, body);
    Ok(WebinarEvent {
        schema: EVENT_SCHEMA_VERSION,
        event_id,
        source,
        kind,
        // The platform sends no event time; arrival is the best we know.
        occurred_at: request.received_at,
        received_at: request.received_at,
        contact,
        webinar,
        facts: read_facts(body),
    })
}

/// The platform sends no delivery id, so the id is a hash of what identifies the event: kind,
/// e-mail, webinar, session id and session date, and what identifies the registration it
/// belongs to (registrant id, personal room URL, sign-up time), all normalized. A redelivery
/// hashes the same whatever its key order, key spelling or encoding (JSON or form); a new session
/// of the same webinar, a new kind for the same person, or a new registration after a
/// cancellation (WebinarJam gives it a new registrant id and room URL) gets a new id.
fn identity_hash(
    source: &Source,
    kind: EventKind,
    email: &Email,
    webinar: &WebinarInfo,
    body: &LooseBody<Field>,
) -> EventId {
    let raw_date = body.get(Field::SessionDate).unwrap_or_default();
    let session_date = normalized_date(raw_date);
    let signup_date = normalized_date(body.get(Field::SignupDate).unwrap_or_default());
    EventId::hashed(
        source,
        &[
            kind.as_str().as_bytes(),
            email.as_str().as_bytes(),
            webinar.id.as_bytes(),
            webinar.session_id.as_deref().unwrap_or_default().as_bytes(),
            session_date.as_bytes(),
            body.get(Field::RegistrantId).unwrap_or_default().as_bytes(),
            webinar.join_url.as_deref().unwrap_or_default().as_bytes(),
            signup_date.as_bytes(),
        ],
    )
}

/// A date as sent, normalized but read without its zone, so a redelivery hashes the same whether
/// or not it repeats the `timezone` field.
fn normalized_date(raw: &str) -> String {
    fields::parse_loose_datetime(raw, None)
        .map(|local| local.naive_utc().to_string())
        .unwrap_or_else(|| raw.trim().to_owned())
}

fn read_contact(body: &LooseBody<Field>) -> Result<ContactInfo, Rejection> {
    let raw_email = body.get(Field::Email).ok_or_else(|| {
        Rejection::unprocessable(
            "missing_email",
            "The body has no e-mail address; map the registrant's e-mail to a field named 'email'.",
            "email",
        )
    })?;
    let email = Email::parse(raw_email).map_err(|error| {
        Rejection::unprocessable(
            "invalid_email",
            format!("The field 'email' is not a usable e-mail address: {error}."),
            "email",
        )
    })?;
    let (first_name, last_name) = read_names(body);
    Ok(ContactInfo { email, first_name, last_name, phone: read_phone(body) })
}

/// First and last name, or a single full name split at its first space.
fn read_names(body: &LooseBody<Field>) -> (Option<String>, Option<String>) {
    let first = body.get(Field::FirstName).map(str::to_owned);
    let last = body.get(Field::LastName).map(str::to_owned);
    if first.is_some() || last.is_some() {
        return (first, last);
    }
    let Some(full) = body.get(Field::FullName) else {
        return (None, None);
    };
    match full.split_once(' ') {
        Some((first, last)) => (Some(first.to_owned()), non_empty(last.trim())),
        None => (Some(full.to_owned()), None),
    }
}

/// `+49` and `15123456789` become `+49 15123456789`; a number that already starts with `+` is
/// kept as it is.
fn read_phone(body: &LooseBody<Field>) -> Option<String> {
    let phone = body.get(Field::Phone)?;
    match body.get(Field::PhoneCountryCode) {
        Some(code) if !phone.starts_with('+') => {
            let code = code.trim_start_matches('+');
            Some(format!("+{code} {phone}"))
        }
        _ => Some(phone.to_owned()),
    }
}

/// EverWebinar shows and sends times in its account default, Eastern Time, unless the webinar
/// names another zone (`reference/webinar-platforms.md` 1.2); WebinarJam dates without a zone
/// stay UTC.
pub const EVERWEBINAR_DEFAULT_TIMEZONE: &str = "America/New_York";

fn read_webinar(source: &Source, body: &LooseBody<Field>) -> Result<WebinarInfo, Rejection> {
    let name = body.get(Field::WebinarName).map(str::to_owned);
    // With only a name, the name is the best identity the platform gives us.
    let id = body.get(Field::WebinarId).map(str::to_owned).or_else(|| name.clone()).ok_or_else(|| {
        Rejection::unprocessable(
            "missing_webinar",
            "The body names no webinar; include a field 'webinar_id' (or at least 'webinar_name').",
            "webinar_id",
        )
    })?;
    let timezone = body.get(Field::Timezone).or(match source {
        Source::Everwebinar => Some(EVERWEBINAR_DEFAULT_TIMEZONE),
        _ => None,
    });
    Ok(WebinarInfo {
        id,
        name,
        session_id: body.get(Field::SessionId).map(str::to_owned),
        starts_at: body.get(Field::SessionDate).and_then(|raw| fields::parse_loose_datetime(raw, timezone)),
        timezone: timezone.map(str::to_owned),
        join_url: body.get(Field::JoinUrl).map(str::to_owned),
        replay_url: body.get(Field::ReplayUrl).map(str::to_owned),
        duration_minutes: body.get(Field::WebinarDuration).and_then(fields::parse_minutes),
    })
}

/// Measurements are optional and loosely typed: one that cannot be read is dropped, not refused.
fn read_facts(body: &LooseBody<Field>) -> Facts {
    Facts {
        intervals: Vec::new(),
        minutes_attended: body.get(Field::MinutesAttended).and_then(fields::parse_minutes),
        purchase_amount: body.get(Field::PurchaseAmount).and_then(Cents::parse_lenient),
        registrant_id: body.get(Field::RegistrantId).map(str::to_owned),
        engagement: None,
        fields: read_extra_fields(body),
    }
}

/// Links, UTM source, consent and job: mappable values (domain::fields). The phone WebinarJam
/// collects is the one it texts reminders to, so it is the SMS number too.
fn read_extra_fields(body: &LooseBody<Field>) -> std::collections::BTreeMap<String, String> {
    let mut out: std::collections::BTreeMap<String, String> = EXTRA_FIELDS
        .iter()
        .filter_map(|(field, name)| body.get(*field).map(|value| ((*name).to_owned(), value.to_owned())))
        .collect();
    if let Some(phone) = read_phone(body) {
        out.insert("sms_number".to_owned(), phone);
    }
    let timezone = body.get(Field::Timezone);
    if let Some(date) = body.get(Field::GdprDate).and_then(|raw| fields::parse_loose_datetime(raw, timezone)) {
        out.insert("gdpr_date".to_owned(), date.to_rfc3339());
    }
    out
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_aliases_resolve_without_case_or_separators() {
        for (raw, kind) in [
            ("registered", EventKind::Registered),
            ("Register", EventKind::Registered),
            ("attended_live", EventKind::Attended),
            ("no-show", EventKind::NoShow),
            ("noshow", EventKind::NoShow),
            ("did_not_attend", EventKind::NoShow),
            ("replay", EventKind::ReplayWatched),
            ("buyer", EventKind::Purchased),
            ("left_early", EventKind::LeftEarly),
            ("fully_attended", EventKind::FullyAttended),
        ] {
            assert_eq!(parse_kind(raw).unwrap(), kind, "{raw}");
        }
        let rejection = parse_kind("<script>").unwrap_err();
        assert_eq!(
            (rejection.status(), rejection.code, rejection.field.as_deref()),
            (422, "unknown_kind", Some("kind"))
        );
        assert!(!rejection.message.contains("script"));
    }

    #[test]
    fn every_design_kind_is_accepted_by_its_own_name() {
        for kind in EventKind::ALL {
            assert_eq!(parse_kind(kind.as_str()).unwrap(), kind);
        }
    }

    #[test]
    fn a_full_name_is_split_at_the_first_space() {
        let body = LooseBody::from_json(br#"{"name":"Anna Maria Schmidt"}"#, ALIASES).unwrap();
        assert_eq!(read_names(&body), (Some("Anna".into()), Some("Maria Schmidt".into())));
        let body = LooseBody::from_json(br#"{"name":"Cher"}"#, ALIASES).unwrap();
        assert_eq!(read_names(&body), (Some("Cher".into()), None));
        let body = LooseBody::from_json(br#"{"name":"Ignored Name","fname":"Erika"}"#, ALIASES).unwrap();
        assert_eq!(read_names(&body), (Some("Erika".into()), None));
    }

    #[test]
    fn phone_numbers_join_their_country_code() {
        let body = LooseBody::from_json(br#"{"phone":15123456789,"phone_country_code":"49"}"#, ALIASES).unwrap();
        assert_eq!(read_phone(&body).as_deref(), Some("+49 15123456789"));
        let body = LooseBody::from_json(br#"{"phone":"+4915123456789","phone_country_code":"+49"}"#, ALIASES).unwrap();
        assert_eq!(read_phone(&body).as_deref(), Some("+4915123456789"));
    }
}
