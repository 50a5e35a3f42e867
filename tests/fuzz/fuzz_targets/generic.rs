//! Generic (Standard Webhooks): any tool name, headers and body, sent unauthenticated, with a
//! fuzzed signature list, with the right bearer, or correctly signed at a fuzzed clock offset with
//! the right `v1` entry hidden among fuzzed ones (key rotation).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use webinar_bridge::Secret;
use webinar_bridge::sources::generic;
use webinar_bridge_fuzz::{
    GENERIC_SECRET, NOW_UNIX, assert_contract, assert_not_unauthorized, raw_request, standard_webhooks_signature,
};

#[derive(Debug, Arbitrary)]
enum Auth {
    Missing,
    RightBearer,
    Fuzzed { webhook_id: Option<String>, timestamp: Option<String>, signature: String },
    Signed { webhook_id: String, clock_offset_seconds: i16, other_entries: Vec<String>, position: u8 },
}

#[derive(Debug, Arbitrary)]
struct Input {
    tool: String,
    auth: Auth,
    json_content_type: bool,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fuzz_target!(|input: Input| {
    let mut headers = Vec::new();
    if input.json_content_type {
        headers.push(("content-type".to_owned(), "application/json".to_owned()));
    }
    match &input.auth {
        Auth::Missing => {}
        Auth::RightBearer => headers.push(("authorization".to_owned(), format!("Bearer {GENERIC_SECRET}"))),
        Auth::Fuzzed { webhook_id, timestamp, signature } => {
            headers.extend(webhook_id.clone().map(|value| ("webhook-id".to_owned(), value)));
            headers.extend(timestamp.clone().map(|value| ("webhook-timestamp".to_owned(), value)));
            headers.push(("webhook-signature".to_owned(), signature.clone()));
        }
        Auth::Signed { webhook_id, clock_offset_seconds, other_entries, position } => {
            let timestamp = (NOW_UNIX + i64::from(*clock_offset_seconds)).to_string();
            let mut entries = other_entries.clone();
            let at = usize::from(*position) % (entries.len() + 1);
            entries.insert(at, standard_webhooks_signature(webhook_id, &timestamp, &input.body));
            headers.push(("webhook-id".to_owned(), webhook_id.clone()));
            headers.push(("webhook-timestamp".to_owned(), timestamp));
            headers.push(("webhook-signature".to_owned(), entries.join(" ")));
        }
    }
    headers.extend(input.headers);
    let request = raw_request("POST", "/hooks/generic/tool", None, headers, input.body);

    let result = generic::parse(&input.tool, &request, &Secret::new(GENERIC_SECRET));
    assert_contract(&result);
    match &input.auth {
        Auth::Missing | Auth::Fuzzed { .. } => {
            let status = result.as_ref().err().map(|rejection| rejection.status());
            assert_eq!(status, Some(401), "an unauthenticated generic request got through");
        }
        Auth::RightBearer => assert_not_unauthorized(&result),
        Auth::Signed { webhook_id, clock_offset_seconds, .. } => {
            // An empty webhook-id cannot be signed for (the verifier requires one).
            let signable = !webhook_id.is_empty();
            let code = result.as_ref().err().map(|rejection| rejection.code);
            if signable && clock_offset_seconds.unsigned_abs() > 300 {
                assert_eq!(code, Some("stale_timestamp"), "a replay {clock_offset_seconds} s away got through");
            } else if signable {
                assert_not_unauthorized(&result);
            }
        }
    }
});
