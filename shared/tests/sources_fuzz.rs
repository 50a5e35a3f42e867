//! Property tests: no request, however broken, makes a source panic, and every refusal is one of
//! the statuses DESIGN 7 allows. Requests go through `sources::handle` with every source enabled.
//!
//! Random headers almost never authenticate, so besides fully random requests there are
//! authenticated ones (right bearer token, right Zoom and Standard Webhooks signatures) whose
//! bodies are random bytes or random JSON built from the field names the parsers look for.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use proptest::prelude::*;
use serde_json::{Map, Value};
use sha2::Sha256;
use webinar_bridge::Secret;
use webinar_bridge::sources::{self, RawRequest, Rejection, SourceOutcome, SourceSecrets};

const WEBINARJAM_SECRET: &str = "wj_fuzz_secret";
const EVERWEBINAR_SECRET: &str = "ew_fuzz_secret";
const ZOOM_SECRET: &str = "zoom_fuzz_secret";
const GENERIC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NOW_UNIX: i64 = 1_767_088_800;

const ALLOWED_STATUSES: [u16; 7] = [400, 401, 404, 405, 413, 415, 422];

/// Header names the parsers read, plus a few they do not.
const HEADER_NAMES: [&str; 12] = [
    "authorization",
    "content-type",
    "x-zm-request-timestamp",
    "x-zm-signature",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "Content-Type",
    "Authorization",
    "WEBHOOK-SIGNATURE",
    "user-agent",
    "x-zm-trackingid",
];

/// Key names the WebinarJam, Zoom and generic parsers look for, so random JSON reaches them.
const KEYS: [&str; 40] = [
    "email",
    "first_name",
    "last_name",
    "name",
    "phone",
    "phone_country_code",
    "webinar_id",
    "webinar_hash",
    "webinar_name",
    "webinar",
    "title",
    "schedule",
    "schedule_id",
    "date",
    "event_date",
    "timezone",
    "live_room_url",
    "replay_room_url",
    "time_live",
    "duration",
    "revenue_live",
    "price",
    "user_id",
    "lead_id",
    "registrant",
    "id",
    "event",
    "event_ts",
    "payload",
    "object",
    "participant",
    "plainToken",
    "join_time",
    "leave_time",
    "kind",
    "contact",
    "occurred_at",
    "purchase_amount",
    "minutes_attended",
    "event_id",
];

const ZOOM_EVENTS: [&str; 8] = [
    "endpoint.url_validation",
    "webinar.registration_created",
    "webinar.registration_approved",
    "webinar.registration_cancelled",
    "webinar.registration_denied",
    "webinar.participant_joined",
    "webinar.participant_left",
    "webinar.started",
];

fn all_secrets() -> SourceSecrets {
    SourceSecrets {
        webinarjam: Some(Secret::new(WEBINARJAM_SECRET)),
        everwebinar: Some(Secret::new(EVERWEBINAR_SECRET)),
        zoom: Some(Secret::new(ZOOM_SECRET)),
        generic: Some(Secret::new(GENERIC_SECRET)),
    }
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(NOW_UNIX, 0).unwrap_or_default()
}

fn request(
    method: &str,
    path: &str,
    query: Option<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
) -> RawRequest {
    RawRequest {
        method: method.to_owned(),
        path: path.to_owned(),
        query,
        headers,
        body: Bytes::from(body),
        received_at: now(),
    }
}

/// The contract of every source: events, a validation answer, an ignore, or an allowed refusal
/// whose message is a non-empty sentence.
fn check_contract(result: &Result<SourceOutcome, Rejection>) -> Result<(), TestCaseError> {
    match result {
        Ok(SourceOutcome::Events(events)) => prop_assert!(!events.is_empty(), "an accepted request carries events"),
        Ok(
            SourceOutcome::UrlValidation { .. }
            | SourceOutcome::Ignored { .. }
            | SourceOutcome::ZoomEnded(_)
            | SourceOutcome::ZoomUnidentifiedParticipant { .. },
        ) => {}
        Err(rejection) => {
            prop_assert!(ALLOWED_STATUSES.contains(&rejection.status()), "status {}", rejection.status());
            prop_assert!(!rejection.message.is_empty());
            for secret in [WEBINARJAM_SECRET, EVERWEBINAR_SECRET, ZOOM_SECRET, GENERIC_SECRET] {
                prop_assert!(!rejection.message.contains(secret), "a message leaks a secret");
            }
        }
    }
    Ok(())
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

fn zoom_signed(body: Vec<u8>, content_type: &str) -> RawRequest {
    let timestamp = NOW_UNIX.to_string();
    let signature = format!(
        "v0={}",
        hex::encode(hmac_sha256(ZOOM_SECRET.as_bytes(), &[b"v0:", timestamp.as_bytes(), b":", &body]))
    );
    let headers = vec![
        ("content-type".to_owned(), content_type.to_owned()),
        ("x-zm-request-timestamp".to_owned(), timestamp),
        ("x-zm-signature".to_owned(), signature),
    ];
    request("POST", "/hooks/zoom", None, headers, body)
}

fn generic_signed(tool: &str, body: Vec<u8>) -> RawRequest {
    let key = BASE64.decode(GENERIC_SECRET.trim_start_matches("whsec_")).unwrap_or_default();
    let timestamp = NOW_UNIX.to_string();
    let signature = BASE64.encode(hmac_sha256(&key, &[b"msg_fuzz.", timestamp.as_bytes(), b".", &body]));
    let headers = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("webhook-id".to_owned(), "msg_fuzz".to_owned()),
        ("webhook-timestamp".to_owned(), timestamp),
        ("webhook-signature".to_owned(), format!("v1,{signature}")),
    ];
    request("POST", &format!("/hooks/generic/{tool}"), None, headers, body)
}

// ---------------------------------------------------------------------------------------------
// Strategies

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "/hooks/webinarjam/registered",
            "/hooks/webinarjam/no-show",
            "/hooks/everwebinar/purchase",
            "/hooks/everwebinar/bogus",
            "/hooks/zoom",
            "/hooks/zoom/",
            "/hooks/generic/Livestorm",
            "/hooks/generic/%FF%00",
            "/hooks/generic/a%2Fb",
            "/health",
        ])
        .prop_map(str::to_owned),
        "/hooks/(webinarjam|everwebinar|generic|zoom)/[ -~]{0,50}",
        "[ -~]{0,40}",
    ]
}

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,80}",
        Just("application/json".to_owned()),
        Just("application/x-www-form-urlencoded".to_owned()),
        Just(format!("Bearer {WEBINARJAM_SECRET}")),
        Just(format!("Bearer {GENERIC_SECRET}")),
        Just(NOW_UNIX.to_string()),
        "v0=[0-9a-f]{0,64}",
        "(v1|v1a),[A-Za-z0-9+/=]{0,60}( v1,[A-Za-z0-9+/=]{0,44}){0,3}",
        "-?[0-9]{1,20}",
    ]
}

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop_oneof![prop::sample::select(HEADER_NAMES.to_vec()).prop_map(str::to_owned), "[a-zA-Z-]{1,20}"];
    prop::collection::vec((name, header_value()), 0..8)
}

fn json_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[ -~]{0,30}".prop_map(Value::from),
        "[a-z]{1,8}@[a-z]{1,8}\\.(com|de|x)".prop_map(Value::from),
        "20[0-9]{2}-[01][0-9]-[0-3][0-9][ T][0-2]?[0-9]:[0-5][0-9](:[0-5][0-9])?(Z|[+-][01][0-9]:[0-5][0-9])?"
            .prop_map(Value::from),
        "[0-9]{1,3}:[0-9]{1,2}:[0-9]{1,2}".prop_map(Value::from),
        prop::sample::select(ZOOM_EVENTS.to_vec()).prop_map(Value::from),
        prop::sample::select(vec!["registered", "no_show", "purchased", "joined"]).prop_map(Value::from),
        "(GMT|UTC)?[+-][0-9]{1,2}(:[0-9]{2})?".prop_map(Value::from),
    ]
}

/// Random JSON whose keys are mostly ones the parsers read, nested a few levels.
fn json_document() -> impl Strategy<Value = Value> {
    let key = prop_oneof![4 => prop::sample::select(KEYS.to_vec()).prop_map(str::to_owned), 1 => "[ -~]{0,12}"];
    json_scalar().prop_recursive(4, 48, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..8)
                .prop_map(|entries| Value::Object(Map::from_iter(entries))),
        ]
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..1024),
        json_document().prop_map(|document| serde_json::to_vec(&document).unwrap_or_default()),
        // Form bodies with the keys the WebinarJam parser reads, including nested spellings.
        prop::collection::vec((prop::sample::select(KEYS.to_vec()), "[ -~]{0,20}"), 0..10).prop_map(|pairs| {
            pairs
                .iter()
                .enumerate()
                .map(|(index, (key, value))| match index % 3 {
                    0 => format!("{key}={value}"),
                    1 => format!("registrant%5B{key}%5D={value}"),
                    _ => format!("webinar.{key}={value}"),
                })
                .collect::<Vec<_>>()
                .join("&")
                .into_bytes()
        }),
    ]
}

/// A mostly valid e-mail, sometimes any scalar.
fn email_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => "[a-zA-Z]{1,8}(\\.[a-z]{1,5})?@[a-z]{1,8}\\.(com|de|org)".prop_map(Value::from),
        1 => json_scalar(),
    ]
}

/// A mostly usable id (string or number), sometimes any scalar.
fn id_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => "[A-Za-z0-9_=]{1,12}".prop_map(Value::from),
        2 => any::<u32>().prop_map(Value::from),
        1 => json_scalar(),
    ]
}

/// Random scalars under the given keys (each key present or not).
fn scalars_under(keys: &'static [&'static str]) -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::vec((prop::sample::select(keys), json_scalar()), 0..keys.len())
        .prop_map(|entries| entries.into_iter().map(|(key, value)| (key.to_owned(), value)).collect())
}

const WEBINARJAM_KEYS: &[&str] = &[
    "first_name",
    "fname",
    "last_name",
    "name",
    "phone",
    "phone_country_code",
    "webinar_hash",
    "webinar_name",
    "title",
    "schedule",
    "date",
    "event_date",
    "timezone",
    "live_room_url",
    "replay_room",
    "time_live",
    "duration",
    "revenue_live",
    "price",
    "user_id",
    "lead_id",
];

/// A WebinarJam body with an e-mail and a webinar id, flat or nested, as JSON or as a form.
fn webinarjam_body() -> impl Strategy<Value = (Vec<u8>, &'static str)> {
    (email_value(), id_value(), scalars_under(WEBINARJAM_KEYS), any::<bool>(), any::<bool>()).prop_map(
        |(email, webinar_id, mut fields, nested, as_form)| {
            fields.insert("email".to_owned(), email);
            fields.insert("webinar_id".to_owned(), webinar_id);
            let document = if nested { nest_under_registrant(fields) } else { fields };
            if as_form {
                (form_encode(&document), "application/x-www-form-urlencoded")
            } else {
                (serde_json::to_vec(&document).unwrap_or_default(), "application/json")
            }
        },
    )
}

/// `{"registrant": {...person...}, "webinar": {...rest...}}`.
fn nest_under_registrant(fields: Map<String, Value>) -> Map<String, Value> {
    let (person, webinar): (Map<String, Value>, Map<String, Value>) = fields
        .into_iter()
        .partition(|(key, _)| ["email", "first_name", "fname", "last_name", "name", "phone"].contains(&key.as_str()));
    Map::from_iter([("registrant".to_owned(), Value::Object(person)), ("webinar".to_owned(), Value::Object(webinar))])
}

/// Form keys in bracket notation (`registrant[email]`), scalars as text.
fn form_encode(document: &Map<String, Value>) -> Vec<u8> {
    let mut pairs = Vec::new();
    for (key, value) in document {
        match value {
            Value::Object(inner) => pairs.extend(inner.iter().map(|(k, v)| (format!("{key}[{k}]"), scalar_text(v)))),
            scalar => pairs.push((key.clone(), scalar_text(scalar))),
        }
    }
    serde_urlencoded::to_string(pairs).unwrap_or_default().into_bytes()
}

fn scalar_text(value: &Value) -> String {
    value.as_str().map_or_else(|| value.to_string(), str::to_owned)
}

const ZOOM_OBJECT_KEYS: &[&str] = &["uuid", "topic", "start_time", "timezone", "duration", "type"];
const ZOOM_PERSON_KEYS: &[&str] =
    &["first_name", "last_name", "phone", "id", "join_url", "join_time", "leave_time", "registrant_id", "user_name"];

/// A Zoom envelope shaped like the real events, with random values in the fields we read.
fn zoom_event() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(ZOOM_EVENTS.to_vec()),
        prop_oneof![any::<i64>().prop_map(Value::from), json_scalar()],
        id_value(),
        scalars_under(ZOOM_OBJECT_KEYS),
        email_value(),
        scalars_under(ZOOM_PERSON_KEYS),
        json_scalar(),
    )
        .prop_map(|(event, event_ts, id, mut object, email, mut person, plain_token)| {
            person.insert("email".to_owned(), email);
            object.insert("id".to_owned(), id);
            object.insert("registrant".to_owned(), Value::Object(person.clone()));
            object.insert("participant".to_owned(), Value::Object(person));
            serde_json::json!({
                "event": event,
                "event_ts": event_ts,
                "payload": {"account_id": "AbCdEf123", "plainToken": plain_token, "object": object},
            })
        })
}

const GENERIC_TOP_KEYS: &[&str] = &["event_id", "occurred_at", "minutes_attended", "purchase_amount"];
const GENERIC_CONTACT_KEYS: &[&str] = &["first_name", "last_name", "phone"];
const GENERIC_WEBINAR_KEYS: &[&str] =
    &["name", "session_id", "starts_at", "timezone", "join_url", "replay_url", "duration_minutes"];

/// A generic event with a kind, a contact e-mail and a webinar id, other fields random.
fn generic_event() -> impl Strategy<Value = Value> {
    let kind = prop_oneof![
        4 => prop::sample::select(vec!["registered", "attended", "no_show", "purchased", "left_early"]).prop_map(Value::from),
        1 => json_scalar(),
    ];
    (
        kind,
        email_value(),
        id_value(),
        scalars_under(GENERIC_TOP_KEYS),
        scalars_under(GENERIC_CONTACT_KEYS),
        scalars_under(GENERIC_WEBINAR_KEYS),
    )
        .prop_map(|(kind, email, id, mut event, mut contact, mut webinar)| {
            contact.insert("email".to_owned(), email);
            webinar.insert("id".to_owned(), id);
            event.insert("kind".to_owned(), kind);
            event.insert("contact".to_owned(), Value::Object(contact));
            event.insert("webinar".to_owned(), Value::Object(webinar));
            Value::Object(event)
        })
}

// ---------------------------------------------------------------------------------------------
// Properties

mod sources_fuzz {
    use super::*;

    proptest! {
        // Failures print their minimal input; integration tests have no source root for regression files.
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn any_request_gets_an_allowed_answer(
            method in prop::sample::select(vec!["POST", "post", "GET", "PUT"]),
            path in path(),
            query in proptest::option::of(prop_oneof![Just(format!("token={WEBINARJAM_SECRET}")), "[ -~]{0,40}"]),
            headers in headers(),
            body in body(),
        ) {
            let request = request(method, &path, query, headers, body);
            check_contract(&sources::handle(&request, &all_secrets()))?;
        }

        #[test]
        fn authenticated_webinarjam_bodies_never_panic(
            product in prop::sample::select(vec!["webinarjam", "everwebinar"]),
            kind in prop_oneof![prop::sample::select(vec!["registered", "attended", "purchase", "noshow"]).prop_map(str::to_owned), "[ -~]{1,20}"],
            content_type in proptest::option::of(prop::sample::select(vec![
                "application/json", "application/x-www-form-urlencoded", "application/json; charset=utf-8", "text/plain",
            ])),
            body in prop_oneof![
                body().prop_map(|bytes| (bytes, None)),
                webinarjam_body().prop_map(|(bytes, content_type)| (bytes, Some(content_type))),
            ],
        ) {
            let (body, body_content_type) = body;
            // A structured body keeps the type it was encoded as; random bytes get a random one.
            let content_type = body_content_type.or(content_type);
            let secret = if product == "webinarjam" { WEBINARJAM_SECRET } else { EVERWEBINAR_SECRET };
            let mut headers = vec![("Authorization".to_owned(), format!("Bearer {secret}"))];
            headers.extend(content_type.map(|value| ("Content-Type".to_owned(), value.to_owned())));
            let encoded_kind = serde_urlencoded::to_string([("k", &kind)]).unwrap_or_default();
            let path = format!("/hooks/{product}/{}", encoded_kind.trim_start_matches("k="));
            let result = sources::handle(&request("POST", &path, None, headers, body), &all_secrets());
            check_contract(&result)?;
            prop_assert!(result.as_ref().err().is_none_or(|rejection| rejection.status() != 401));
        }

        #[test]
        fn correctly_signed_zoom_bytes_never_panic_and_are_never_401(body in prop::collection::vec(any::<u8>(), 0..2048)) {
            let result = sources::handle(&zoom_signed(body, "application/json; charset=utf-8"), &all_secrets());
            check_contract(&result)?;
            prop_assert!(result.as_ref().err().is_none_or(|rejection| rejection.status() != 401));
        }

        #[test]
        fn correctly_signed_zoom_json_never_panics_and_is_never_401(
            body in prop_oneof![
                (prop::sample::select(ZOOM_EVENTS.to_vec()), json_document(), json_scalar()).prop_map(
                    |(event, payload, event_ts)| serde_json::json!({"event": event, "event_ts": event_ts, "payload": payload})
                ),
                zoom_event(),
            ],
        ) {
            let result = sources::handle(&zoom_signed(serde_json::to_vec(&body).unwrap_or_default(), "application/json"), &all_secrets());
            check_contract(&result)?;
            prop_assert!(result.as_ref().err().is_none_or(|rejection| rejection.status() != 401));
        }

        #[test]
        fn correctly_signed_generic_bodies_never_panic_and_are_never_401(
            tool in prop_oneof![Just("Livestorm".to_owned()), "[ -~]{0,12}".prop_map(|tool| tool.replace(['/', '?', '%', '#'], ""))],
            body in prop_oneof![
                body(),
                prop::collection::vec(json_document(), 0..4).prop_map(|items| serde_json::to_vec(&items).unwrap_or_default()),
                generic_event().prop_map(|event| serde_json::to_vec(&event).unwrap_or_default()),
                prop::collection::vec(generic_event(), 1..5).prop_map(|events| serde_json::to_vec(&events).unwrap_or_default()),
            ],
        ) {
            let tool = serde_urlencoded::to_string([("t", &tool)]).unwrap_or_default().trim_start_matches("t=").replace('+', "%20");
            let result = sources::handle(&generic_signed(&tool, body), &all_secrets());
            check_contract(&result)?;
            prop_assert!(result.as_ref().err().is_none_or(|rejection| rejection.status() != 401));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Strict decoding (issue 12): duplicate keys, invalid UTF-8, IDN

/// A WebinarJam request with the right bearer token and `body` as `content_type`.
fn webinarjam_request(content_type: &str, body: Vec<u8>) -> RawRequest {
    let headers = vec![
        ("Authorization".to_owned(), format!("Bearer {WEBINARJAM_SECRET}")),
        ("Content-Type".to_owned(), content_type.to_owned()),
    ];
    request("POST", "/hooks/webinarjam/registered", None, headers, body)
}

/// Form pairs as raw bytes: `key=value&...`, each part percent-encoded.
fn form_bytes(pairs: &[(String, Vec<u8>)]) -> Vec<u8> {
    let encode = |bytes: &[u8]| -> String {
        bytes
            .iter()
            .map(|byte| if byte.is_ascii_alphanumeric() { (*byte as char).to_string() } else { format!("%{byte:02X}") })
            .collect()
    };
    pairs
        .iter()
        .map(|(key, value)| format!("{}={}", encode(key.as_bytes()), encode(value)))
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes()
}

/// Byte sequences that are never valid UTF-8.
fn invalid_utf8() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(vec![
        vec![0xFF_u8],
        vec![0xFE, 0xFF],
        vec![0xC3, 0x28],
        vec![0xE2, 0x28, 0xA1],
        vec![0xED, 0xA0, 0x80],
        vec![0x80],
    ])
}

fn base_pairs() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    (email_value(), scalars_under(WEBINARJAM_KEYS)).prop_map(|(email, mut fields)| {
        fields.insert("email".to_owned(), email);
        fields.insert("webinar_id".to_owned(), Value::String("123".into()));
        fields.into_iter().map(|(key, value)| (key, scalar_text(&value).into_bytes())).collect()
    })
}

fn rejection_of(result: &Result<SourceOutcome, Rejection>) -> Option<(u16, &'static str, Option<String>)> {
    result.as_ref().err().map(|rejection| (rejection.status(), rejection.code, rejection.field.clone()))
}

mod strict_decoding_fuzz {
    use super::*;

    proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        /// A key repeated with another value is a 400 naming it, in a form and in JSON; repeated
        /// with the same value it changes nothing.
        #[test]
        fn conflicting_duplicates_are_refused_and_identical_ones_change_nothing(
            pairs in base_pairs(),
            pick in any::<prop::sample::Index>(),
            other in "[ -~]{0,12}",
            as_form in any::<bool>(),
        ) {
            let (key, value) = pick.get(&pairs).clone();
            let encode = |pairs: &[(String, Vec<u8>)]| -> (Vec<u8>, &'static str) {
                if as_form {
                    (form_bytes(pairs), "application/x-www-form-urlencoded")
                } else {
                    let members: Vec<String> = pairs
                        .iter()
                        .map(|(key, value)| format!("{}:{}", Value::String(key.clone()), Value::String(String::from_utf8_lossy(value).into_owned())))
                        .collect();
                    (format!("{{{}}}", members.join(",")).into_bytes(), "application/json")
                }
            };
            let (body, content_type) = encode(&pairs);
            let original = sources::handle(&webinarjam_request(content_type, body), &all_secrets());

            let mut identical = pairs.clone();
            identical.push((key.clone(), value.clone()));
            let (body, content_type) = encode(&identical);
            let repeated = sources::handle(&webinarjam_request(content_type, body), &all_secrets());
            check_contract(&repeated)?;
            prop_assert_eq!(&repeated, &original, "an identical duplicate changes nothing");

            prop_assume!(other.as_bytes() != value.as_slice());
            let mut conflicting = pairs.clone();
            conflicting.push((key.clone(), other.into_bytes()));
            let (body, content_type) = encode(&conflicting);
            let result = sources::handle(&webinarjam_request(content_type, body), &all_secrets());
            check_contract(&result)?;
            prop_assert_eq!(rejection_of(&result), Some((400, "duplicate_key", Some(key))));
        }

        /// Invalid UTF-8 in any form value is a 400 naming that field, never replaced.
        #[test]
        fn invalid_utf8_in_a_form_value_is_refused_naming_the_field(
            pairs in base_pairs(),
            pick in any::<prop::sample::Index>(),
            bad in invalid_utf8(),
            at_end in any::<bool>(),
        ) {
            let mut pairs = pairs;
            let index = pick.index(pairs.len());
            let key = pairs[index].0.clone();
            let value = &mut pairs[index].1;
            if at_end {
                value.extend_from_slice(&bad);
            } else {
                value.splice(0..0, bad);
            }
            let result = sources::handle(&webinarjam_request("application/x-www-form-urlencoded", form_bytes(&pairs)), &all_secrets());
            check_contract(&result)?;
            prop_assert_eq!(rejection_of(&result), Some((400, "invalid_utf8", Some(key))));
        }

        /// Invalid UTF-8 anywhere in a JSON body is a 400, never a panic, never accepted.
        #[test]
        fn invalid_utf8_in_json_is_refused(pairs in base_pairs(), bad in invalid_utf8(), cut in any::<prop::sample::Index>()) {
            let members: Vec<String> = pairs
                .iter()
                .map(|(key, value)| format!("{}:{}", Value::String(key.clone()), Value::String(String::from_utf8_lossy(value).into_owned())))
                .collect();
            let mut body = format!("{{{}}}", members.join(",")).into_bytes();
            let at = cut.index(body.len());
            body.splice(at..at, bad);
            let result = sources::handle(&webinarjam_request("application/json", body), &all_secrets());
            check_contract(&result)?;
            prop_assert_eq!(result.as_ref().err().map(Rejection::status), Some(400));
        }

        /// Generic JSON with a key repeated at any depth: a 400 naming the path, or accepted
        /// when the values are equal.
        #[test]
        fn generic_json_duplicates_anywhere_are_caught(event in generic_event(), equal in any::<bool>()) {
            let Value::Object(object) = &event else { return Ok(()) };
            let text = serde_json::to_string(&event).unwrap_or_default();
            prop_assume!(object.contains_key("kind"));
            let kind = Value::String(if equal { object["kind"].as_str().unwrap_or_default().to_owned() } else { "not-the-same".to_owned() });
            let prop_kind = format!("{{\"kind\":{kind},{}", text.trim_start_matches('{'));
            let result = sources::handle(&generic_signed("Livestorm", prop_kind.into_bytes()), &all_secrets());
            check_contract(&result)?;
            if equal && object["kind"].is_string() {
                prop_assert!(rejection_of(&result).is_none_or(|(_, code, _)| code != "duplicate_key"));
            } else if !equal {
                prop_assert_eq!(rejection_of(&result), Some((400, "duplicate_key", Some("kind".to_owned()))));
            }
        }

        /// Any address with an internationalized domain either is refused or has one ASCII
        /// spelling, which parses to itself, whatever the ASCII case of the input.
        #[test]
        fn idn_addresses_have_one_ascii_spelling(
            local in "[a-z0-9.+_-]{1,12}",
            labels in prop::collection::vec("[a-zäöüßéèçñåøæ0-9ｅｘ\u{0430}-\u{044f}-]{1,12}", 1..3),
            tld in prop::sample::select(vec!["de", "com", "xn--p1ai", "рф"]),
        ) {
            let raw = format!("{local}@{}.{tld}", labels.join("."));
            if let Ok(email) = webinar_bridge::domain::Email::parse(&raw) {
                let domain = email.as_str().rsplit_once('@').map(|(_, domain)| domain).unwrap_or_default();
                prop_assert!(domain.is_ascii(), "the domain is kept in ASCII form: {}", domain);
                prop_assert_eq!(webinar_bridge::domain::Email::parse(email.as_str()).ok(), Some(email.clone()));
                prop_assert_eq!(webinar_bridge::domain::Email::parse(&raw.to_ascii_uppercase()).ok(), Some(email));
            }
        }
    }
}
