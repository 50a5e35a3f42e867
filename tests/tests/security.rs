//! Security guarantees of the ingest (issue 8), each a test:
//! - secrets are compared only in constant time (`Secret::matches`, `ct_eq`, HMAC `verify_slice`),
//!   checked on the source text with a detector that is itself tested;
//! - a signed request replayed outside the five-minute window is refused, past and future, for
//!   Zoom and Standard Webhooks, and nothing is enqueued;
//! - a body over 256 KiB is 413 before any parsing or authentication;
//! - no rejection echoes request content (property test with planted markers);
//! - no secret reaches `Debug` of the configuration, the KlickTipp client or its errors, and
//!   `Email`'s `Debug` never shows the address.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use sha2::Sha256;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use webinar_bridge::Secret;
use webinar_bridge::adapters::memory::MemoryQueue;
use webinar_bridge::config::BridgeConfig;
use webinar_bridge::domain::{ContactInfo, Email};
use webinar_bridge::ingest::{Ingest, IngestResponse};
use webinar_bridge::klicktipp::{
    FieldError, KlickTippAuth, KlickTippClient, KlickTippConfig, KlickTippError, UpsertSubscriber,
};
use webinar_bridge::sources::{MAX_BODY_BYTES, RawRequest, SourceSecrets};
use webinar_bridge_tests::harness;

const WEBINARJAM_SECRET: &str = "wj-security-secret-4f1d";
const EVERWEBINAR_SECRET: &str = "ew-security-secret-8c2e";
const ZOOM_SECRET: &str = "zoom-security-secret-7a3b";
/// `whsec_` + base64 of 24 bytes.
const GENERIC_SECRET: &str = "whsec_c2VjdXJpdHktdGVzdC1rZXktMjQtYnl0ZXM=";
const NOW_UNIX: i64 = 1_767_088_800;
const REPLAY_WINDOW_SECONDS: i64 = 300;

const ZOOM_REGISTRATION: &str = r#"{"event":"webinar.registration_created","event_ts":1767088800000,"payload":{"object":{"id":85012345678,"topic":"Demo","registrant":{"email":"erika@example.com","first_name":"Erika"}}}}"#;
const GENERIC_REGISTRATION: &str =
    r#"{"kind":"registered","contact":{"email":"erika@example.com"},"webinar":{"id":"w1","name":"Demo"}}"#;

// ---------------------------------------------------------------------------------------------
// Requests through the real ingest use case, over a memory queue we can count

fn all_secrets() -> SourceSecrets {
    SourceSecrets {
        webinarjam: Some(Secret::new(WEBINARJAM_SECRET)),
        everwebinar: Some(Secret::new(EVERWEBINAR_SECRET)),
        zoom: Some(Secret::new(ZOOM_SECRET)),
        generic: Some(Secret::new(GENERIC_SECRET)),
    }
}

/// The ingest with every source enabled, and its queue.
fn ingest() -> (Ingest, Arc<MemoryQueue>) {
    let queue = Arc::new(MemoryQueue::default());
    (Ingest::new(queue.clone(), all_secrets()), queue)
}

fn at(unix_seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(unix_seconds, 0).unwrap_or_default()
}

fn post(path: &str, headers: Vec<(String, String)>, body: impl Into<Vec<u8>>) -> RawRequest {
    let (path, query) = match path.split_once('?') {
        Some((path, query)) => (path, Some(query.to_owned())),
        None => (path, None),
    };
    RawRequest {
        method: "POST".into(),
        path: path.into(),
        query,
        headers,
        body: body.into().into(),
        received_at: at(NOW_UNIX),
    }
}

fn header(name: &str, value: impl Into<String>) -> (String, String) {
    (name.to_owned(), value.into())
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

fn zoom_headers(timestamp: i64, body: &[u8]) -> Vec<(String, String)> {
    let signed = [format!("v0:{timestamp}:").as_bytes(), body].concat();
    vec![
        header("content-type", "application/json"),
        header("x-zm-request-timestamp", timestamp.to_string()),
        header("x-zm-signature", format!("v0={}", hex::encode(hmac_sha256(ZOOM_SECRET.as_bytes(), &signed)))),
    ]
}

fn standard_webhooks_headers(webhook_id: &str, timestamp: i64, body: &[u8]) -> Vec<(String, String)> {
    let engine = base64::engine::general_purpose::STANDARD;
    let key = engine.decode(GENERIC_SECRET.trim_start_matches("whsec_")).expect("base64 key");
    let signed = [format!("{webhook_id}.{timestamp}.").as_bytes(), body].concat();
    vec![
        header("content-type", "application/json"),
        header("webhook-id", webhook_id),
        header("webhook-timestamp", timestamp.to_string()),
        header("webhook-signature", format!("v1,{}", engine.encode(hmac_sha256(&key, &signed)))),
    ]
}

fn error_code(response: &IngestResponse) -> (u16, &str) {
    (response.status, response.body["error"].as_str().unwrap_or("(none)"))
}

// ---------------------------------------------------------------------------------------------
// Constant-time comparisons

mod constant_time {
    use super::*;

    /// Names that hold secret material or a value derived from it (a MAC, a presented token).
    const SECRET_WORDS: &[&str] = &[
        "secret",
        "secrets",
        "expose",
        "token",
        "tokens",
        "password",
        "apikey",
        "signature",
        "signatures",
        "expected",
        "candidate",
        "presented",
        "mac",
        "hmac",
        "digest",
        "finalize",
    ];
    /// Comparisons that stop at the first differing byte.
    const VARIABLE_TIME_COMPARISONS: &[&str] =
        &["==", "!=", ".eq(", ".ne(", ".cmp(", ".partial_cmp(", "starts_with(", "ends_with("];
    /// The only functions of the sources that may read a raw secret: both turn it into an HMAC key.
    const HMAC_KEY_FUNCTIONS: &[&str] = &["keyed_mac", "signing_key"];

    /// Production code only: comments, string and char literals blanked, `#[cfg(test)]` cut off.
    fn code_of(source: &str) -> String {
        let production = source.split("#[cfg(test)]").next().unwrap_or_default();
        let chars: Vec<char> = production.chars().collect();
        let mut code = String::with_capacity(chars.len());
        let mut i = 0;
        while i < chars.len() {
            let rest = &chars[i..];
            match rest {
                ['/', '/', ..] => {
                    while i < chars.len() && chars[i] != '\n' {
                        i += 1;
                    }
                }
                ['/', '*', ..] => {
                    i += 2;
                    while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                        i += 1;
                    }
                    i += 2;
                }
                ['r', '#', ..] | ['r', '"', ..] if !previous_is_identifier(&chars, i) => {
                    let hashes = rest[1..].iter().take_while(|c| **c == '#').count();
                    let closing: Vec<char> = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
                    i += 2 + hashes;
                    while i < chars.len() && !chars[i..].starts_with(&closing) {
                        i += 1;
                    }
                    i += closing.len();
                    code.push_str("\"\"");
                }
                ['"', ..] => {
                    i += 1;
                    while i < chars.len() && chars[i] != '"' {
                        i += if chars[i] == '\\' { 2 } else { 1 };
                    }
                    i += 1;
                    code.push_str("\"\"");
                }
                ['\'', '\\', ..] => {
                    i += 2;
                    while i < chars.len() && chars[i] != '\'' {
                        i += 1;
                    }
                    i += 1;
                    code.push_str("' '");
                }
                ['\'', _, '\'', ..] => {
                    i += 3;
                    code.push_str("' '");
                }
                [c, ..] => {
                    code.push(*c);
                    i += 1;
                }
                [] => break,
            }
        }
        code
    }

    fn previous_is_identifier(chars: &[char], i: usize) -> bool {
        i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
    }

    fn identifiers(code: &str) -> impl Iterator<Item = &str> {
        code.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|word| !word.is_empty())
    }

    fn names_secret_material(identifier: &str) -> bool {
        identifier.split('_').any(|part| SECRET_WORDS.contains(&part.to_ascii_lowercase().as_str()))
    }

    /// `tokens.len()` and `entries.iter().count()` become `SIZE`: comparing how many or how long
    /// reveals no content, so such a comparison must not be flagged.
    fn without_sizes(code: &str) -> String {
        let mut code = code.to_owned();
        for call in [".len()", ".count()"] {
            while let Some(end) = code.find(call) {
                let receiver =
                    code[..end].trim_end_matches(|c: char| c.is_alphanumeric() || matches!(c, '_' | '.' | '(' | ')'));
                let start = receiver.len();
                code.replace_range(start..end + call.len(), "SIZE");
            }
        }
        code
    }

    /// Statements (split at `;`, `{`, `}`) that compare something with secret material using a
    /// variable-time comparison. Statements, not lines, so a comparison wrapped by rustfmt is seen.
    fn variable_time_secret_comparisons(source: &str) -> Vec<String> {
        without_sizes(&code_of(source))
            .split([';', '{', '}'])
            .filter(|statement| VARIABLE_TIME_COMPARISONS.iter().any(|operator| statement.contains(operator)))
            .filter(|statement| identifiers(statement).any(names_secret_material))
            .map(|statement| statement.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    }

    /// Functions that call `.expose()`, in order of appearance.
    fn functions_exposing_secrets(source: &str) -> Vec<String> {
        let code = code_of(source);
        let mut current_function = String::from("(top level)");
        let mut found = Vec::new();
        let mut words = identifiers(&code);
        while let Some(word) = words.next() {
            if word == "fn" {
                // The name is a definition (`fn expose` in secret.rs), not a call.
                if let Some(name) = words.next() {
                    current_function = name.to_owned();
                }
            } else if word == "expose" {
                found.push(current_function.clone());
            }
        }
        found
    }

    fn source_file(relative: &str) -> String {
        let path = harness::workspace_root().join(relative);
        std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()))
    }

    /// Every file of `shared/src/sources/` plus `shared/src/secret.rs`.
    fn authentication_sources() -> Vec<(String, String)> {
        let directory = harness::workspace_root().join("shared/src/sources");
        let mut files: Vec<String> = std::fs::read_dir(&directory)
            .expect("list shared/src/sources")
            .map(|entry| entry.expect("directory entry").path())
            .filter(|path| path.extension().is_some_and(|extension| extension == "rs"))
            .map(|path| format!("shared/src/sources/{}", file_name(&path)))
            .collect();
        files.push("shared/src/secret.rs".to_owned());
        files.sort();
        files.into_iter().map(|file| (source_file(&file), file)).map(|(text, file)| (file, text)).collect()
    }

    fn file_name(path: &Path) -> String {
        path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default()
    }

    #[test]
    fn the_detector_flags_variable_time_secret_comparisons_and_nothing_else() {
        let flagged = [
            "fn f() { if token == secret.expose() { return; } }",
            "fn f() { let ok = secret.expose().as_bytes() == presented; }",
            "fn f() { let ok = mac.finalize().into_bytes().as_slice()\n        == header_signature.as_slice(); }",
            "fn f() { let ok = expected_signature != given; }",
            "fn f() { let ok = token.eq(secret.expose()); }",
            "fn f() { let ok = candidate.starts_with(&expected); }",
        ];
        for snippet in flagged {
            assert_eq!(variable_time_secret_comparisons(snippet).len(), 1, "not flagged: {snippet}");
        }
        let clean = [
            "fn f() { let code = if key == \"contact\" { 1 } else { 2 }; }",
            "fn f() { let message = \"the signature == expected\"; }",
            "fn f() { // token == secret\n let x = 1; }",
            "fn f() { /* signature != expected */ }",
            "fn f() { let matched = secret.matches(token.as_bytes()); }",
            "fn f() { let matched = bool::from(candidate.ct_eq(&expected)); }",
            "fn f() { let ok = b == b'.' || c == '\\''; }",
            "fn f() { let raw = r#\"token == secret\"#; }",
            "fn f() { if tokens.len() == 0 || signatures.iter().count() != 1 { return; } }",
            "#[cfg(test)] mod tests { fn t() { assert!(token == secret); } }",
        ];
        for snippet in clean {
            assert_eq!(variable_time_secret_comparisons(snippet), Vec::<String>::new(), "flagged: {snippet}");
        }
    }

    #[test]
    fn sources_compare_secrets_only_in_constant_time() {
        let sources = authentication_sources();
        assert!(sources.len() >= 7, "expected the six source files and secret.rs, found {}", sources.len());
        for (file, text) in &sources {
            let comparisons = variable_time_secret_comparisons(text);
            assert!(
                comparisons.is_empty(),
                "{file} compares secret material with a variable-time comparison; use Secret::matches, \
                 subtle's ct_eq or Mac::verify_slice instead:\n{comparisons:#?}"
            );
        }
    }

    #[test]
    fn the_constant_time_primitives_are_the_ones_in_use() {
        let file = |name: &str| code_of(&source_file(name));
        let secret = file("shared/src/secret.rs");
        assert!(secret.contains(".ct_eq(presented)"), "Secret::matches must use subtle's ct_eq");
        for source in ["shared/src/sources/webinarjam.rs", "shared/src/sources/generic.rs"] {
            assert!(file(source).contains("secret.matches("), "{source} must check tokens with Secret::matches");
        }
        assert!(file("shared/src/sources/generic.rs").contains(".ct_eq(&expected)"), "v1 entries must use ct_eq");
        assert!(file("shared/src/sources/zoom.rs").contains(".verify_slice("), "Zoom must use Mac::verify_slice");
    }

    #[test]
    fn only_hmac_key_derivation_reads_a_raw_secret() {
        for (file, text) in authentication_sources() {
            for function in functions_exposing_secrets(&text) {
                assert!(
                    HMAC_KEY_FUNCTIONS.contains(&function.as_str()),
                    "{file}: fn {function} reads a raw secret; only HMAC keying may (compare with Secret::matches)"
                );
            }
        }
    }

    /// Byte-exact: a prefix, an extension, a changed byte or a changed case never authenticates,
    /// through the ingest, for every bearer source.
    #[tokio::test]
    async fn only_the_exact_secret_authenticates() {
        let (ingest, queue) = ingest();
        let body = r#"{"email":"erika@example.com","webinar_id":"1"}"#;
        for (path, secret) in
            [("/hooks/webinarjam/registered", WEBINARJAM_SECRET), ("/hooks/everwebinar/registered", EVERWEBINAR_SECRET)]
        {
            let near_misses = [
                secret[..secret.len() - 1].to_owned(),
                format!("{secret}x"),
                secret.to_ascii_uppercase(),
                secret.replacen('-', "_", 1),
                format!("{secret}\u{0}"),
            ];
            for token in &near_misses {
                let headers = vec![
                    header("content-type", "application/json"),
                    header("authorization", format!("Bearer {token}")),
                ];
                let response = ingest.handle(&post(path, headers, body)).await;
                assert_eq!(error_code(&response), (401, "invalid_secret"), "{path} with {token:?}");
            }
        }
        let generic_miss = format!("{GENERIC_SECRET}=");
        let headers =
            vec![header("content-type", "application/json"), header("authorization", format!("Bearer {generic_miss}"))];
        let response = ingest.handle(&post("/hooks/generic/Livestorm", headers, GENERIC_REGISTRATION)).await;
        assert_eq!(error_code(&response), (401, "invalid_secret"));
        assert_eq!(queue.pending(), 0, "a refused request enqueued something");
    }
}

// ---------------------------------------------------------------------------------------------
// Replays

mod replay_window {
    use super::*;

    /// Offsets of the signed timestamp from the bridge's clock, in seconds.
    const OUTSIDE: [i64; 6] =
        [-REPLAY_WINDOW_SECONDS - 1, -3_600, -86_400 * 30, REPLAY_WINDOW_SECONDS + 1, 3_600, 86_400];
    const INSIDE: [i64; 3] = [-REPLAY_WINDOW_SECONDS, 0, REPLAY_WINDOW_SECONDS];

    #[tokio::test]
    async fn zoom_signatures_outside_five_minutes_are_refused_past_and_future() {
        let (ingest, queue) = ingest();
        for offset in OUTSIDE {
            let timestamp = NOW_UNIX + offset;
            let request = post("/hooks/zoom", zoom_headers(timestamp, ZOOM_REGISTRATION.as_bytes()), ZOOM_REGISTRATION);
            let response = ingest.handle(&request).await;
            assert_eq!(error_code(&response), (401, "stale_timestamp"), "offset {offset}");
        }
        assert_eq!(queue.pending(), 0, "a replay was enqueued");
        for offset in INSIDE {
            let request =
                post("/hooks/zoom", zoom_headers(NOW_UNIX + offset, ZOOM_REGISTRATION.as_bytes()), ZOOM_REGISTRATION);
            assert_eq!(ingest.handle(&request).await.status, 200, "offset {offset}");
        }
    }

    #[tokio::test]
    async fn standard_webhooks_signatures_outside_five_minutes_are_refused_past_and_future() {
        let (ingest, queue) = ingest();
        for offset in OUTSIDE {
            let headers = standard_webhooks_headers("msg_replay", NOW_UNIX + offset, GENERIC_REGISTRATION.as_bytes());
            let response = ingest.handle(&post("/hooks/generic/Livestorm", headers, GENERIC_REGISTRATION)).await;
            assert_eq!(error_code(&response), (401, "stale_timestamp"), "offset {offset}");
        }
        assert_eq!(queue.pending(), 0, "a replay was enqueued");
        for offset in INSIDE {
            let headers = standard_webhooks_headers("msg_replay", NOW_UNIX + offset, GENERIC_REGISTRATION.as_bytes());
            let response = ingest.handle(&post("/hooks/generic/Livestorm", headers, GENERIC_REGISTRATION)).await;
            assert_eq!(response.status, 200, "offset {offset}");
        }
    }

    /// A captured request, accepted when it arrived, is refused when sent again later; within
    /// the window a replay is accepted but carries the same event id, so it is never applied twice.
    #[tokio::test]
    async fn a_captured_request_sent_again_later_is_refused() {
        let (ingest, queue) = ingest();
        let captured = [
            post("/hooks/zoom", zoom_headers(NOW_UNIX, ZOOM_REGISTRATION.as_bytes()), ZOOM_REGISTRATION),
            post(
                "/hooks/generic/Livestorm",
                standard_webhooks_headers("msg_captured", NOW_UNIX, GENERIC_REGISTRATION.as_bytes()),
                GENERIC_REGISTRATION,
            ),
        ];
        for original in captured {
            let first = ingest.handle(&original).await;
            assert_eq!(first.status, 200, "{}", first.body);
            let mut soon = original.clone();
            soon.received_at = at(NOW_UNIX + 60);
            let replay_in_window = ingest.handle(&soon).await;
            assert_eq!(replay_in_window.body["event_id"], first.body["event_id"], "a replay must keep its event id");
            for delay in [REPLAY_WINDOW_SECONDS + 1, 86_400] {
                let mut later = original.clone();
                later.received_at = at(NOW_UNIX + delay);
                assert_eq!(error_code(&ingest.handle(&later).await), (401, "stale_timestamp"), "after {delay} s");
            }
        }
        assert_eq!(queue.pending(), 2, "one message per original; the in-window replays are deduplicated");
    }
}

// ---------------------------------------------------------------------------------------------
// Size limit

mod body_limit {
    use super::*;

    /// 300 KiB that is not JSON at all: the answer is about the size (413), not the syntax (400),
    /// whether or not the request is authenticated, so nothing of it was parsed.
    #[tokio::test]
    async fn an_oversized_body_of_invalid_json_is_413_not_400() {
        let (ingest, queue) = ingest();
        let body = b"{\"email\": ".repeat(300 * 1024 / 10);
        assert!(body.len() > MAX_BODY_BYTES);
        let requests = [
            ("/hooks/webinarjam/registered", vec![header("authorization", format!("Bearer {WEBINARJAM_SECRET}"))]),
            ("/hooks/webinarjam/registered", vec![]),
            ("/hooks/everwebinar/attended", vec![header("authorization", "Bearer wrong")]),
            ("/hooks/zoom", zoom_headers(NOW_UNIX, &body)),
            ("/hooks/zoom", vec![]),
            ("/hooks/generic/Livestorm", standard_webhooks_headers("msg_big", NOW_UNIX, &body)),
            ("/hooks/generic/Livestorm", vec![]),
        ];
        for (path, mut headers) in requests {
            headers.push(header("content-type", "application/json"));
            let response = ingest.handle(&post(path, headers, body.clone())).await;
            assert_eq!(error_code(&response), (413, "payload_too_large"), "{path}");
            assert!(response.body["message"].as_str().is_some_and(|message| message.contains("256 KiB")));
        }
        assert_eq!(queue.pending(), 0);
    }
}

// ---------------------------------------------------------------------------------------------
// No echo of request content

mod no_echo {
    use super::*;

    /// Where the marker goes; each plant on its own is enough for a refusal.
    #[derive(Debug, Clone, Copy)]
    enum Plant {
        /// The secret or signature header (or `?token=`) carries the marker: 401.
        Credential,
        /// `Content-Type: application/<marker>`: 415.
        ContentType,
        /// `/hooks/<marker>/...`: 404.
        Route,
        /// The kind (WebinarJam path segment, generic `kind` field): 422.
        Kind,
        /// The generic tool segment, made invalid: 422.
        Tool,
        /// The whole body is the marker: 400 (or 422 for a form without e-mail).
        WholeBody,
        /// The e-mail value contains the marker and is invalid: 422.
        EmailValue,
        /// The e-mail key is renamed to the marker: 422.
        EmailKey,
        /// A typed generic field (time, minutes, amount, event id) holds the marker in an object: 422.
        TypedField(&'static str),
    }

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Sender {
        WebinarJamJson,
        WebinarJamForm,
        EverWebinarQueryToken,
        Zoom,
        GenericSigned,
        GenericBearer,
    }

    fn plants_for(sender: Sender) -> Vec<Plant> {
        use Plant::*;
        let common = [Credential, ContentType, Route, WholeBody, EmailValue, EmailKey];
        let specific: &[Plant] = match sender {
            Sender::WebinarJamJson | Sender::WebinarJamForm | Sender::EverWebinarQueryToken => &[Kind],
            Sender::Zoom => &[],
            Sender::GenericSigned | Sender::GenericBearer => &[
                Kind,
                Tool,
                TypedField("occurred_at"),
                TypedField("minutes_attended"),
                TypedField("purchase_amount"),
                TypedField("event_id"),
            ],
        };
        common.into_iter().chain(specific.iter().copied()).collect()
    }

    /// A request of `sender`, valid except for `plant`, with `marker` planted there and, as
    /// noise that must not change the verdict, in an extra header and an extra JSON key/value.
    fn planted_request(sender: Sender, plant: Plant, marker: &str) -> RawRequest {
        let mut body = match sender {
            Sender::Zoom => serde_json::from_str::<Value>(ZOOM_REGISTRATION).expect("valid JSON"),
            Sender::GenericSigned | Sender::GenericBearer => {
                serde_json::from_str::<Value>(GENERIC_REGISTRATION).expect("valid JSON")
            }
            _ => json!({"email": "erika@example.com", "webinar_id": "123", "webinar_name": "Demo"}),
        };
        let email_parent: &mut Map<String, Value> = match sender {
            Sender::Zoom => body["payload"]["object"]["registrant"].as_object_mut(),
            Sender::GenericSigned | Sender::GenericBearer => body["contact"].as_object_mut(),
            _ => body.as_object_mut(),
        }
        .expect("an object holds the e-mail");
        match plant {
            Plant::EmailValue => {
                email_parent.insert("email".into(), Value::from(format!("{marker}@")));
            }
            Plant::EmailKey => {
                let email = email_parent.remove("email").unwrap_or_default();
                email_parent.insert(marker.into(), email);
            }
            _ => {}
        }
        let object = body.as_object_mut().expect("an object body");
        object.insert(format!("{marker}_key"), Value::from(format!("{marker} value")));
        match plant {
            Plant::Kind if matches!(sender, Sender::GenericSigned | Sender::GenericBearer) => {
                object.insert("kind".into(), Value::from(marker));
            }
            // An object where a scalar belongs (a lenient reader could take digits out of a text).
            Plant::TypedField(field) => {
                object.insert(field.into(), json!({ marker: marker }));
            }
            _ => {}
        }

        let mut bytes = match sender {
            Sender::WebinarJamForm => {
                let pairs: Vec<String> = object
                    .iter()
                    .map(|(key, value)| {
                        let value = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
                        format!("{}={}", form_encode(key), form_encode(&value))
                    })
                    .collect();
                pairs.join("&").into_bytes()
            }
            _ => body.to_string().into_bytes(),
        };
        if matches!(plant, Plant::WholeBody) {
            bytes = format!("{marker}{{").into_bytes();
        }

        let content_type = match (plant, sender) {
            (Plant::ContentType, _) => format!("application/{marker}"),
            (_, Sender::WebinarJamForm) => "application/x-www-form-urlencoded".to_owned(),
            _ => "application/json".to_owned(),
        };
        let kind = if matches!(plant, Plant::Kind) { marker.to_owned() } else { "registered".to_owned() };
        let tool = if matches!(plant, Plant::Tool) { format!("{marker}!") } else { "Livestorm".to_owned() };
        let credential = matches!(plant, Plant::Credential);
        let mut headers = vec![header("content-type", content_type), header("x-request-note", marker)];
        let path = match sender {
            Sender::WebinarJamJson | Sender::WebinarJamForm => {
                let token = if credential { marker } else { WEBINARJAM_SECRET };
                headers.push(header("authorization", format!("Bearer {token}")));
                format!("/hooks/webinarjam/{kind}")
            }
            Sender::EverWebinarQueryToken => {
                let token = if credential { marker } else { EVERWEBINAR_SECRET };
                format!("/hooks/everwebinar/{kind}?token={token}&{marker}={marker}")
            }
            Sender::Zoom => {
                headers.extend(zoom_headers(NOW_UNIX, &bytes).into_iter().skip(1));
                if credential {
                    headers.retain(|(name, _)| name != "x-zm-signature");
                    headers.push(header("x-zm-signature", format!("v0={marker}")));
                }
                "/hooks/zoom".to_owned()
            }
            Sender::GenericSigned => {
                headers.extend(standard_webhooks_headers(marker, NOW_UNIX, &bytes).into_iter().skip(1));
                if credential {
                    headers.retain(|(name, _)| name != "webhook-signature");
                    headers.push(header("webhook-signature", format!("v1,{marker} {marker}")));
                }
                format!("/hooks/generic/{tool}")
            }
            Sender::GenericBearer => {
                let token = if credential { marker } else { GENERIC_SECRET };
                headers.push(header("authorization", format!("Bearer {token}")));
                format!("/hooks/generic/{tool}")
            }
        };
        let path = if matches!(plant, Plant::Route) { format!("/hooks/{marker}/{kind}") } else { path };
        post(&path, headers, bytes)
    }

    /// `application/x-www-form-urlencoded` escaping of one key or value.
    fn form_encode(text: &str) -> String {
        text.bytes()
            .map(|byte| match byte {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => char::from(byte).to_string(),
                b' ' => "+".to_owned(),
                other => format!("%{other:02X}"),
            })
            .collect()
    }

    fn sender() -> impl Strategy<Value = Sender> {
        prop::sample::select(vec![
            Sender::WebinarJamJson,
            Sender::WebinarJamForm,
            Sender::EverWebinarQueryToken,
            Sender::Zoom,
            Sender::GenericSigned,
            Sender::GenericBearer,
        ])
    }

    /// Field names the bridge itself reports: `contact.email`, `[0].kind`, `payload.object.id`.
    fn is_our_field_name(field: &str) -> bool {
        !field.is_empty()
            && field.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '[' | ']'))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 384, failure_persistence: None, ..ProptestConfig::default() })]

        /// A refusal never echoes what the sender wrote: not header values, field values, JSON
        /// keys, path segments or query parameters. Markers are random, so no fixed message can
        /// contain one by chance; only the bridge's own field names may appear in `field`.
        #[test]
        fn refusals_never_echo_request_content(
            marker in "qz[a-z0-9]{10}",
            (sender, plant) in sender().prop_flat_map(|sender| (Just(sender), prop::sample::select(plants_for(sender)))),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
            let (ingest, queue) = ingest();
            let response = runtime.block_on(ingest.handle(&planted_request(sender, plant, &marker)));
            prop_assert!((400..500).contains(&response.status), "{sender:?}/{plant:?} was not refused: {}", response.body);
            let text = response.body.to_string().to_ascii_lowercase();
            prop_assert!(!text.contains(&marker), "{sender:?}/{plant:?} echoes request content: {text}");
            let message = response.body["message"].as_str().unwrap_or_default();
            prop_assert!(!response.body["error"].as_str().unwrap_or_default().is_empty() && message.len() > 10);
            if let Some(field) = response.body.get("field") {
                let field = field.as_str().unwrap_or_default();
                prop_assert!(is_our_field_name(field), "field {field:?} is not one of ours");
            }
            prop_assert_eq!(queue.pending(), 0);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Debug output

mod debug_output {
    use super::*;

    const PASSWORD: &str = "kt-password-9f8e7d6c";
    const DEVELOPER_KEY: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";
    const CUSTOMER_KEY: &str = "kt-customer-key-5a4b3c";
    const LISTBUILDING_APIKEY: &str = "kt-listbuilding-key-1e2d3c";
    const SECRETS: [&str; 8] = [
        PASSWORD,
        DEVELOPER_KEY,
        CUSTOMER_KEY,
        LISTBUILDING_APIKEY,
        WEBINARJAM_SECRET,
        EVERWEBINAR_SECRET,
        ZOOM_SECRET,
        GENERIC_SECRET,
    ];

    fn assert_no_secret(what: &str, text: &str) {
        for secret in SECRETS {
            assert!(!text.contains(secret), "{what} shows a secret: {text}");
        }
        // The base64 part alone is the Standard Webhooks key.
        assert!(!text.contains(GENERIC_SECRET.trim_start_matches("whsec_")), "{what} shows the generic key: {text}");
    }

    /// `{:?}` and `{:#?}` of anything.
    fn debug_forms(value: &impl std::fmt::Debug) -> String {
        format!("{value:?}\n{value:#?}")
    }

    fn config(auth_vars: &[(&str, &str)]) -> BridgeConfig {
        let mut vars: HashMap<String, String> = [
            ("KLICKTIPP_LISTBUILDING_APIKEY", LISTBUILDING_APIKEY),
            ("BRIDGE_WEBINARJAM_SECRET", WEBINARJAM_SECRET),
            ("BRIDGE_EVERWEBINAR_SECRET", EVERWEBINAR_SECRET),
            ("BRIDGE_ZOOM_SECRET_TOKEN", ZOOM_SECRET),
            ("BRIDGE_GENERIC_SECRET", GENERIC_SECRET),
        ]
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
        vars.extend(auth_vars.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())));
        BridgeConfig::from_vars(&vars).expect("a valid configuration")
    }

    fn session_config() -> BridgeConfig {
        config(&[("KLICKTIPP_USERNAME", "bridge"), ("KLICKTIPP_PASSWORD", PASSWORD)])
    }

    fn partner_config() -> BridgeConfig {
        config(&[
            ("KLICKTIPP_USERNAME", "bridge"),
            ("KLICKTIPP_DEVELOPER_KEY", DEVELOPER_KEY),
            ("KLICKTIPP_CUSTOMER_KEY", CUSTOMER_KEY),
        ])
    }

    #[test]
    fn configuration_debug_shows_no_secret() {
        for (name, config) in [("session", session_config()), ("partner", partner_config())] {
            assert_no_secret(&format!("BridgeConfig ({name})"), &debug_forms(&config));
            assert_no_secret("SourceSecrets", &debug_forms(&config.secrets));
            assert_no_secret("KlickTippSettings", &debug_forms(&config.klicktipp));
            assert_no_secret("KlickTippConfig", &debug_forms(&config.klicktipp.client_config(2)));
        }
        assert_no_secret("Secret", &format!("{:?} {}", Secret::new(PASSWORD), Secret::new(PASSWORD)));
    }

    #[test]
    fn client_debug_shows_no_secret() {
        for config in [session_config(), partner_config()] {
            let client = KlickTippClient::new(config.klicktipp.client_config(1)).expect("a client");
            assert_no_secret("KlickTippClient", &debug_forms(&client));
        }
    }

    /// Errors as the client produces them, with every credential configured: a refused login,
    /// a refused listbuilding key, an unreachable server, a missing credential; and every variant
    /// built by hand.
    #[tokio::test]
    async fn error_debug_shows_no_secret() {
        let simulator = harness::start_simulator().await;
        let mut errors: Vec<KlickTippError> = Vec::new();

        let mut wrong_login = KlickTippConfig::new(
            simulator.url(),
            KlickTippAuth::Session { username: "bridge".into(), password: Secret::new(PASSWORD) },
        );
        wrong_login.listbuilding_apikey = Some(Secret::new(LISTBUILDING_APIKEY));
        wrong_login.max_attempts = 1;
        let client = KlickTippClient::new(wrong_login.clone()).expect("a client");
        errors.push(client.list_tags().await.expect_err("the simulator refuses this password"));
        errors.push(client.signin("erika@example.com", &Default::default()).await.expect_err("unknown apikey"));

        let mut unreachable = wrong_login;
        unreachable.base_url = "http://127.0.0.1:9".into();
        let client = KlickTippClient::new(unreachable).expect("a client");
        errors.push(client.upsert_subscriber(&UpsertSubscriber::new("erika@example.com")).await.expect_err("port 9"));

        let mut without_listbuilding = partner_config().klicktipp.client_config(1);
        without_listbuilding.listbuilding_apikey = None;
        let listbuilding_missing = KlickTippClient::new(without_listbuilding).expect("a client");
        errors
            .push(listbuilding_missing.signin("erika@example.com", &Default::default()).await.expect_err("no apikey"));

        errors.extend([
            KlickTippError::Transport { operation: "login", detail: "connection refused".into() },
            KlickTippError::RateLimited { operation: "tag", retry_after: None },
            KlickTippError::Server { operation: "tag", status: 503 },
            KlickTippError::Rejected {
                operation: "upsert subscriber",
                status: 406,
                error: Some(8),
                code: None,
                field: Some(Box::new(FieldError { key: Some("field1".into()), ..FieldError::default() })),
                messages: vec!["invalid".into()],
            },
            KlickTippError::AuthFailed { operation: "login", status: 401 },
            KlickTippError::InvalidResponse { operation: "tag", status: 200, detail: "html".into() },
            KlickTippError::NotConfigured { what: "KLICKTIPP_LISTBUILDING_APIKEY" },
        ]);
        for error in &errors {
            assert_no_secret("KlickTippError", &format!("{}\n{}", debug_forms(error), error));
        }
        simulator.shutdown().await;
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        /// `Email`'s Debug (and so that of every struct holding one) shows a hash, never the address.
        #[test]
        fn email_debug_never_shows_the_address(
            // Starts with a letter beyond hex, so it cannot occur inside the hex hash by chance.
            local in "[g-z][a-z0-9._+-]{4,20}[a-z0-9]",
            domain in "[a-z0-9]{1,12}\\.(com|de|org|co\\.uk)",
        ) {
            let address = format!("{local}@{domain}");
            let email = Email::parse(&address).map_err(|error| TestCaseError::reject(error.to_string()))?;
            let contact = ContactInfo::new(email.clone());
            for text in [format!("{email:?}"), format!("{email:#?}"), format!("{contact:?}"), format!("{contact:#?}")] {
                prop_assert!(!text.contains(&address), "{text}");
                prop_assert!(!text.contains(&local), "{text}");
            }
            let debug = format!("{email:?}");
            prop_assert!(debug.contains(&email.short_hash()), "{debug}");
        }
    }
}
