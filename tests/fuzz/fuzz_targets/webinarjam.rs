//! WebinarJam/EverWebinar: any kind segment, headers, query and body, sent unauthenticated, with
//! a random token, or with the right secret (as bearer or `?token=`) so the body parser is reached.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use webinar_bridge::Secret;
use webinar_bridge::sources::{GenesisProduct, webinarjam};
use webinar_bridge_fuzz::{
    EVERWEBINAR_SECRET, WEBINARJAM_SECRET, assert_contract, assert_not_unauthorized, raw_request,
};

#[derive(Debug, Arbitrary)]
enum Auth {
    Missing,
    RightBearer,
    RightQueryToken,
    AnyAuthorization(String),
}

#[derive(Debug, Arbitrary)]
struct Input {
    everwebinar: bool,
    kind: String,
    auth: Auth,
    content_type: Option<String>,
    headers: Vec<(String, String)>,
    query: Option<String>,
    body: Vec<u8>,
}

fuzz_target!(|input: Input| {
    let (product, secret) = if input.everwebinar {
        (GenesisProduct::EverWebinar, EVERWEBINAR_SECRET)
    } else {
        (GenesisProduct::WebinarJam, WEBINARJAM_SECRET)
    };
    // Ours go first: the parser reads the first header of a name and the first `token`.
    let mut headers = Vec::new();
    let mut query = input.query;
    match &input.auth {
        Auth::Missing => {}
        Auth::RightBearer => headers.push(("Authorization".to_owned(), format!("Bearer {secret}"))),
        Auth::RightQueryToken => {
            query = Some(format!("token={secret}&{}", query.unwrap_or_default()));
        }
        Auth::AnyAuthorization(value) => headers.push(("authorization".to_owned(), value.clone())),
    }
    headers.extend(input.content_type.map(|value| ("content-type".to_owned(), value)));
    headers.extend(input.headers);
    let path = format!("/hooks/{}/kind", if input.everwebinar { "everwebinar" } else { "webinarjam" });
    let request = raw_request("POST", &path, query, headers, input.body);

    let result = webinarjam::parse(product, &input.kind, &request, &Secret::new(secret));
    assert_contract(&result);
    if matches!(input.auth, Auth::RightBearer | Auth::RightQueryToken) {
        assert_not_unauthorized(&result);
    }
});
