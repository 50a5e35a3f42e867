//! Property tests of the authentication layer and the size limit (issue 8). `sources_fuzz.rs`
//! fuzzes the body parsers behind authentication; this file fuzzes the gate itself: the Zoom v0
//! signature, the Standard Webhooks v1 signature list, bearer and `?token=` secrets, the five
//! minute replay window, and the 256 KiB limit.
//!
//! Every property goes through `sources::handle`, the entry point the ingest calls, with every
//! source enabled. "Typed rejection" means an `Err(Rejection)` with the status and code DESIGN 7
//! gives that failure; a panic fails the property like any other broken assertion.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use proptest::prelude::*;
use sha2::Sha256;
use webinar_bridge::Secret;
use webinar_bridge::sources::{self, MAX_BODY_BYTES, RawRequest, Rejection, SourceOutcome, SourceSecrets};

const WEBINARJAM_SECRET: &str = "wj_verifier_secret_5b2a4c6e";
const EVERWEBINAR_SECRET: &str = "ew_verifier_secret_9d7f5a3c";
const ZOOM_SECRET: &str = "zoom_verifier_secret_token";
/// The Standard Webhooks specification's example secret.
const GENERIC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NOW_UNIX: i64 = 1_767_088_800;
/// DESIGN 7: signed timestamps older or newer than this are replays.
const REPLAY_WINDOW_SECONDS: i64 = 300;

/// A body every source accepts once authenticated, so only the gate can refuse it.
const VALID_ZOOM_BODY: &str = r#"{"event":"webinar.registration_created","event_ts":1767088800000,"payload":{"object":{"id":85012345678,"topic":"Demo","registrant":{"email":"erika@example.com"}}}}"#;
const VALID_GENERIC_BODY: &str =
    r#"{"kind":"registered","contact":{"email":"erika@example.com"},"webinar":{"id":"w1","name":"Demo"}}"#;
const VALID_WEBINARJAM_BODY: &str = r#"{"email":"erika@example.com","webinar_id":"123","webinar_name":"Demo"}"#;

fn all_secrets() -> SourceSecrets {
    SourceSecrets {
        webinarjam: Some(Secret::new(WEBINARJAM_SECRET)),
        everwebinar: Some(Secret::new(EVERWEBINAR_SECRET)),
        zoom: Some(Secret::new(ZOOM_SECRET)),
        generic: Some(Secret::new(GENERIC_SECRET)),
    }
}

fn post(path: &str, query: Option<String>, headers: Vec<(String, String)>, body: impl Into<Bytes>) -> RawRequest {
    RawRequest {
        method: "POST".to_owned(),
        path: path.to_owned(),
        query,
        headers,
        body: body.into(),
        received_at: DateTime::<Utc>::from_timestamp(NOW_UNIX, 0).unwrap_or_default(),
    }
}

fn header(name: &str, value: impl Into<String>) -> (String, String) {
    (name.to_owned(), value.into())
}

fn handle(request: &RawRequest) -> Result<SourceOutcome, Rejection> {
    sources::handle(request, &all_secrets())
}

/// The request was refused with `status` and one of `codes`, and a non-empty message.
fn assert_refused(result: &Result<SourceOutcome, Rejection>, status: u16, codes: &[&str]) -> Result<(), TestCaseError> {
    match result {
        Ok(outcome) => Err(TestCaseError::fail(format!("expected {status} {codes:?}, got {outcome:?}"))),
        Err(rejection) => {
            prop_assert_eq!(rejection.status(), status, "code {}", rejection.code);
            prop_assert!(codes.contains(&rejection.code), "code {} not in {:?}", rejection.code, codes);
            prop_assert!(!rejection.message.trim().is_empty());
            Ok(())
        }
    }
}

fn assert_accepted(result: &Result<SourceOutcome, Rejection>) -> Result<(), TestCaseError> {
    prop_assert!(matches!(result, Ok(SourceOutcome::Events(_))), "expected events, got {result:?}");
    Ok(())
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

fn zoom_signature(key: &[u8], timestamp: &str, body: &[u8]) -> String {
    format!("v0={}", hex::encode(hmac_sha256(key, &[b"v0:", timestamp.as_bytes(), b":", body])))
}

fn generic_key() -> Vec<u8> {
    BASE64.decode(GENERIC_SECRET.trim_start_matches("whsec_")).unwrap_or_default()
}

fn standard_webhooks_entry(key: &[u8], webhook_id: &str, timestamp: &str, body: &[u8]) -> String {
    let digest = hmac_sha256(key, &[webhook_id.as_bytes(), b".", timestamp.as_bytes(), b".", body]);
    format!("v1,{}", BASE64.encode(digest))
}

fn zoom_signed_at(timestamp: i64, body: &[u8]) -> RawRequest {
    let timestamp = timestamp.to_string();
    let headers = vec![
        header("content-type", "application/json"),
        header("x-zm-request-timestamp", timestamp.as_str()),
        header("x-zm-signature", zoom_signature(ZOOM_SECRET.as_bytes(), &timestamp, body)),
    ];
    post("/hooks/zoom", None, headers, body.to_vec())
}

fn generic_signed_at(timestamp: i64, signature_entries: &[String], body: &[u8]) -> RawRequest {
    let headers = vec![
        header("content-type", "application/json"),
        header("webhook-id", "msg_verifier"),
        header("webhook-timestamp", timestamp.to_string()),
        header("webhook-signature", signature_entries.join(" ")),
    ];
    post("/hooks/generic/Livestorm", None, headers, body.to_vec())
}

// ---------------------------------------------------------------------------------------------
// Strategies

/// Header values an attacker might send: printable junk, any Unicode, and near-misses of the
/// shapes the verifiers look for.
fn header_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,100}",
        any::<String>().prop_map(|text| text.chars().take(100).collect()),
        "v0=[0-9a-fA-F]{0,70}",
        "(v1|v1a|v2),[A-Za-z0-9+/=]{0,50}",
        "[0-9]{1,12}",
        "-?[0-9]{1,20}",
        "(Bearer|bearer|Basic) [ -~]{0,40}",
        Just(String::new()),
    ]
}

/// Headers unrelated to authentication, which must not change the verdict.
fn unrelated_headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop_oneof![
        prop::sample::select(vec!["user-agent", "x-zm-trackingid", "x-forwarded-for", "accept"])
            .prop_map(str::to_owned),
        "x-[a-z]{1,12}",
    ];
    prop::collection::vec((name, "[ -~]{0,40}"), 0..4)
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        prop::sample::select(vec![VALID_ZOOM_BODY, VALID_GENERIC_BODY, VALID_WEBINARJAM_BODY])
            .prop_map(|body| body.as_bytes().to_vec()),
    ]
}

/// A clock offset anywhere from a day in the past to a day in the future, boundaries included.
fn clock_offset() -> impl Strategy<Value = i64> {
    prop_oneof![
        -86_400..=86_400i64,
        (-REPLAY_WINDOW_SECONDS - 2..=-REPLAY_WINDOW_SECONDS + 2),
        (REPLAY_WINDOW_SECONDS - 2..=REPLAY_WINDOW_SECONDS + 2),
    ]
}

/// One entry of a forged `webhook-signature` list: a well-formed `v1` entry keyed with some other
/// secret, random base64, another version, or junk.
fn forged_entry(webhook_id: String, timestamp: String, body: Vec<u8>) -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 1..64).prop_map(move |key| standard_webhooks_entry(
            &key,
            &webhook_id,
            &timestamp,
            &body
        )),
        prop::collection::vec(any::<u8>(), 0..48).prop_map(|bytes| format!("v1,{}", BASE64.encode(bytes))),
        "(v1a|v2|v1 ),[A-Za-z0-9+/=]{0,60}",
        "[ -~]{0,30}",
    ]
}

/// A presented token that is not the secret: random, or a near miss of it.
#[derive(Debug, Clone)]
enum NearMiss {
    Random(String),
    Prefix(usize),
    Extended(char),
    OneByteChanged(usize),
    CaseFlipped,
}

fn near_miss() -> impl Strategy<Value = NearMiss> {
    prop_oneof![
        "[ -~]{1,60}".prop_map(NearMiss::Random),
        (1..20usize).prop_map(NearMiss::Prefix),
        prop::char::range('!', '~').prop_map(NearMiss::Extended),
        any::<usize>().prop_map(NearMiss::OneByteChanged),
        Just(NearMiss::CaseFlipped),
    ]
}

impl NearMiss {
    /// The token sent instead of `secret`; never equal to it.
    fn apply(&self, secret: &str) -> String {
        let token = match self {
            NearMiss::Random(text) => text.trim().to_owned(),
            NearMiss::Prefix(cut) => secret[..secret.len().saturating_sub(*cut).max(1)].to_owned(),
            NearMiss::Extended(extra) => format!("{secret}{extra}"),
            NearMiss::OneByteChanged(index) => {
                let mut bytes = secret.as_bytes().to_vec();
                let at = index % bytes.len();
                bytes[at] = if bytes[at] == b'x' { b'y' } else { b'x' };
                String::from_utf8(bytes).unwrap_or_default()
            }
            NearMiss::CaseFlipped => secret.to_ascii_uppercase(),
        };
        if token == secret || token.is_empty() { format!("{secret}!") } else { token }
    }
}

// ---------------------------------------------------------------------------------------------
// Properties

mod verifiers_fuzz {
    use super::*;

    proptest! {
        // Failures print their minimal input; integration tests have no source root for regression files.
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn zoom_forged_or_missing_signature_headers_are_a_typed_401(
            timestamp in proptest::option::of(header_text()),
            signature in proptest::option::of(header_text()),
            extra in unrelated_headers(),
            body in body(),
        ) {
            let mut headers = vec![header("content-type", "application/json")];
            headers.extend(timestamp.map(|value| header("x-zm-request-timestamp", value)));
            headers.extend(signature.map(|value| header("x-zm-signature", value)));
            headers.extend(extra);
            assert_refused(&handle(&post("/hooks/zoom", None, headers, body)), 401, &["invalid_signature"])?;
        }

        #[test]
        fn zoom_signatures_for_another_key_body_or_timestamp_are_a_typed_401(
            other_key in prop::collection::vec(any::<u8>(), 1..64),
            tampered_byte in any::<prop::sample::Index>(),
            timestamp_shift in prop_oneof![-300..0i64, 1..=300i64],
            body in body(),
        ) {
            let timestamp = NOW_UNIX.to_string();
            let mut requests = vec![];
            if other_key != ZOOM_SECRET.as_bytes() {
                let mut request = zoom_signed_at(NOW_UNIX, &body);
                request.headers[2].1 = zoom_signature(&other_key, &timestamp, &body);
                requests.push(request);
            }
            if !body.is_empty() {
                let mut tampered = body.clone();
                let at = tampered_byte.index(tampered.len());
                tampered[at] ^= 0x01;
                let mut request = zoom_signed_at(NOW_UNIX, &body);
                request.body = tampered.into();
                requests.push(request);
            }
            // Signed for one (fresh) timestamp, sent with another (also fresh) one.
            let mut moved = zoom_signed_at(NOW_UNIX, &body);
            moved.headers[1].1 = (NOW_UNIX + timestamp_shift).to_string();
            requests.push(moved);
            for request in requests {
                assert_refused(&handle(&request), 401, &["invalid_signature"])?;
            }
        }

        #[test]
        fn zoom_replays_outside_five_minutes_are_refused_both_ways(offset in clock_offset()) {
            let result = handle(&zoom_signed_at(NOW_UNIX + offset, VALID_ZOOM_BODY.as_bytes()));
            if offset.abs() > REPLAY_WINDOW_SECONDS {
                assert_refused(&result, 401, &["stale_timestamp"])?;
            } else {
                assert_accepted(&result)?;
            }
        }

        #[test]
        fn standard_webhooks_forged_signature_lists_are_a_typed_401(
            (webhook_id, timestamp, body, entries) in
                (proptest::option::of(header_text()), proptest::option::of(header_text()), body())
                    .prop_flat_map(|(webhook_id, timestamp, body)| {
                        let entry = forged_entry(
                            webhook_id.clone().unwrap_or_default(),
                            timestamp.clone().unwrap_or_default(),
                            body.clone(),
                        );
                        (Just(webhook_id), Just(timestamp), Just(body), prop::collection::vec(entry, 0..6))
                    }),
            authorization in proptest::option::of(header_text()),
            extra in unrelated_headers(),
        ) {
            let mut headers = vec![header("content-type", "application/json")];
            headers.extend(authorization.map(|value| header("authorization", value)));
            headers.extend(webhook_id.map(|value| header("webhook-id", value)));
            headers.extend(timestamp.map(|value| header("webhook-timestamp", value)));
            headers.push(header("webhook-signature", entries.join(" ")));
            headers.extend(extra);
            let request = post("/hooks/generic/Livestorm", None, headers, body);
            assert_refused(&handle(&request), 401, &["invalid_signature"])?;
        }

        #[test]
        fn standard_webhooks_signature_for_another_body_or_timestamp_is_a_typed_401(
            tampered_byte in any::<prop::sample::Index>(),
            timestamp_shift in prop_oneof![-300..0i64, 1..=300i64],
        ) {
            let body = VALID_GENERIC_BODY.as_bytes();
            let good = standard_webhooks_entry(&generic_key(), "msg_verifier", &NOW_UNIX.to_string(), body);
            let mut tampered = body.to_vec();
            tampered[tampered_byte.index(body.len())] ^= 0x01;
            let tampered_body = generic_signed_at(NOW_UNIX, std::slice::from_ref(&good), &tampered);
            let moved_timestamp = generic_signed_at(NOW_UNIX + timestamp_shift, &[good], body);
            for request in [tampered_body, moved_timestamp] {
                assert_refused(&handle(&request), 401, &["invalid_signature"])?;
            }
        }

        #[test]
        fn standard_webhooks_right_entry_anywhere_in_the_list_passes_only_inside_the_window(
            offset in clock_offset(),
            others in prop::collection::vec(forged_entry("msg_verifier".into(), String::new(), vec![]), 0..5),
            position in any::<prop::sample::Index>(),
        ) {
            let body = VALID_GENERIC_BODY.as_bytes();
            let timestamp = NOW_UNIX + offset;
            let good = standard_webhooks_entry(&generic_key(), "msg_verifier", &timestamp.to_string(), body);
            let mut entries = others;
            entries.insert(position.index(entries.len() + 1), good);
            let result = handle(&generic_signed_at(timestamp, &entries, body));
            if offset.abs() > REPLAY_WINDOW_SECONDS {
                assert_refused(&result, 401, &["stale_timestamp"])?;
            } else {
                assert_accepted(&result)?;
            }
        }

        #[test]
        fn bearer_and_query_tokens_must_be_the_exact_secret(
            miss in near_miss(),
            as_query in any::<bool>(),
            extra in unrelated_headers(),
        ) {
            let json = header("content-type", "application/json");
            let cases = [
                ("/hooks/webinarjam/registered", WEBINARJAM_SECRET, VALID_WEBINARJAM_BODY, as_query),
                ("/hooks/everwebinar/registered", EVERWEBINAR_SECRET, VALID_WEBINARJAM_BODY, as_query),
                // The generic source takes its secret as a bearer token only.
                ("/hooks/generic/Livestorm", GENERIC_SECRET, VALID_GENERIC_BODY, false),
            ];
            for (path, secret, body, as_query) in cases {
                let token = miss.apply(secret);
                let mut headers = vec![json.clone()];
                headers.extend(extra.iter().cloned());
                let query = if as_query {
                    Some(serde_urlencoded::to_string([("token", &token)]).unwrap_or_default())
                } else {
                    headers.push(header("authorization", format!("Bearer {token}")));
                    None
                };
                let wrong = post(path, query, headers.clone(), body.as_bytes().to_vec());
                assert_refused(&handle(&wrong), 401, &["invalid_secret"])?;

                // The same request with the exact secret is accepted: only the token decided.
                headers.retain(|(name, _)| name != "authorization");
                headers.push(header("authorization", format!("Bearer {secret}")));
                assert_accepted(&handle(&post(path, None, headers, body.as_bytes().to_vec())))?;
            }
        }

        #[test]
        fn unauthenticated_requests_to_bearer_sources_are_a_typed_401(
            authorization in proptest::option::of(header_text()),
            query in proptest::option::of("[ -~]{0,40}"),
            extra in unrelated_headers(),
            body in body(),
        ) {
            let mut headers = vec![header("content-type", "application/json")];
            headers.extend(authorization.map(|value| header("authorization", value)));
            headers.extend(extra);
            for path in ["/hooks/webinarjam/registered", "/hooks/everwebinar/attended"] {
                let request = post(path, query.clone(), headers.clone(), body.clone());
                assert_refused(&handle(&request), 401, &["missing_secret", "invalid_secret"])?;
            }
            let generic = post("/hooks/generic/Livestorm", None, headers, body);
            assert_refused(&handle(&generic), 401, &["missing_signature", "invalid_secret"])?;
        }

        #[test]
        fn secret_matches_exactly_its_own_bytes(presented in prop::collection::vec(any::<u8>(), 0..64), miss in near_miss()) {
            let secret = Secret::new(ZOOM_SECRET);
            prop_assert_eq!(secret.matches(&presented), presented == ZOOM_SECRET.as_bytes());
            prop_assert!(!secret.matches(miss.apply(ZOOM_SECRET).as_bytes()));
            prop_assert!(secret.matches(ZOOM_SECRET.as_bytes()));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The size limit

/// What an oversized body is made of: none of it may matter.
#[derive(Debug, Clone)]
enum OversizedContent {
    RandomBytes(Vec<u8>),
    InvalidJson,
    /// A valid event padded with trailing whitespace (still valid JSON).
    PaddedValidJson,
    FormPairs,
}

fn oversized_content() -> impl Strategy<Value = OversizedContent> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 1..256).prop_map(OversizedContent::RandomBytes),
        Just(OversizedContent::InvalidJson),
        Just(OversizedContent::PaddedValidJson),
        Just(OversizedContent::FormPairs),
    ]
}

impl OversizedContent {
    fn body(&self, valid: &str, len: usize) -> Vec<u8> {
        let mut body = match self {
            OversizedContent::RandomBytes(pattern) => pattern.iter().copied().cycle().take(len).collect(),
            OversizedContent::InvalidJson => b"{\"email\": [".repeat(len / 11 + 1),
            OversizedContent::PaddedValidJson => valid.as_bytes().to_vec(),
            OversizedContent::FormPairs => b"email=erika%40example.com&".repeat(len / 26 + 1),
        };
        body.resize(len, b' ');
        body
    }
}

/// How the oversized request is authenticated: the limit comes before authentication.
#[derive(Debug, Clone, Copy)]
enum Credentials {
    Correct,
    Missing,
}

mod body_limit {
    use super::*;

    /// Builds a POST to `route` (0..4: WebinarJam, EverWebinar, Zoom, generic) with `body`.
    fn request_to(route: usize, credentials: Credentials, content_type: &str, body: Vec<u8>) -> RawRequest {
        let mut headers = vec![header("content-type", content_type)];
        let correct = matches!(credentials, Credentials::Correct);
        let (path, valid) = match route % 4 {
            0 => ("/hooks/webinarjam/registered", WEBINARJAM_SECRET),
            1 => ("/hooks/everwebinar/registered", EVERWEBINAR_SECRET),
            2 => ("/hooks/zoom", ZOOM_SECRET),
            _ => ("/hooks/generic/Livestorm", GENERIC_SECRET),
        };
        if correct {
            match route % 4 {
                0 | 1 => headers.push(header("authorization", format!("Bearer {valid}"))),
                2 => {
                    let timestamp = NOW_UNIX.to_string();
                    headers.push(header("x-zm-signature", zoom_signature(ZOOM_SECRET.as_bytes(), &timestamp, &body)));
                    headers.push(header("x-zm-request-timestamp", timestamp));
                }
                _ => {
                    let timestamp = NOW_UNIX.to_string();
                    headers.push(header("webhook-id", "msg_oversized"));
                    headers.push(header(
                        "webhook-signature",
                        standard_webhooks_entry(&generic_key(), "msg_oversized", &timestamp, &body),
                    ));
                    headers.push(header("webhook-timestamp", timestamp));
                }
            }
        }
        post(path, None, headers, body)
    }

    fn valid_body(route: usize) -> &'static str {
        match route % 4 {
            0 | 1 => VALID_WEBINARJAM_BODY,
            2 => VALID_ZOOM_BODY,
            _ => VALID_GENERIC_BODY,
        }
    }

    proptest! {
        // Each case allocates ~300 KiB; 64 cases keep this under a second in debug builds.
        #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn a_body_over_256_kib_is_413_whatever_it_contains(
            route in 0..4usize,
            excess in 1..=65_536usize,
            content in oversized_content(),
            authenticated in any::<bool>(),
            content_type in prop::sample::select(vec!["application/json", "application/x-www-form-urlencoded", "text/plain", ""]),
        ) {
            let credentials = if authenticated { Credentials::Correct } else { Credentials::Missing };
            let body = content.body(valid_body(route), MAX_BODY_BYTES + excess);
            let result = handle(&request_to(route, credentials, content_type, body));
            assert_refused(&result, 413, &["payload_too_large"])?;
        }

        #[test]
        fn a_body_at_the_limit_is_read_not_refused_for_its_size(
            route in 0..4usize,
            shortfall in 0..=64usize,
        ) {
            let body = OversizedContent::PaddedValidJson.body(valid_body(route), MAX_BODY_BYTES - shortfall);
            let result = handle(&request_to(route, Credentials::Correct, "application/json", body));
            assert_accepted(&result)?;
        }
    }
}
