//! Strict decoding (issue 12): authenticated WebinarJam bodies built from arbitrary key and value
//! bytes, as a form or as JSON, with keys repeated and invalid UTF-8 wherever the fuzzer puts it,
//! and arbitrary e-mail addresses with internationalized domains. No panic; a conflicting
//! duplicate or invalid UTF-8 is a 400 naming a field, never accepted; an accepted address has
//! one ASCII spelling.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use webinar_bridge::Secret;
use webinar_bridge::domain::Email;
use webinar_bridge::sources::{GenesisProduct, webinarjam};
use webinar_bridge_fuzz::{WEBINARJAM_SECRET, assert_contract, assert_not_unauthorized, raw_request};

#[derive(Debug, Arbitrary)]
struct Input {
    as_form: bool,
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
    address: String,
}

fn percent_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("%{byte:02X}")).collect()
}

/// The bytes a JSON string can hold raw: quotes, backslashes and control bytes are dropped so
/// every string stays one string (invalid UTF-8 is kept, to reach the decoder).
fn json_clean(bytes: &[u8]) -> Vec<u8> {
    bytes.iter().copied().filter(|b| !matches!(b, b'"' | b'\\') && *b >= 0x20).collect()
}

/// JSON text with the cleaned bytes inside the quotes.
fn json_body(pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let clean = json_clean;
    let mut body = b"{".to_vec();
    for (index, (key, value)) in pairs.iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        body.push(b'"');
        body.extend(clean(key));
        body.extend_from_slice(b"\":\"");
        body.extend(clean(value));
        body.push(b'"');
    }
    body.push(b'}');
    body
}

fuzz_target!(|input: Input| {
    let (body, content_type) = if input.as_form {
        let pairs: Vec<String> =
            input.pairs.iter().map(|(key, value)| format!("{}={}", percent_encode(key), percent_encode(value))).collect();
        (pairs.join("&").into_bytes(), "application/x-www-form-urlencoded")
    } else {
        (json_body(&input.pairs), "application/json")
    };
    let headers = vec![
        ("authorization".to_owned(), format!("Bearer {WEBINARJAM_SECRET}")),
        ("content-type".to_owned(), content_type.to_owned()),
    ];
    let request = raw_request("POST", "/hooks/webinarjam/registered", None, headers, body);
    let result = webinarjam::parse(GenesisProduct::WebinarJam, "registered", &request, &Secret::new(WEBINARJAM_SECRET));
    assert_contract(&result);
    assert_not_unauthorized(&result);

    let invalid = |bytes: &[u8]| std::str::from_utf8(bytes).is_err();
    let any_invalid_utf8 = if input.as_form {
        input.pairs.iter().any(|(key, value)| invalid(key) || invalid(value))
    } else {
        input.pairs.iter().any(|(key, value)| invalid(&json_clean(key)) || invalid(&json_clean(value)))
    };
    if input.as_form {
        // A key sent twice with different values (`[]` keys are lists) must not be accepted.
        let conflicting = input.pairs.iter().enumerate().any(|(i, (key, value))| {
            !key.ends_with(b"[]") && input.pairs[..i].iter().any(|(other_key, other_value)| other_key == key && other_value != value)
        });
        if any_invalid_utf8 || conflicting {
            let rejection = result.as_ref().err().expect("invalid UTF-8 or a conflicting duplicate was accepted");
            assert_eq!(rejection.status(), 400, "{}", rejection.code);
            assert!(rejection.field.is_some(), "{} names no field", rejection.code);
        }
    } else if any_invalid_utf8 {
        assert!(result.is_err(), "a JSON body with invalid UTF-8 was accepted");
    }

    if let Ok(email) = Email::parse(&input.address) {
        let domain = email.as_str().rsplit_once('@').map(|(_, domain)| domain).unwrap_or_default();
        assert!(domain.is_ascii(), "a domain kept a non-ASCII spelling");
        assert_eq!(Email::parse(email.as_str()).ok(), Some(email), "the normalized address is not a fixed point");
    }
});
