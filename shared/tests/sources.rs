//! Webhook sources, driven by the fixtures in `tests/fixtures/` and always through the router
//! (`sources::handle`), as the ingest function calls them.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use webinar_bridge::Secret;
use webinar_bridge::domain::{Cents, EventKind, Interval, Source, WebinarEvent};
use webinar_bridge::sources::{self, RawRequest, Rejection, SourceOutcome, SourceSecrets};

const WEBINARJAM_SECRET: &str = "wj_3f9c1d7e5b2a4c6e8f0a1b3c5d7e9f21";
const EVERWEBINAR_SECRET: &str = "ew_8a6c4e2f0b9d7f5a3c1e9b7d5f3a1c08";
/// The secret of the test vector in webinar-platforms.md 2.2.
const ZOOM_SECRET: &str = "example_secret_token";
/// The example secret of the Standard Webhooks specification.
const GENERIC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// `x-zm-request-timestamp` of the test vector (2025-12-30T10:00:00Z).
const ZOOM_VECTOR_TIMESTAMP: i64 = 1_767_088_800;
const ZOOM_VECTOR_SIGNATURE: &str = "v0=08ab6732c9e6003168aafb187af2299232f07b4ccd32f902fef93d97f70e1209";
const ZOOM_VECTOR_ENCRYPTED_TOKEN: &str = "7e675c02622e933be24748e846a58602879cb206f665e4c1c3fdc4ec56822ec4";

// ---------------------------------------------------------------------------------------------
// Harness

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|error| panic!("fixture {path}: {error}"))
}

const JSON: (&str, &str) = ("Content-Type", "application/json");
const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

/// Every source enabled, as in a full deployment.
fn all_secrets() -> SourceSecrets {
    SourceSecrets {
        webinarjam: Some(Secret::new(WEBINARJAM_SECRET)),
        everwebinar: Some(Secret::new(EVERWEBINAR_SECRET)),
        zoom: Some(Secret::new(ZOOM_SECRET)),
        generic: Some(Secret::new(GENERIC_SECRET)),
    }
}

/// Ten seconds after the Zoom test vector was signed.
fn now() -> DateTime<Utc> {
    at(ZOOM_VECTOR_TIMESTAMP + 10)
}

fn at(unix_seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(unix_seconds, 0).unwrap()
}

fn time(rfc3339: &str) -> DateTime<Utc> {
    rfc3339.parse().unwrap()
}

fn post(path: &str, headers: &[(&str, &str)], body: &[u8]) -> RawRequest {
    let (path, query) = match path.split_once('?') {
        Some((path, query)) => (path, Some(query.to_owned())),
        None => (path, None),
    };
    RawRequest {
        method: "POST".into(),
        path: path.into(),
        query,
        headers: headers.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect(),
        body: Bytes::copy_from_slice(body),
        received_at: now(),
    }
}

fn handle(request: &RawRequest) -> Result<SourceOutcome, Rejection> {
    sources::handle(request, &all_secrets())
}

fn events(request: &RawRequest) -> Vec<WebinarEvent> {
    match handle(request) {
        Ok(SourceOutcome::Events(events)) => events,
        other => panic!("expected events, got {other:?}"),
    }
}

fn one_event(request: &RawRequest) -> WebinarEvent {
    let mut events = events(request);
    assert_eq!(events.len(), 1, "{events:?}");
    events.remove(0)
}

fn rejection(request: &RawRequest) -> Rejection {
    match handle(request) {
        Err(rejection) => rejection,
        Ok(outcome) => panic!("expected a rejection, got {outcome:?}"),
    }
}

/// Status, code and field of a rejection, the parts a sender sees besides the message.
fn summary(rejection: &Rejection) -> (u16, &'static str, Option<&str>) {
    (rejection.status(), rejection.code, rejection.field.as_deref())
}

/// A rejection message must not echo request content or a secret.
fn assert_message_echoes_nothing(rejection: &Rejection, forbidden: &[&str]) {
    for needle in forbidden.iter().chain(&[WEBINARJAM_SECRET, ZOOM_SECRET, GENERIC_SECRET]) {
        assert!(!rejection.message.contains(needle), "message {:?} echoes {needle:?}", rejection.message);
    }
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

// ---------------------------------------------------------------------------------------------
// WebinarJam and EverWebinar

mod sources_webinarjam {
    use super::*;

    fn webinarjam_bearer() -> (&'static str, String) {
        ("Authorization", format!("Bearer {WEBINARJAM_SECRET}"))
    }

    pub(super) fn webinarjam(kind: &str, content_type: Option<(&str, &str)>, body: &[u8]) -> RawRequest {
        let (name, value) = webinarjam_bearer();
        let mut headers = vec![(name, value.as_str())];
        headers.extend(content_type);
        post(&format!("/hooks/webinarjam/{kind}"), &headers, body)
    }

    #[test]
    fn webinarjam_json_registration_maps_every_field() {
        let event = one_event(&webinarjam("registered", Some(JSON), &fixture("webinarjam/registered.json")));
        assert_eq!(event.source, Source::Webinarjam);
        assert_eq!(event.kind, EventKind::Registered);
        assert_eq!(event.occurred_at, now(), "the platform sends no time");
        assert_eq!(event.received_at, now());
        assert!(event.event_id.as_str().starts_with("webinarjam:"));

        assert_eq!(event.contact.email.as_str(), "erika@example.com");
        assert_eq!(event.contact.first_name.as_deref(), Some("Erika"));
        assert_eq!(event.contact.last_name.as_deref(), Some("Muster"));
        assert_eq!(event.contact.phone.as_deref(), Some("+49 15123456789"));

        assert_eq!(event.webinar.id, "123");
        assert_eq!(event.webinar.name.as_deref(), Some("Masterclass"));
        assert_eq!(event.webinar.session_id.as_deref(), Some("45"));
        // 19:00 in Berlin in February (CET, UTC+1) is 18:00 UTC.
        assert_eq!(event.webinar.starts_at, Some(time("2026-02-10T18:00:00Z")));
        assert_eq!(event.webinar.timezone.as_deref(), Some("Europe/Berlin"));
        assert_eq!(event.webinar.join_url.as_deref(), Some("https://event.webinarjam.com/live/EXAMPLE"));
        assert_eq!(event.webinar.replay_url.as_deref(), Some("https://event.webinarjam.com/replay/EXAMPLE"));
        assert_eq!(event.facts.registrant_id.as_deref(), Some("98765"));
        assert_eq!(event.facts.minutes_attended, None);
    }

    #[test]
    fn webinarjam_form_twin_is_the_same_event_with_the_same_id() {
        let from_json = one_event(&webinarjam("registered", Some(JSON), &fixture("webinarjam/registered.json")));
        let from_form = one_event(&webinarjam("registered", Some(FORM), &fixture("webinarjam/registered.form")));
        assert_eq!(from_form, from_json);
    }

    #[test]
    fn webinarjam_nested_json_and_form_resolve_aliases() {
        let token_url = format!("/hooks/webinarjam/attended_live?token={WEBINARJAM_SECRET}");
        let from_json = one_event(&post(&token_url, &[JSON], &fixture("webinarjam/attended_nested.json")));
        let from_form = one_event(&post(&token_url, &[FORM], &fixture("webinarjam/attended_nested.form")));
        for event in [&from_json, &from_form] {
            assert_eq!(event.kind, EventKind::Attended);
            assert_eq!(event.contact.email.as_str(), "erika@example.com", "trimmed and lower-cased");
            assert_eq!(event.contact.first_name.as_deref(), Some("Erika"), "full name split");
            assert_eq!(event.contact.last_name.as_deref(), Some("Muster"));
            assert_eq!(event.webinar.id, "123", "webinar.id / webinar[id]");
            assert_eq!(event.webinar.name.as_deref(), Some("Masterclass"), "webinar.name is not the person's name");
            assert_eq!(event.webinar.session_id.as_deref(), Some("45"), "webinar.schedule.id");
            assert_eq!(event.webinar.starts_at, Some(time("2026-02-10T18:00:00Z")), "19:00 at GMT+1");
            assert_eq!(event.facts.minutes_attended, Some(42), "00:42:10");
            assert_eq!(event.facts.registrant_id.as_deref(), Some("98765"), "registrant.id");
        }
        assert_eq!(from_json.contact.phone.as_deref(), Some("+49 15123456789"));
        assert_eq!(from_json.webinar.duration_minutes, Some(90), "webinar.duration is the webinar's length");
        assert_eq!(from_json.webinar.join_url.as_deref(), Some("https://event.webinarjam.com/live/EXAMPLE"));
        assert_eq!(from_json.event_id, from_form.event_id, "same identity fields, same id");
    }

    #[test]
    fn webinarjam_short_alias_names_and_utc_offsets() {
        let event = one_event(&webinarjam("left-early", Some(JSON), &fixture("webinarjam/left_early_aliases.json")));
        assert_eq!(event.kind, EventKind::LeftEarly);
        assert_eq!(event.contact.email.as_str(), "max@example.org");
        assert_eq!(event.contact.first_name.as_deref(), Some("Max"));
        assert_eq!(event.contact.last_name.as_deref(), Some("Mustermann"));
        assert_eq!(event.webinar.id, "777");
        assert_eq!(event.webinar.name.as_deref(), Some("Sales Funnel Live"));
        assert_eq!(event.webinar.session_id.as_deref(), Some("12"));
        assert_eq!(event.webinar.starts_at, Some(time("2026-03-05T07:00:00Z")), "9:00 at GMT+2");
        assert_eq!(event.facts.minutes_attended, Some(18));
        assert_eq!(event.facts.registrant_id.as_deref(), Some("5551"));
    }

    #[test]
    fn webinarjam_purchase_form_without_content_type_is_sniffed() {
        let event = one_event(&webinarjam("buyer", None, &fixture("webinarjam/purchased.form")));
        assert_eq!(event.kind, EventKind::Purchased);
        assert_eq!(event.contact.first_name.as_deref(), Some("Lena"));
        assert_eq!(event.contact.last_name.as_deref(), Some("Beispiel"));
        assert_eq!(event.webinar.id, "abcd1234", "webinar_hash");
        assert_eq!(event.webinar.name.as_deref(), Some("Masterclass"), "'webinar' as a plain value is its name");
        assert_eq!(event.facts.purchase_amount, Some(Cents(49_700)));
        assert_eq!(event.facts.registrant_id.as_deref(), Some("5552"));

        let sniffed_json = one_event(&webinarjam("registered", None, &fixture("webinarjam/registered.json")));
        assert_eq!(sniffed_json.webinar.id, "123");
    }

    #[test]
    fn webinarjam_unreadable_measurements_are_dropped_not_refused() {
        let body = br#"{"email":"erika@example.com","webinar_id":1,"time_live":"a while","revenue_live":"free"}"#;
        let event = one_event(&webinarjam("purchased", Some(JSON), body));
        assert_eq!(event.facts.minutes_attended, None);
        assert_eq!(event.facts.purchase_amount, None);
    }

    #[test]
    fn webinarjam_every_kind_and_alias_is_routed() {
        let body = fixture("webinarjam/registered.json");
        for (path_kind, kind) in [
            ("registered", EventKind::Registered),
            ("registration", EventKind::Registered),
            ("cancelled", EventKind::Cancelled),
            ("attend", EventKind::Attended),
            ("left_early", EventKind::LeftEarly),
            ("fully_attended", EventKind::FullyAttended),
            ("no_show", EventKind::NoShow),
            ("no-show", EventKind::NoShow),
            ("noshow", EventKind::NoShow),
            ("did_not_attend", EventKind::NoShow),
            ("replay", EventKind::ReplayWatched),
            ("replay_watched", EventKind::ReplayWatched),
            ("purchase", EventKind::Purchased),
        ] {
            assert_eq!(one_event(&webinarjam(path_kind, Some(JSON), &body)).kind, kind, "{path_kind}");
        }
    }

    #[test]
    fn everwebinar_uses_its_own_source_and_secret() {
        let body = fixture("webinarjam/everwebinar_registered.json");
        let bearer = format!("Bearer {EVERWEBINAR_SECRET}");
        let request = post("/hooks/everwebinar/registration", &[("authorization", &bearer), JSON], &body);
        let event = one_event(&request);
        assert_eq!(event.source, Source::Everwebinar);
        assert_eq!(event.source.tool_name(), "EverWebinar");
        assert!(event.event_id.as_str().starts_with("everwebinar:"));
        assert_eq!(event.kind, EventKind::Registered);
        assert_eq!(event.webinar.id, "9001", "webinar_id wins over webinar_hash");
        assert_eq!(event.webinar.session_id.as_deref(), Some("99"));
        assert_eq!(event.webinar.starts_at, Some(time("2026-03-01T14:00:00Z")), "9:00 at GMT-5");

        let webinarjam_secret_on_everwebinar = post(
            "/hooks/everwebinar/registered",
            &[("Authorization", &format!("Bearer {WEBINARJAM_SECRET}")), JSON],
            &body,
        );
        assert_eq!(summary(&rejection(&webinarjam_secret_on_everwebinar)), (401, "invalid_secret", None));
    }

    #[test]
    fn an_everwebinar_date_without_a_zone_is_read_in_eastern_time() {
        let bearer = format!("Bearer {EVERWEBINAR_SECRET}");
        let winter = br#"{"email":"erika@example.com","webinar_id":"9001","date":"2026-01-20 09:00"}"#;
        let event = one_event(&post("/hooks/everwebinar/registered", &[("authorization", &bearer), JSON], winter));
        assert_eq!(event.webinar.starts_at, Some(time("2026-01-20T14:00:00Z")), "9:00 EST is 14:00 UTC");
        assert_eq!(event.webinar.timezone.as_deref(), Some("America/New_York"));

        let summer = br#"{"email":"erika@example.com","webinar_id":"9001","date":"2026-07-20 09:00"}"#;
        let event = one_event(&post("/hooks/everwebinar/registered", &[("authorization", &bearer), JSON], summer));
        assert_eq!(event.webinar.starts_at, Some(time("2026-07-20T13:00:00Z")), "9:00 EDT is 13:00 UTC");

        let own_zone = br#"{"email":"erika@example.com","webinar_id":"9001","date":"2026-01-20 09:00","timezone":"Europe/Berlin"}"#;
        let event = one_event(&post("/hooks/everwebinar/registered", &[("authorization", &bearer), JSON], own_zone));
        assert_eq!(event.webinar.starts_at, Some(time("2026-01-20T08:00:00Z")), "the webinar's own zone wins");

        let webinarjam_body = br#"{"email":"erika@example.com","webinar_id":"123","date":"2026-01-20 09:00"}"#;
        let event = one_event(&webinarjam("registered", Some(JSON), webinarjam_body));
        assert_eq!(event.webinar.starts_at, Some(time("2026-01-20T09:00:00Z")), "WebinarJam keeps UTC");
    }

    #[test]
    fn webinarjam_redelivery_gets_the_same_id_and_new_facts_a_new_one() {
        let original = one_event(&webinarjam("attended", Some(JSON), &fixture("webinarjam/registered.json")));
        let reordered = br#"{"email":"ERIKA@example.com","date":"2026-02-10 19:00","schedule":"45","webinar_id":"123","first_name":"E.",
            "live_room_url":"https://event.webinarjam.com/live/EXAMPLE","lead_id":"98765"}"#;
        let redelivered = one_event(&webinarjam("attend", Some(JSON), reordered));
        assert_eq!(redelivered.event_id, original.event_id, "identity fields only, normalized");

        let other_session =
            br#"{"email":"erika@example.com","webinar_id":123,"schedule":45,"date":"2026-02-17 19:00"}"#;
        assert_ne!(one_event(&webinarjam("attended", Some(JSON), other_session)).event_id, original.event_id);
        let other_kind = one_event(&webinarjam("no_show", Some(JSON), &fixture("webinarjam/registered.json")));
        assert_ne!(other_kind.event_id, original.event_id);
    }

    /// Registered, cancelled, registered again for the same session: WebinarJam makes the second
    /// registration a new registrant (new id, new personal room URL), so it is a new event, while
    /// the same webhook sent again is still the same one.
    #[test]
    fn webinarjam_registration_after_a_cancellation_is_a_new_event() {
        let first = one_event(&webinarjam("registered", Some(JSON), &fixture("webinarjam/registered.json")));
        let resent = one_event(&webinarjam("registered", Some(FORM), &fixture("webinarjam/registered.form")));
        assert_eq!(resent.event_id, first.event_id, "the same webhook again is a duplicate");
        let again = String::from_utf8(fixture("webinarjam/registered.json"))
            .unwrap()
            .replace("98765", "98801")
            .replace("live/EXAMPLE", "live/EXAMPLE-2");
        let again = one_event(&webinarjam("registered", Some(JSON), again.as_bytes()));
        assert_ne!(again.event_id, first.event_id, "a new registrant id and room make a new registration");
        let signed_up_later = br#"{"email":"erika@example.com","webinar_id":123,"schedule":45,"date":"2026-02-10 19:00","signup_date":"2026-02-03 08:15:00"}"#;
        let signed_up_first = br#"{"email":"erika@example.com","webinar_id":123,"schedule":45,"date":"2026-02-10 19:00","signup_date":"2026-02-01 10:12:00"}"#;
        let (later, earlier) = (
            one_event(&webinarjam("registered", Some(JSON), signed_up_later)),
            one_event(&webinarjam("registered", Some(JSON), signed_up_first)),
        );
        assert_ne!(later.event_id, earlier.event_id, "a later sign-up time makes a new registration");
    }

    #[test]
    fn webinarjam_webinar_name_alone_serves_as_id() {
        let event =
            one_event(&webinarjam("registered", Some(JSON), br#"{"email":"a@example.com","webinar":"Masterclass"}"#));
        assert_eq!(event.webinar.id, "Masterclass");
        assert_eq!(event.webinar.name.as_deref(), Some("Masterclass"));
    }

    #[test]
    fn webinarjam_authentication() {
        let body = fixture("webinarjam/registered.json");
        let missing = post("/hooks/webinarjam/registered", &[JSON], &body);
        assert_eq!(summary(&rejection(&missing)), (401, "missing_secret", None));

        let wrong = post("/hooks/webinarjam/registered", &[("Authorization", "Bearer guess-123"), JSON], &body);
        let wrong_rejection = rejection(&wrong);
        assert_eq!(summary(&wrong_rejection), (401, "invalid_secret", None));
        assert_message_echoes_nothing(&wrong_rejection, &["guess-123"]);

        let wrong_token = post("/hooks/webinarjam/registered?token=guess-123", &[JSON], &body);
        assert_eq!(summary(&rejection(&wrong_token)), (401, "invalid_secret", None));

        let lowercase_scheme = format!("bearer {WEBINARJAM_SECRET}");
        assert!(
            handle(&post("/hooks/webinarjam/registered", &[("authorization", &lowercase_scheme), JSON], &body)).is_ok()
        );
    }

    #[test]
    fn webinarjam_authenticates_before_looking_at_anything_else() {
        let request = post("/hooks/webinarjam/not-a-kind", &[("Content-Type", "text/csv")], b"\xff\xfe garbage");
        assert_eq!(rejection(&request).status(), 401);
    }

    #[test]
    fn webinarjam_unknown_kind_lists_the_valid_ones() {
        let rejection = rejection(&webinarjam("webinar_joined_zz", Some(JSON), &fixture("webinarjam/registered.json")));
        assert_eq!(summary(&rejection), (422, "unknown_kind", Some("kind")));
        assert!(rejection.message.contains("no_show") && rejection.message.contains("replay_watched"));
        assert_message_echoes_nothing(&rejection, &["webinar_joined_zz"]);
    }

    #[test]
    fn webinarjam_invalid_and_missing_email() {
        let invalid = rejection(&webinarjam("registered", Some(JSON), &fixture("webinarjam/invalid_email.json")));
        assert_eq!(summary(&invalid), (422, "invalid_email", Some("email")));
        assert!(invalid.message.contains("'@'"), "explains what is wrong: {}", invalid.message);
        assert_message_echoes_nothing(&invalid, &["typo"]);

        let missing = rejection(&webinarjam("registered", Some(FORM), &fixture("webinarjam/missing_email.form")));
        assert_eq!(summary(&missing), (422, "missing_email", Some("email")));
    }

    #[test]
    fn webinarjam_missing_webinar() {
        let rejection = rejection(&webinarjam("registered", Some(JSON), &fixture("webinarjam/missing_webinar.json")));
        assert_eq!(summary(&rejection), (422, "missing_webinar", Some("webinar_id")));
    }

    #[test]
    fn webinarjam_malformed_json_names_the_position_only() {
        let malformed = rejection(&webinarjam("registered", Some(JSON), &fixture("webinarjam/malformed.json")));
        assert_eq!(summary(&malformed), (400, "malformed_json", None));
        assert!(malformed.message.contains("line 1"), "{}", malformed.message);
        assert_message_echoes_nothing(&malformed, &["erika", "123"]);

        let not_an_object = rejection(&webinarjam("registered", Some(JSON), br#"["email","a@example.com"]"#));
        assert_eq!(not_an_object.status(), 400);
    }

    #[test]
    fn webinarjam_wrong_content_type_is_415() {
        for content_type in ["text/plain", "multipart/form-data; boundary=x", "application/xml"] {
            let request =
                webinarjam("registered", Some(("Content-Type", content_type)), &fixture("webinarjam/registered.json"));
            assert_eq!(summary(&rejection(&request)), (415, "unsupported_media_type", None), "{content_type}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Zoom

mod sources_zoom {
    use super::*;

    fn zoom_signature(timestamp: i64, body: &[u8]) -> String {
        let message = [format!("v0:{timestamp}:").as_bytes(), body].concat();
        format!("v0={}", hex::encode(hmac_sha256(ZOOM_SECRET.as_bytes(), &message)))
    }

    fn zoom_signed_at(timestamp: i64, body: &[u8]) -> RawRequest {
        let signature = zoom_signature(timestamp, body);
        let timestamp = timestamp.to_string();
        post(
            "/hooks/zoom",
            &[
                ("content-type", "application/json; charset=utf-8"),
                ("x-zm-request-timestamp", &timestamp),
                ("x-zm-signature", &signature),
                ("user-agent", "Zoom Marketplace/1.0a"),
            ],
            body,
        )
    }

    pub(super) fn zoom(body: &[u8]) -> RawRequest {
        zoom_signed_at(ZOOM_VECTOR_TIMESTAMP, body)
    }

    #[test]
    fn zoom_test_vector_of_the_reference_verifies() {
        let body = fixture("zoom/registration_created.json");
        assert_eq!(body.len(), 477, "the fixture is the reference body byte for byte");
        assert_eq!(zoom_signature(ZOOM_VECTOR_TIMESTAMP, &body), ZOOM_VECTOR_SIGNATURE);

        let request = post(
            "/hooks/zoom",
            &[
                ("Content-Type", "application/json"),
                ("x-zm-request-timestamp", "1767088800"),
                ("x-zm-signature", ZOOM_VECTOR_SIGNATURE),
            ],
            &body,
        );
        let event = one_event(&request);
        assert_eq!(event.source, Source::Zoom);
        assert_eq!(event.kind, EventKind::Registered);
        assert_eq!(event.occurred_at, DateTime::from_timestamp_millis(1_767_088_800_123).unwrap(), "event_ts in ms");
        assert_eq!(event.contact.email.as_str(), "erika@example.com");
        assert_eq!(event.contact.first_name.as_deref(), Some("Erika"));
        assert_eq!(event.contact.last_name.as_deref(), Some("Muster"));
        assert_eq!(event.webinar.id, "85012345678", "a number in registration events");
        assert_eq!(event.webinar.name.as_deref(), Some("Demo Webinar"));
        assert_eq!(event.webinar.session_id.as_deref(), Some("k7Zq9XvRTn2wYb3cQp1Lmg=="));
        assert_eq!(event.webinar.starts_at, Some(time("2026-01-15T17:00:00Z")));
        assert_eq!(event.webinar.timezone.as_deref(), Some("Europe/Berlin"));
        assert_eq!(event.webinar.duration_minutes, Some(60));
        assert_eq!(event.webinar.join_url.as_deref(), Some("https://us06web.zoom.us/w/85012345678?tk=EXAMPLE"));
        assert_eq!(event.facts.registrant_id.as_deref(), Some("reg_AbC123"));
    }

    #[test]
    fn zoom_url_validation_answers_the_challenge() {
        let outcome = handle(&zoom(&fixture("zoom/url_validation.json"))).unwrap();
        assert_eq!(
            outcome,
            SourceOutcome::UrlValidation {
                plain_token: "qgg8vlvZRS6UYooatFL8Aw".into(),
                encrypted_token: ZOOM_VECTOR_ENCRYPTED_TOKEN.into(),
            }
        );
        let without_token = zoom(br#"{"event":"endpoint.url_validation","payload":{},"event_ts":1767088800000}"#);
        assert_eq!(summary(&rejection(&without_token)), (400, "malformed_body", Some("payload.plainToken")));
    }

    #[test]
    fn zoom_url_validation_must_be_signed_too() {
        let mut request = zoom(&fixture("zoom/url_validation.json"));
        request.headers.retain(|(name, _)| name != "x-zm-signature");
        assert_eq!(summary(&rejection(&request)), (401, "invalid_signature", None));
    }

    #[test]
    fn zoom_registration_kinds() {
        for (name, kind, email) in [
            ("registration_created", EventKind::Registered, "erika@example.com"),
            ("registration_approved", EventKind::Registered, "max.mustermann@example.com"),
            ("registration_cancelled", EventKind::Cancelled, "erika@example.com"),
            ("registration_denied", EventKind::Cancelled, "lena@example.org"),
        ] {
            let event = one_event(&zoom(&fixture(&format!("zoom/{name}.json"))));
            assert_eq!((event.kind, event.contact.email.as_str()), (kind, email), "{name}");
            assert_eq!(event.webinar.id, "85012345678", "{name}");
        }
        let approved = one_event(&zoom(&fixture("zoom/registration_approved.json")));
        assert_eq!(approved.contact.phone.as_deref(), Some("+49 15123456789"));
        let cancelled = one_event(&zoom(&fixture("zoom/registration_cancelled.json")));
        assert_eq!(cancelled.webinar.join_url, None, "cancellations carry no join URL");
    }

    #[test]
    fn zoom_participant_joined_is_attendance_with_an_open_interval() {
        let event = one_event(&zoom(&fixture("zoom/participant_joined.json")));
        assert_eq!(event.kind, EventKind::Attended);
        assert_eq!(event.webinar.id, "85012345678", "a string in participant events, same id as registrations");
        assert_eq!(event.webinar.session_id.as_deref(), Some("Qm9vbXNlc3Npb24xMjM="));
        assert_eq!(event.facts.intervals, vec![Interval { start: time("2026-01-15T17:02:00Z"), end: None }]);
        assert_eq!(event.facts.registrant_id.as_deref(), Some("reg_AbC123"));
        assert_eq!(event.occurred_at, DateTime::from_timestamp_millis(1_768_496_520_000).unwrap());
        assert_eq!(event.contact.first_name, None, "user_name is a display name, never a first name");
        assert_eq!(event.contact.last_name, None);
    }

    #[test]
    fn zoom_participant_left_closes_the_interval() {
        let event = one_event(&zoom(&fixture("zoom/participant_left.json")));
        assert_eq!(event.kind, EventKind::Attended);
        assert_eq!(
            event.facts.intervals,
            vec![Interval { start: time("2026-01-15T17:02:00Z"), end: Some(time("2026-01-15T17:40:00Z")) }]
        );
    }

    #[test]
    fn zoom_guest_participant_without_email_is_acknowledged_and_ignored() {
        match handle(&zoom(&fixture("zoom/participant_joined_guest.json"))).unwrap() {
            SourceOutcome::Ignored { reason } => assert!(reason.starts_with("participant has no e-mail"), "{reason}"),
            other => panic!("expected ignored, got {other:?}"),
        }
    }

    fn ignored_reason(request: &RawRequest) -> String {
        match handle(request).unwrap() {
            SourceOutcome::Ignored { reason } => reason,
            other => panic!("expected ignored, got {other:?}"),
        }
    }

    #[test]
    fn zoom_pending_registration_counts_only_once_approved() {
        let created = String::from_utf8(fixture("zoom/registration_created.json"))
            .unwrap()
            .replace(r#""status":"approved""#, r#""status":"pending""#);
        assert!(created.contains(r#""status":"pending""#));
        let reason = ignored_reason(&zoom(created.as_bytes()));
        assert!(reason.contains("pending approval"), "{reason}");

        let approved = created
            .replace("webinar.registration_created", "webinar.registration_approved")
            .replace(r#""status":"pending""#, r#""status":"approved""#);
        let event = one_event(&zoom(approved.as_bytes()));
        assert_eq!((event.kind, event.contact.email.as_str()), (EventKind::Registered, "erika@example.com"));
    }

    #[test]
    fn zoom_host_co_host_and_panelist_never_become_contacts() {
        let joined = String::from_utf8(fixture("zoom/participant_joined.json")).unwrap();
        let unregistered = joined.replace(r#","registrant_id":"reg_AbC123""#, "");
        let host = unregistered
            .replace(r#""id":"","email":"erika@example.com""#, r#""id":"HoSt_1","email":"host@example.com""#);
        assert!(ignored_reason(&zoom(host.as_bytes())).contains("host"));
        for role in ["host", "co-host", "panelist"] {
            let staff = unregistered.replace(r#""id":"","#, &format!(r#""id":"","role":"{role}","#));
            assert!(ignored_reason(&zoom(staff.as_bytes())).contains("staff"), "{role}");
        }
        let attendee_role = unregistered.replace(r#""id":"","#, r#""id":"","role":"attendee","#);
        assert_eq!(one_event(&zoom(attendee_role.as_bytes())).kind, EventKind::Attended);
        let registered_panelist = joined.replace(r#""id":"","#, r#""id":"","role":"panelist","#);
        assert_eq!(one_event(&zoom(registered_panelist.as_bytes())).kind, EventKind::Attended, "registered: a contact");
    }

    #[test]
    fn zoom_recurring_occurrences_keep_their_own_webinar_key() {
        let registration = String::from_utf8(fixture("zoom/registration_created.json")).unwrap().replace(
            r#""type":5,"#,
            r#""type":9,"occurrences":[{"occurrence_id":"1768496400000","start_time":"2026-01-15T17:00:00Z"},{"occurrence_id":"1769101200000","start_time":"2026-01-22T17:00:00Z"}],"#,
        );
        let registered = events(&zoom(registration.as_bytes()));
        let keys: Vec<_> = registered.iter().map(|event| event.webinar.id.as_str()).collect();
        assert_eq!(keys, ["85012345678@1768496400000", "85012345678@1769101200000"]);
        assert_eq!(registered[1].webinar.starts_at, Some(time("2026-01-22T17:00:00Z")));
        assert_ne!(registered[0].event_id, registered[1].event_id, "one event per occurrence");

        let joined = String::from_utf8(fixture("zoom/participant_joined.json"))
            .unwrap()
            .replace(r#""type":5,"#, r#""type":9,"#)
            .replace(r#""start_time":"2026-01-15T17:00:00Z""#, r#""start_time":"2026-01-22T17:00:00Z""#);
        let attended = one_event(&zoom(joined.as_bytes()));
        assert_eq!(attended.webinar.id, "85012345678@1769101200000", "the second occurrence only");

        let single = one_event(&zoom(&fixture("zoom/participant_joined.json")));
        assert_eq!(single.webinar.id, "85012345678", "a single webinar keeps its plain id");
    }

    #[test]
    fn zoom_webinar_ended_is_recorded_with_its_occurrence() {
        match handle(&zoom(&fixture("zoom/webinar_ended.json"))).unwrap() {
            SourceOutcome::ZoomEnded(ended) => {
                assert_eq!((ended.webinar_id.as_str(), ended.uuid.as_str()), ("85012345678", "Qm9vbXNlc3Npb24xMjM="));
                assert_eq!(ended.ended_at, time("2026-01-15T18:05:00Z"));
            }
            other => panic!("expected an ended occurrence, got {other:?}"),
        }
    }

    #[test]
    fn zoom_participant_without_e_mail_but_with_a_registrant_id_is_left_to_matching() {
        let body = String::from_utf8(fixture("zoom/participant_joined.json"))
            .unwrap()
            .replace(r#""email":"erika@example.com""#, r#""email":"""#);
        assert!(body.contains(r#""email":"""#));
        match handle(&zoom(body.as_bytes())).unwrap() {
            SourceOutcome::ZoomUnidentifiedParticipant { registrant_id } => assert_eq!(registrant_id, "reg_AbC123"),
            other => panic!("expected an unidentified participant, got {other:?}"),
        }
        let email = webinar_bridge::domain::Email::parse("erika@example.com").unwrap();
        let events = sources::zoom::participant_with_email(body.as_bytes(), time("2026-01-15T17:02:01Z"), &email)
            .expect("a participant event");
        assert_eq!(events.len(), 1);
        assert_eq!((events[0].kind, events[0].contact.email.as_str()), (EventKind::Attended, "erika@example.com"));
    }

    #[test]
    fn zoom_events_we_do_not_use_are_ignored() {
        let outcome = handle(&zoom(&fixture("zoom/webinar_started.json"))).unwrap();
        assert!(matches!(outcome, SourceOutcome::Ignored { .. }), "webinar_started: {outcome:?}");
        let recording = zoom(br#"{"event":"recording.completed","event_ts":1,"payload":{"object":{"id":1}}}"#);
        assert!(matches!(handle(&recording).unwrap(), SourceOutcome::Ignored { .. }));
    }

    #[test]
    fn zoom_bad_signatures_are_401() {
        let body = fixture("zoom/registration_created.json");
        let tampered = {
            let mut request = zoom(&body);
            request.body = Bytes::from(String::from_utf8(body.clone()).unwrap().replace("erika@", "mallory@"));
            request
        };
        let wrong_secret = {
            let mut request = zoom(&body);
            let signature = format!("v0={}", hex::encode(hmac_sha256(b"another_secret", b"v0:1767088800:")));
            request.headers.retain(|(name, _)| name != "x-zm-signature");
            request.headers.push(("x-zm-signature".into(), signature));
            request
        };
        let not_hex = post(
            "/hooks/zoom",
            &[JSON, ("x-zm-request-timestamp", "1767088800"), ("x-zm-signature", "v0=zzzz")],
            &body,
        );
        let unsigned = post("/hooks/zoom", &[JSON], &body);
        let no_timestamp = post("/hooks/zoom", &[JSON, ("x-zm-signature", ZOOM_VECTOR_SIGNATURE)], &body);
        for (name, request) in [
            ("tampered", tampered),
            ("wrong secret", wrong_secret),
            ("not hex", not_hex),
            ("unsigned", unsigned),
            ("no timestamp", no_timestamp),
        ] {
            let rejection = rejection(&request);
            assert_eq!(summary(&rejection), (401, "invalid_signature", None), "{name}");
            assert_message_echoes_nothing(&rejection, &["erika", "zzzz"]);
        }
    }

    #[test]
    fn zoom_stale_timestamps_are_refused_both_ways() {
        let body = fixture("zoom/registration_created.json");
        let received = now().timestamp();
        for offset in [-301, 301, -86_400] {
            let request = zoom_signed_at(received + offset, &body);
            assert_eq!(summary(&rejection(&request)), (401, "stale_timestamp", None), "offset {offset}");
        }
        for offset in [-300, 0, 300] {
            assert!(handle(&zoom_signed_at(received + offset, &body)).is_ok(), "offset {offset}");
        }
    }

    #[test]
    fn zoom_requires_json() {
        let body = fixture("zoom/registration_created.json");
        for content_type in [Some("text/plain"), Some("application/x-www-form-urlencoded"), None] {
            let mut request = zoom(&body);
            request.headers.retain(|(name, _)| name != "content-type");
            if let Some(content_type) = content_type {
                request.headers.push(("Content-Type".into(), content_type.into()));
            }
            assert_eq!(rejection(&request).status(), 415, "{content_type:?}");
        }
    }

    #[test]
    fn zoom_malformed_bodies_are_400() {
        for body in [&b"{\"event\":"[..], b"[1,2]", br#"{"payload":{}}"#, br#"{"event":42}"#] {
            assert_eq!(rejection(&zoom(body)).status(), 400, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn zoom_registration_with_invalid_email_is_422() {
        let rejection = rejection(&zoom(&fixture("zoom/registration_invalid_email.json")));
        assert_eq!(summary(&rejection), (422, "invalid_email", Some("payload.object.registrant.email")));
        assert_message_echoes_nothing(&rejection, &["typo@example"]);
    }

    #[test]
    fn zoom_redelivery_of_the_same_body_gets_the_same_id() {
        let body = fixture("zoom/participant_left.json");
        let first = one_event(&zoom_signed_at(now().timestamp() - 200, &body));
        let mut retry = zoom_signed_at(now().timestamp() + 100, &body);
        retry.received_at = now() + chrono::Duration::seconds(100);
        let second = one_event(&retry);
        assert_eq!(first.event_id, second.event_id);
        assert!(first.event_id.as_str().starts_with("zoom:"));
        let joined = one_event(&zoom(&fixture("zoom/participant_joined.json")));
        assert_ne!(joined.event_id, first.event_id);
    }
}

// ---------------------------------------------------------------------------------------------
// Generic (Standard Webhooks)

mod sources_generic {
    use super::*;

    const WEBHOOK_ID: &str = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";

    fn standard_webhooks_signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
        let key = BASE64.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
        let signed = [format!("{id}.{timestamp}.").as_bytes(), body].concat();
        format!("v1,{}", BASE64.encode(hmac_sha256(&key, &signed)))
    }

    fn generic_with_signature_header(tool: &str, timestamp: i64, signature_header: &str, body: &[u8]) -> RawRequest {
        let timestamp = timestamp.to_string();
        post(
            &format!("/hooks/generic/{tool}"),
            &[
                JSON,
                ("webhook-id", WEBHOOK_ID),
                ("webhook-timestamp", &timestamp),
                ("webhook-signature", signature_header),
            ],
            body,
        )
    }

    fn generic_signed(tool: &str, body: &[u8]) -> RawRequest {
        let timestamp = now().timestamp();
        let signature = standard_webhooks_signature(GENERIC_SECRET, WEBHOOK_ID, timestamp, body);
        generic_with_signature_header(tool, timestamp, &signature, body)
    }

    #[test]
    fn generic_engaged_needs_a_short_label_without_brackets() {
        let body = br#"{"kind":"engaged","label":"  Clicked   Offer ","contact":{"email":"erika@example.com"},"webinar":{"id":"4711"}}"#;
        let event = one_event(&generic_signed("Demio", body));
        assert_eq!(event.kind, EventKind::Engaged);
        assert_eq!(event.facts.engagement.as_deref(), Some("Clicked Offer"));

        let missing = br#"{"kind":"engaged","contact":{"email":"erika@example.com"},"webinar":{"id":"4711"}}"#;
        assert_eq!(summary(&rejection(&generic_signed("Demio", missing))), (422, "missing_label", Some("label")));
        let long = format!(
            r#"{{"kind":"engaged","label":"{}","contact":{{"email":"erika@example.com"}},"webinar":{{"id":"4711"}}}}"#,
            "x".repeat(61)
        );
        let refused = rejection(&generic_signed("Demio", long.as_bytes()));
        assert_eq!(summary(&refused), (422, "invalid_label", Some("label")));
        assert!(refused.message.contains("60 characters"), "{}", refused.message);
        let bracket = br#"{"kind":"engaged","label":"Offer] [x","contact":{"email":"erika@example.com"},"webinar":{"id":"4711"}}"#;
        assert_eq!(summary(&rejection(&generic_signed("Demio", bracket))), (422, "invalid_label", Some("label")));
    }

    #[test]
    fn webinarjam_engaged_takes_its_label_from_the_rule_url() {
        let bearer = format!("Bearer {WEBINARJAM_SECRET}");
        let body = fixture("webinarjam/registered.json");
        let clicked = one_event(&post(
            "/hooks/webinarjam/engaged?label=Clicked%20Offer",
            &[("authorization", &bearer), JSON],
            &body,
        ));
        assert_eq!((clicked.kind, clicked.facts.engagement.as_deref()), (EventKind::Engaged, Some("Clicked Offer")));
        let asked = one_event(&post(
            "/hooks/webinarjam/engaged?label=Asked+Question",
            &[("authorization", &bearer), JSON],
            &body,
        ));
        assert_eq!(asked.facts.engagement.as_deref(), Some("Asked Question"));
        assert_ne!(clicked.event_id, asked.event_id, "another label is another event");
        let empty = post("/hooks/webinarjam/engaged?label=%20", &[("authorization", &bearer), JSON], &body);
        assert_eq!(summary(&rejection(&empty)), (422, "invalid_label", Some("label")));
    }

    fn generic_bearer(tool: &str, body: &[u8]) -> RawRequest {
        let bearer = format!("Bearer {GENERIC_SECRET}");
        post(&format!("/hooks/generic/{tool}"), &[JSON, ("Authorization", &bearer)], body)
    }

    #[test]
    fn generic_signed_event_maps_every_field() {
        let event = one_event(&generic_signed("Livestorm", &fixture("generic/registered.json")));
        assert_eq!(event.source, Source::Generic { tool: "Livestorm".into() });
        assert_eq!(
            event.event_id.as_str(),
            format!("generic:Livestorm:{WEBHOOK_ID}"),
            "the webhook-id header, scoped to the tool"
        );
        assert_eq!(event.kind, EventKind::Registered);
        assert_eq!(event.occurred_at, time("2026-01-10T08:15:00Z"));
        assert_eq!(event.received_at, now());
        assert_eq!(event.contact.email.as_str(), "erika@example.com");
        assert_eq!(event.contact.first_name.as_deref(), Some("Erika"));
        assert_eq!(event.contact.last_name.as_deref(), Some("Muster"));
        assert_eq!(event.contact.phone.as_deref(), Some("+49 15123456789"));
        assert_eq!(event.webinar.id, "4711", "a number becomes its decimal text");
        assert_eq!(event.webinar.name.as_deref(), Some("Livestorm Product Tour"));
        assert_eq!(event.webinar.session_id.as_deref(), Some("sess_2026_01_15"));
        assert_eq!(event.webinar.starts_at, Some(time("2026-01-15T17:00:00Z")));
        assert_eq!(event.webinar.timezone.as_deref(), Some("Europe/Berlin"));
        assert_eq!(event.webinar.join_url.as_deref(), Some("https://app.livestorm.co/p/EXAMPLE/live"));
        assert_eq!(event.webinar.duration_minutes, Some(45));
    }

    #[test]
    fn generic_batch_gets_one_event_per_element_with_stable_ids() {
        let events = events(&generic_signed("Livestorm", &fixture("generic/batch.json")));
        let ids: Vec<&str> = events.iter().map(|event| event.event_id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "generic:Livestorm:evt_0001",
                &format!("generic:Livestorm:{WEBHOOK_ID}:1"),
                &format!("generic:Livestorm:{WEBHOOK_ID}:2")
            ]
        );
        let kinds: Vec<EventKind> = events.iter().map(|event| event.kind).collect();
        assert_eq!(kinds, [EventKind::Attended, EventKind::NoShow, EventKind::Purchased]);
        assert_eq!(events[0].facts.minutes_attended, Some(38));
        assert_eq!(events[1].contact.first_name.as_deref(), Some("Max"));
        assert_eq!(events[2].facts.purchase_amount, Some(Cents(49_700)));
        assert_eq!(events[2].webinar.replay_url.as_deref(), Some("https://app.livestorm.co/p/EXAMPLE/replay"));
        assert_eq!(events[2].occurred_at, time("2026-01-15T18:10:00Z"));
    }

    #[test]
    fn generic_without_any_id_hashes_the_event_content_stably() {
        let body = fixture("generic/registered.json");
        let first = one_event(&generic_bearer("Livestorm", &body));
        assert!(first.event_id.as_str().starts_with("generic:"), "{}", first.event_id);
        // Same event, other key order and whitespace: same id.
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let reserialized = serde_json::to_vec_pretty(&value).unwrap();
        assert_eq!(one_event(&generic_bearer("Livestorm", &reserialized)).event_id, first.event_id);
        // Another tool or another fact: another event.
        assert_ne!(one_event(&generic_bearer("GoTo Webinar", &body)).event_id, first.event_id);
        let changed = String::from_utf8(body).unwrap().replace("registered", "cancelled");
        assert_ne!(one_event(&generic_bearer("Livestorm", changed.as_bytes())).event_id, first.event_id);
        assert_eq!(first.occurred_at, time("2026-01-10T08:15:00Z"));

        let undated = one_event(&generic_bearer(
            "Livestorm",
            br#"{"kind":"attended","contact":{"email":"a@example.com"},"webinar":{"id":"1"}}"#,
        ));
        assert_eq!(undated.occurred_at, now(), "occurred_at defaults to arrival");
    }

    #[test]
    fn generic_key_rotation_accepts_any_matching_v1_entry() {
        let body = fixture("generic/registered.json");
        let timestamp = now().timestamp();
        let good = standard_webhooks_signature(GENERIC_SECRET, WEBHOOK_ID, timestamp, &body);
        let old_key =
            standard_webhooks_signature("whsec_b2xkLXNlY3JldC1rZXktMTIzNDU2Nzg5MA==", WEBHOOK_ID, timestamp, &body);
        let rotated = format!("{old_key} {good}");
        assert!(handle(&generic_with_signature_header("Livestorm", timestamp, &rotated, &body)).is_ok());
        let with_asymmetric_entry = format!("v1a,c29tZSBlZDI1NTE5IHNpZ25hdHVyZQ== {good}");
        assert!(handle(&generic_with_signature_header("Livestorm", timestamp, &with_asymmetric_entry, &body)).is_ok());
        let only_old = generic_with_signature_header("Livestorm", timestamp, &old_key, &body);
        assert_eq!(summary(&rejection(&only_old)), (401, "invalid_signature", None));
    }

    #[test]
    fn generic_invalid_signatures_are_401() {
        let body = fixture("generic/registered.json");
        let timestamp = now().timestamp();
        let good = standard_webhooks_signature(GENERIC_SECRET, WEBHOOK_ID, timestamp, &body);
        let tampered_body = String::from_utf8(body.clone()).unwrap().replace("4711", "4712");
        let cases = [
            ("tampered body", generic_with_signature_header("Livestorm", timestamp, &good, tampered_body.as_bytes())),
            ("v1a only", generic_with_signature_header("Livestorm", timestamp, &good.replace("v1,", "v1a,"), &body)),
            ("not base64", generic_with_signature_header("Livestorm", timestamp, "v1,!!!", &body)),
            ("signed for another timestamp", generic_with_signature_header("Livestorm", timestamp + 1, &good, &body)),
        ];
        for (name, request) in cases {
            let rejection = rejection(&request);
            assert_eq!(summary(&rejection), (401, "invalid_signature", None), "{name}");
            assert_message_echoes_nothing(&rejection, &[WEBHOOK_ID, "erika"]);
        }
        let mut without_id = generic_signed("Livestorm", &body);
        without_id.headers.retain(|(name, _)| name != "webhook-id");
        assert_eq!(summary(&rejection(&without_id)), (401, "invalid_signature", None));
        let unsigned = post("/hooks/generic/Livestorm", &[JSON], &body);
        assert_eq!(summary(&rejection(&unsigned)), (401, "missing_signature", None));
    }

    #[test]
    fn generic_stale_timestamp_is_401() {
        let body = fixture("generic/registered.json");
        for offset in [-301, 301] {
            let timestamp = now().timestamp() + offset;
            let signature = standard_webhooks_signature(GENERIC_SECRET, WEBHOOK_ID, timestamp, &body);
            let request = generic_with_signature_header("Livestorm", timestamp, &signature, &body);
            assert_eq!(summary(&rejection(&request)), (401, "stale_timestamp", None), "offset {offset}");
        }
    }

    #[test]
    fn generic_bearer_auth() {
        let body = fixture("generic/registered.json");
        assert_eq!(one_event(&generic_bearer("Livestorm", &body)).kind, EventKind::Registered);
        let wrong = post("/hooks/generic/Livestorm", &[JSON, ("Authorization", "Bearer whsec_nope")], &body);
        let rejection = rejection(&wrong);
        assert_eq!(summary(&rejection), (401, "invalid_secret", None));
        assert_message_echoes_nothing(&rejection, &["whsec_nope"]);
    }

    #[test]
    fn generic_secret_without_whsec_prefix_keys_the_hmac_with_its_raw_bytes() {
        let secrets = SourceSecrets { generic: Some(Secret::new("plain shared secret")), ..SourceSecrets::default() };
        let body = fixture("generic/registered.json");
        let timestamp = now().timestamp();
        let signed = [format!("{WEBHOOK_ID}.{timestamp}.").as_bytes(), &body[..]].concat();
        let signature = format!("v1,{}", BASE64.encode(hmac_sha256(b"plain shared secret", &signed)));
        let request = generic_with_signature_header("Livestorm", timestamp, &signature, &body);
        assert!(matches!(sources::handle(&request, &secrets), Ok(SourceOutcome::Events(_))));
    }

    #[test]
    fn generic_validation_errors_name_the_field() {
        for (fixture_name, expected) in [
            ("batch_invalid_email", (422, "invalid_email", Some("[2].contact.email"))),
            ("missing_email", (422, "missing_email", Some("contact.email"))),
            ("unknown_kind", (422, "unknown_kind", Some("kind"))),
            ("bad_occurred_at", (422, "invalid_occurred_at", Some("occurred_at"))),
            ("missing_webinar_id", (422, "missing_webinar", Some("webinar.id"))),
            ("bad_purchase_amount", (422, "invalid_purchase_amount", Some("purchase_amount"))),
        ] {
            let rejection = rejection(&generic_signed("Livestorm", &fixture(&format!("generic/{fixture_name}.json"))));
            assert_eq!(summary(&rejection), expected, "{fixture_name}");
            assert_message_echoes_nothing(&rejection, &["not-an-address", "joined", "15.01.2026", "free"]);
        }
    }

    #[test]
    fn generic_malformed_json_is_400_with_its_position() {
        let rejection = rejection(&generic_signed("Livestorm", &fixture("generic/malformed.json")));
        assert_eq!(summary(&rejection), (400, "malformed_json", None));
        assert!(rejection.message.contains("line 3"), "{}", rejection.message);
        assert_message_echoes_nothing(&rejection, &["erika", "4711"]);
    }

    #[test]
    fn generic_batch_limits() {
        assert_eq!(summary(&rejection(&generic_signed("Livestorm", b"[]"))), (422, "no_events", None));
        let event = r#"{"kind":"registered","contact":{"email":"a@example.com"},"webinar":{"id":"1"}}"#;
        let hundred = format!("[{}]", vec![event; 100].join(","));
        assert_eq!(events(&generic_signed("Livestorm", hundred.as_bytes())).len(), 100);
        let too_many = format!("[{}]", vec![event; 101].join(","));
        assert_eq!(
            summary(&rejection(&generic_signed("Livestorm", too_many.as_bytes()))),
            (422, "too_many_events", None)
        );
        assert_eq!(rejection(&generic_signed("Livestorm", b"\"just a string\"")).status(), 400);
        assert_eq!(rejection(&generic_signed("Livestorm", format!("[{event}, 7]").as_bytes())).status(), 400);
    }

    #[test]
    fn generic_sender_event_ids_are_validated() {
        let body = br#"{"event_id":"has spaces in it","kind":"registered","contact":{"email":"a@example.com"},"webinar":{"id":"1"}}"#;
        assert_eq!(
            summary(&rejection(&generic_signed("Livestorm", body))),
            (422, "invalid_event_id", Some("event_id"))
        );
    }

    #[test]
    fn generic_sender_ids_are_scoped_by_tool() {
        let body = fixture("generic/registered.json");
        let id = |tool: &str, body: &[u8]| one_event(&generic_signed(tool, body)).event_id;
        assert_eq!(id("Webinar%20Geek", &body).as_str(), format!("generic:Webinar%20Geek:{WEBHOOK_ID}"));
        assert_ne!(id("toola", &body), id("toolb", &body), "one webhook-id, two tools, two events");
        assert_eq!(
            id("Geek%20%C3%9C", &body).as_str(),
            format!("generic:Geek%20%C3%9C:{WEBHOOK_ID}"),
            "non-ASCII tool names are percent-encoded: the id stays printable ASCII"
        );
        // An id SQS cannot take is hashed, still per tool.
        let long = format!(
            r#"{{"event_id":"{}","kind":"registered","contact":{{"email":"a@example.com"}},"webinar":{{"id":"1"}}}}"#,
            "x".repeat(120)
        );
        let (a, b) = (id("toola", long.as_bytes()), id("toolb", long.as_bytes()));
        assert!(a.as_str().starts_with("generic:") && a.as_str().len() <= 128, "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn generic_tool_names_are_validated() {
        let body = fixture("generic/registered.json");
        let odd_characters = rejection(&generic_bearer("Bad%3Ctool%3E", &body));
        assert_eq!(summary(&odd_characters), (422, "invalid_tool", Some("tool")));
        assert_eq!(one_event(&generic_bearer("Webinar%20Geek", &body)).source.tool_name(), "Webinar Geek");
        let too_long = "x".repeat(41);
        assert_eq!(rejection(&generic_bearer(&too_long, &body)).code, "invalid_tool");
    }

    #[test]
    fn generic_wrong_content_type_is_415() {
        let body = fixture("generic/registered.json");
        let mut request = generic_bearer("Livestorm", &body);
        request.headers.retain(|(name, _)| name != "Content-Type");
        request.headers.push(("Content-Type".into(), "application/x-www-form-urlencoded".into()));
        assert_eq!(summary(&rejection(&request)), (415, "unsupported_media_type", None));
    }

    #[test]
    fn generic_schema_examples_are_accepted() {
        let schema_path = format!("{}/schema/generic-event.schema.json", env!("CARGO_MANIFEST_DIR"));
        let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(schema_path).unwrap()).unwrap();
        assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
        let examples = schema["examples"].as_array().unwrap();
        assert!(!examples.is_empty());
        for example in examples {
            let body = serde_json::to_vec(example).unwrap();
            assert!(matches!(handle(&generic_bearer("Livestorm", &body)), Ok(SourceOutcome::Events(_))), "{example}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Router

mod sources_router {
    use super::sources_webinarjam::webinarjam;
    use super::sources_zoom::zoom;
    use super::*;

    #[test]
    fn router_statuses() {
        let body = fixture("webinarjam/registered.json");
        let disabled =
            sources::handle(&webinarjam("registered", Some(JSON), &body), &SourceSecrets::default()).unwrap_err();
        assert_eq!(summary(&disabled), (404, "source_disabled", None));
        assert!(disabled.message.contains("BRIDGE_WEBINARJAM_SECRET"));

        let mut get = webinarjam("registered", Some(JSON), &body);
        get.method = "GET".into();
        assert_eq!(rejection(&get).status(), 405);

        let oversized = vec![b' '; sources::MAX_BODY_BYTES + 1];
        assert_eq!(rejection(&webinarjam("registered", Some(JSON), &oversized)).status(), 413);
        assert_eq!(rejection(&zoom(&oversized)).status(), 413);

        assert_eq!(rejection(&post("/hooks/nowhere", &[JSON], &body)).status(), 404);
    }
}
