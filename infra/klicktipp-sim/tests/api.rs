//! Endpoint behaviour over HTTP: transport, auth, contacts, tags, fields, listbuilding.

mod common;

use std::time::Duration;

use common::{PASSWORD, TestApi, USERNAME};
use klicktipp_sim::{FieldSpec, FieldType, ListbuildingKey, SimConfig};
use serde_json::{Value, json};

fn config_with_fields() -> SimConfig {
    SimConfig::default()
        .with_custom_field("field100", "Webinar start", FieldType::DateTime)
        .with_custom_field("field101", "Join link", FieldType::Url)
        .with_custom_field("field102", "Minutes", FieldType::Number)
        .with_custom_field("field103", "Amount", FieldType::Decimal)
        .with_custom_field("field104", "Start time", FieldType::Time)
        .with_custom_field("field105", "Webinar date", FieldType::Date)
        .with_custom_field("field106", "Assistant", FieldType::Email)
        .with_custom_field("field107", "Notes", FieldType::Paragraph)
        .with_custom_field("field108", "Signature", FieldType::Html)
}

mod sim {
    use super::*;

    // --- transport -------------------------------------------------------------

    #[tokio::test]
    async fn sim_json_suffix_is_optional_everywhere() {
        let api = TestApi::logged_in(SimConfig::default()).await;
        let id = api.upsert(json!({"email": "a@b.example"})).await["id"].as_str().expect("id").to_owned();
        assert_eq!(api.get("/tag.json").await.pair(), (200, json!({})));
        assert_eq!(api.get(&format!("/subscriber/{id}.json")).await.json()["email"], "a@b.example");
        assert_eq!(api.post("/subscriber.json", json!({"email": "A@B.example"})).await.json()["id"], id);
        let calls = api.sim.calls_by_endpoint();
        assert_eq!(calls.get("POST /subscriber"), Some(&2));
        assert_eq!(calls.get("GET /subscriber/{id}"), Some(&1));
        assert_eq!(calls.get("GET /tag"), Some(&1));
    }

    #[tokio::test]
    async fn sim_wrong_method_is_405_with_a_json_string() {
        let api = TestApi::logged_in(SimConfig::default()).await;
        let answer = api.delete("/tag").await;
        assert_eq!(
            answer.pair(),
            (405, json!("No route found for \"DELETE /tag\": Method Not Allowed (Allow: GET, POST)"))
        );
        assert_eq!(answer.header("content-type").as_deref(), Some("application/json"));
        assert_eq!(answer.header("allow").as_deref(), Some("GET, POST"));
        let suffixed = api.send("PATCH", "/tag/5.json", Some(json!({}))).await;
        assert_eq!(
            suffixed.json(),
            json!("No route found for \"PATCH /tag/5.json\": Method Not Allowed (Allow: GET, PUT, DELETE)")
        );
        assert_eq!(api.sim.calls_by_endpoint().get("PATCH /tag/{id}"), Some(&1));
    }

    #[tokio::test]
    async fn sim_unknown_path_is_404_array() {
        let api = TestApi::logged_in(SimConfig::default()).await;
        let answer = api.get("/contacts/17").await;
        assert_eq!(answer.pair(), (404, json!(["No route found for \"GET /contacts/17\""])));
        assert_eq!(api.sim.calls_by_endpoint().get("GET /contacts/{id}"), Some(&1));
    }

    #[tokio::test]
    async fn sim_form_bodies_with_php_brackets() {
        let api = TestApi::logged_in(SimConfig::default()).await;
        let a = api.create_tag("A").await;
        let b = api.create_tag("B").await;
        let form =
            format!("email=erika%40example.com&fields%5BfieldFirstName%5D=Erika&fields[fieldCity]=K%C3%B6ln&tagid={a}");
        let created = api.send_raw("POST", "/subscriber", "application/x-www-form-urlencoded", &form).await;
        assert_eq!(created.status, 200, "{}", created.text);
        assert_eq!(
            (created.json()["fieldFirstName"].clone(), created.json()["fieldCity"].clone()),
            (json!("Erika"), json!("Köln"))
        );
        let tagged = api
            .send_raw(
                "POST",
                "/subscriber/tag",
                "application/x-www-form-urlencoded",
                &format!("email=erika%40example.com&tagids[0]={a}&tagids[1]={b}"),
            )
            .await;
        assert_eq!(tagged.pair(), (200, json!([true])));
        assert_eq!(api.sim.contacts()[0].tags, ["A", "B"]);
        // The log keeps the PHP structure as JSON.
        let logged = api.sim.request_log().into_iter().find(|e| e.endpoint == "POST /subscriber/tag").expect("logged");
        assert_eq!(logged.body, json!({"email": "erika@example.com", "tagids": [a.to_string(), b.to_string()]}));
        // Login works with a form too.
        let login = api
            .send_raw(
                "POST",
                "/account/login",
                "application/x-www-form-urlencoded",
                &format!("username={USERNAME}&password={PASSWORD}"),
            )
            .await;
        assert_eq!(login.status, 406, "already logged in: {}", login.text);
    }

    #[tokio::test]
    async fn sim_multipart_bodies() {
        let api = TestApi::logged_in(SimConfig::default()).await;
        let body = "--b0undary\r\nContent-Disposition: form-data; name=\"email\"\r\n\r\nmax@example.com\r\n\
                    --b0undary\r\nContent-Disposition: form-data; name=\"fields[fieldLastName]\"\r\n\r\nMustermann\r\n--b0undary--\r\n";
        let answer = api.send_raw("POST", "/subscriber", "multipart/form-data; boundary=b0undary", body).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(answer.json()["fieldLastName"], "Mustermann");
    }

    #[tokio::test]
    async fn sim_unparseable_json_is_400() {
        let api = TestApi::logged_in(SimConfig::default()).await;
        let answer = api.send_raw("POST", "/subscriber", "application/json", "{\"email\":").await;
        assert_eq!(answer.status, 400);
        assert!(answer.json()[0].is_string());
    }

    // --- auth -------------------------------------------------------------------

    #[tokio::test]
    async fn sim_login_sets_a_drupal_session_cookie() {
        let mut api = TestApi::start(SimConfig::default()).await;
        let answer = api.login().await;
        let body = answer.json();
        let name = body["session_name"].as_str().expect("name");
        let sessid = body["sessid"].as_str().expect("sessid");
        assert!(
            name.starts_with("SSESS") && name.len() == 37 && name[5..].bytes().all(|b| b.is_ascii_hexdigit()),
            "{name}"
        );
        assert_eq!(name, api.sim.session_name());
        assert_eq!(sessid.len(), 43);
        // Plain http: no `Secure` flag, or a cookie jar would never send the cookie back.
        assert_eq!(answer.header("set-cookie"), Some(format!("{name}={sessid}; path=/; httponly")));
        assert_eq!(body["account"]["username"], USERNAME);
        assert_eq!(answer.header("content-type").as_deref(), Some("application/json"));
    }

    #[tokio::test]
    async fn sim_session_cookie_is_secure_behind_https() {
        let mut api = TestApi::start(SimConfig::default()).await;
        api.extra_headers.push(("x-forwarded-proto".to_owned(), "https".to_owned()));
        let answer = api.login().await;
        let cookie = answer.header("set-cookie").expect("cookie");
        assert!(cookie.ends_with("; path=/; secure; httponly"), "{cookie}");
    }

    #[tokio::test]
    async fn sim_subscriber_index_filters_by_status() {
        let api = TestApi::logged_in(SimConfig::default()).await;
        let pending = api.upsert(json!({"email": "pending@b.example"})).await["id"].clone();
        let subscribed =
            api.upsert(json!({"email": "single@b.example", "listid": klicktipp_sim::SINGLE_OPTIN_LISTID})).await["id"]
                .clone();
        assert_eq!(api.get("/subscriber").await.pair(), (200, json!({"subscribers": [subscribed.clone()]})));
        assert_eq!(
            api.get("/subscriber.json?status=subscribed,pending&bounceStatus=nobounce,softbounce").await.pair(),
            (200, json!({"subscribers": [pending.clone(), subscribed.clone()]}))
        );
        assert_eq!(api.get("/subscriber?status=unsubscribed").await.pair(), (200, json!({"subscribers": []})));
        assert_eq!(api.get("/subscriber?bounceStatus=hardbounce").await.pair(), (200, json!({"subscribers": []})));
        let bad = api.get("/subscriber?status=gone").await;
        assert_eq!(bad.pair(), (400, json!(["Invalid value for \"status\"."])));
        // The older plain-array shape is a knob.
        let mut knobs = api.sim.knobs();
        knobs.subscriber_index_shape = klicktipp_sim::SubscriberIndexShape::Array;
        api.sim.set_knobs(knobs);
        assert_eq!(api.get("/subscriber?status=pending").await.pair(), (200, json!([pending])));
        // Not without a session; and POST /subscriber is still the upsert.
        let anonymous = TestApi::start(SimConfig::default()).await;
        assert_eq!(anonymous.get("/subscriber").await.status, 403);
        let wrong = api.delete("/subscriber").await;
        assert_eq!(wrong.status, 405);
        assert_eq!(wrong.header("allow").as_deref(), Some("POST, GET"));
        assert_eq!(api.sim.calls_by_endpoint().get("GET /subscriber"), Some(&6));
    }

    #[tokio::test]
    async fn sim_login_errors() {
        let api = TestApi::start(SimConfig::default()).await;
        let wrong = api.post("/account/login", json!({"username": USERNAME, "password": "nope"})).await;
        assert_eq!(wrong.pair(), (401, json!(["Wrong username or password."])));
        let missing = api.post("/account/login", json!({"password": PASSWORD})).await;
        assert_eq!(missing.pair(), (400, json!(["The key \"username\" must be a string."])));
        let numeric = api.post("/account/login", json!({"username": USERNAME, "password": 5})).await;
        assert_eq!(numeric.status, 400);
    }

    #[tokio::test]
    async fn sim_logout_ends_the_session() {
        let mut api = TestApi::logged_in(SimConfig::default()).await;
        assert_eq!(api.post("/account/logout", json!({})).await.pair(), (200, json!([true])));
        assert_eq!(api.get("/tag").await.pair(), (403, json!(["API access denied."])));
        assert_eq!(api.send("POST", "/account/logout", None).await.pair(), (406, json!(["User is not logged in."])));
        api.cookie = None;
        assert_eq!(api.send("POST", "/account/logout", None).await.status, 406);
    }

    #[tokio::test]
    async fn sim_management_routes_need_a_session() {
        let mut api = TestApi::start(SimConfig::default()).await;
        for (method, path) in
            [("GET", "/tag"), ("POST", "/subscriber"), ("GET", "/field"), ("GET", "/list"), ("DELETE", "/tag/1")]
        {
            let answer = api.send(method, path, Some(json!({"email": "a@b.example"}))).await;
            assert_eq!(answer.pair(), (403, json!(["API access denied."])), "{method} {path}");
        }
        api.cookie = Some(format!("{}=made-up", api.sim.session_name()));
        assert_eq!(api.get("/tag").await.status, 403);
    }

    // --- contacts -----------------------------------------------------------------

    #[tokio::test]
    async fn sim_contact_object_has_the_reference_shape() {
        let api = TestApi::logged_in(config_with_fields()).await;
        let tag = api.create_tag("Registered").await;
        let contact =
            api.upsert(json!({"email": "a@b.example", "tagid": tag, "fields": {"field100": 1715603400}})).await;
        assert!(contact["id"].as_str().is_some_and(|id| id.parse::<u64>().is_ok()), "{contact}");
        assert_eq!(contact["listid"], "1");
        assert_eq!(contact["status"], "Opt-In Pending");
        assert_eq!(contact["bounce"], "Not Bounced");
        assert_eq!(contact["date"], "");
        assert_eq!(contact["optin_ip"], "0.0.0.0 - By API Request");
        let optin = contact["optin"].as_str().expect("optin");
        assert_eq!((optin.len(), &optin[2..3], &optin[5..6], &optin[10..11]), (19, ".", ".", " "), "{optin}");
        assert_eq!(contact["sms_phone"], Value::Null);
        assert_eq!(contact["field100"], "1715603400");
        assert_eq!(contact["fieldFirstName"], "");
        for field in klicktipp_sim::global_fields() {
            assert!(contact[&field.key].is_string(), "{} missing", field.key);
        }
        assert_eq!(contact["tags"], json!([tag.to_string()]));
        let tagged_at = contact["manual_tags"][tag.to_string()].as_str().expect("timestamp string");
        assert!(tagged_at.parse::<u64>().is_ok_and(|t| t > 1_700_000_000));
        assert_eq!(contact["smart_tags"], json!({}));
        assert_eq!(contact["campaigns_started"], json!({}));
    }

    #[tokio::test]
    async fn sim_opt_in_processes_decide_the_status() {
        let api = TestApi::logged_in(SimConfig::default()).await;
        assert_eq!(api.upsert(json!({"email": "d@b.example"})).await["status"], "Opt-In Pending");
        assert_eq!(api.upsert(json!({"email": "e@b.example", "listid": 1})).await["status"], "Opt-In Pending");
        let single = api.upsert(json!({"email": "s@b.example", "listid": "2"})).await;
        assert_eq!((single["status"].clone(), single["listid"].clone()), (json!("Subscribed"), json!("2")));
        assert_ne!(single["date"], "");
        // A pending contact that goes through a single opt-in process is subscribed.
        assert_eq!(api.upsert(json!({"email": "d@b.example", "listid": 2})).await["status"], "Subscribed");
        assert_eq!(
            api.post("/subscriber", json!({"email": "x@b.example", "listid": 3})).await.pair(),
            (406, json!({"error": 402}))
        );
        assert_eq!(
            api.post("/subscriber", json!({"email": "x@b.example", "listid": "abc"})).await.pair(),
            (406, json!({"error": 402}))
        );
        assert!(api.sim.confirm_optin("E@B.example"));
        assert_eq!(
            api.sim.contacts().iter().find(|c| c.email == "e@b.example").map(|c| c.status.clone()).as_deref(),
            Some("Subscribed")
        );
    }

    #[tokio::test]
    async fn sim_upsert_is_by_case_insensitive_email() {
        let api = TestApi::logged_in(SimConfig::default()).await;
        let first = api.upsert(json!({"email": "Erika@Example.com", "fields": {"fieldFirstName": "Erika"}})).await;
        let second = api.upsert(json!({"email": "erika@example.COM", "fields": {"fieldLastName": "M"}})).await;
        assert_eq!(first["id"], second["id"]);
        assert_eq!(second["fieldFirstName"], "Erika");
        let contacts = api.sim.contacts();
        assert_eq!(contacts.len(), 1);
        assert_eq!(contacts[0].email, "Erika@Example.com");
        // An empty value clears a field; ContactView lists only non-empty ones.
        api.upsert(json!({"email": "erika@example.com", "fields": {"fieldFirstName": ""}})).await;
        assert_eq!(api.sim.contacts()[0].fields.keys().collect::<Vec<_>>(), ["fieldLastName"]);
    }

    #[tokio::test]
    async fn sim_create_errors() {
        let api = TestApi::logged_in(SimConfig::default()).await;
        let cases = [
            (json!({}), json!({"error": 32})),
            (json!({"email": ""}), json!({"error": 32})),
            (json!({"email": "no-at-sign"}), json!({"error": 5})),
            (json!({"email": "a@b"}), json!({"error": 5})),
            (json!({"email": "a@b.example", "tagid": 5}), json!({"error": 403})),
            (json!({"email": "a@b.example", "smsnumber": "12"}), json!({"error": 11})),
        ];
        for (body, error) in cases {
            assert_eq!(api.post("/subscriber", body.clone()).await.pair(), (406, error), "{body}");
        }
        assert!(api.sim.contacts().is_empty());
        let sms_only = api.upsert(json!({"smsnumber": "+49 171 1234567"})).await;
        assert_eq!(sms_only["sms_phone"], "00491711234567");
    }

    #[tokio::test]
    async fn sim_field_types_are_validated() {
        let api = TestApi::logged_in(config_with_fields()).await;
        let good = json!({
            "field100": 1715603400, "field101": "https://join.example/x", "field102": "-3", "field103": 1999,
            "field104": "52200", "field105": "755222400", "field106": "a@b", "field107": "Line 1\nLine 2",
            "field108": "<strong>Hi</strong>", "fieldBirthday": 755222400, "fieldLeadValue": 100,
        });
        let contact = api.upsert(json!({"email": "a@b.example", "fields": good})).await;
        assert_eq!(contact["field103"], "1999");
        let bad = [
            ("field100", json!("14.05.2024 12:30")),
            ("field100", json!(1715603400123.5)),
            ("field101", json!("join.example/x")),
            ("field102", json!(2.5)),
            ("field102", json!("ten")),
            ("field103", json!("19.99")),
            ("field104", json!(86400)),
            ("field104", json!("-1")),
            ("field105", json!("2024-05-14")),
            ("field106", json!("nobody")),
            ("fieldFirstName", json!("two\nlines")),
            ("fieldFirstName", json!({"nested": true})),
        ];
        for (key, value) in bad {
            let answer = api.post("/subscriber", json!({"email": "a@b.example", "fields": {key: value}})).await;
            let body = answer.json();
            assert_eq!(
                (answer.status, body["error"].clone(), body["name"].clone()),
                (406, json!(8), json!(key)),
                "{key}={value}"
            );
            assert!(body["reason"].as_str().is_some_and(|r| !r.is_empty()));
            assert!(body["field"].is_string() && body["field_value"].is_string());
        }
        let labelled =
            api.post("/subscriber", json!({"email": "a@b.example", "fields": {"field100": "tomorrow"}})).await;
        assert_eq!(labelled.json()["field"], "Webinar start");
        assert_eq!(labelled.json()["field_value"], "tomorrow");
        let unknown = api.post("/subscriber", json!({"email": "a@b.example", "fields": {"field999": "x"}})).await;
        assert_eq!(
            (unknown.status, unknown.json()["error"].clone(), unknown.json()["name"].clone()),
            (406, json!(8), json!("field999"))
        );
        // Nothing of the rejected calls was stored.
        assert_eq!(api.sim.contacts()[0].fields.get("field100").map(String::as_str), Some("1715603400"));
    }

    #[tokio::test]
    async fn sim_unsubscribe_rules() {
        let api = TestApi::logged_in(SimConfig::default()).await;
        api.upsert(json!({"email": "pending@b.example"})).await;
        api.upsert(json!({"email": "sub@b.example", "listid": 2})).await;
        assert_eq!(
            api.post("/subscriber/unsubscribe", json!({"email": "pending@b.example"})).await.pair(),
            (406, json!({"error": 9}))
        );
        assert_eq!(
            api.post("/subscriber/unsubscribe", json!({"email": "who@b.example"})).await.pair(),
            (406, json!({"error": 7}))
        );
        assert_eq!(
            api.post("/subscriber/unsubscribe", json!({"email": "SUB@b.example"})).await.pair(),
            (200, json!([true]))
        );
        assert_eq!(
            api.post("/subscriber/unsubscribe", json!({"email": "sub@b.example"})).await.pair(),
            (406, json!({"error": 9}))
        );
        assert_eq!(api.post("/subscriber", json!({"email": "sub@b.example"})).await.pair(), (406, json!({"error": 4})));
        let contact = api.sim.contacts().into_iter().find(|c| c.email == "sub@b.example").expect("kept");
        assert_eq!(contact.status, "Unsubscribed");
    }

    #[tokio::test]
    async fn sim_search_get_update_delete() {
        let api = TestApi::logged_in(SimConfig::default()).await;
        let id: u64 =
            api.upsert(json!({"email": "a@b.example"})).await["id"].as_str().expect("id").parse().expect("digits");
        api.upsert(json!({"email": "other@b.example"})).await;
        assert_eq!(api.post("/subscriber/search", json!({"email": "A@b.example"})).await.pair(), (200, json!([id])));
        assert_eq!(
            api.post("/subscriber/search", json!({"email": "x@b.example"})).await.pair(),
            (404, json!(["There is no such entity."]))
        );
        assert_eq!(api.post("/subscriber/search", json!({})).await.status, 401);

        let contact = api.get(&format!("/subscriber/{id}")).await.json();
        let by_key = api.get(&format!("/subscriber/{}", klicktipp_key(&api, id).await)).await;
        assert_eq!(by_key.json()["id"], contact["id"]);
        assert_eq!(api.get("/subscriber/424242").await.status, 404);

        let path = format!("/subscriber/{id}");
        let update = |body: Value| api.put(&path, body);
        assert_eq!(update(json!({"fields": {"fieldCity": "Bonn"}})).await.pair(), (200, json!([true])));
        assert_eq!(update(json!({"fields": {"fieldBirthday": "01.01.1990"}})).await.pair(), (406, json!({"error": 7})));
        assert_eq!(update(json!({"newemail": "OTHER@b.example"})).await.pair(), (406, json!({"error": 507})));
        assert_eq!(update(json!({"newemail": "broken"})).await.pair(), (406, json!({"error": 10, "code": 5})));
        assert_eq!(update(json!({"newemail": "new@b.example"})).await.pair(), (200, json!([true])));
        assert_eq!(api.post("/subscriber/search", json!({"email": "new@b.example"})).await.json(), json!([id]));
        assert_eq!(api.post("/subscriber/search", json!({"email": "a@b.example"})).await.status, 404);
        assert_eq!(
            api.put("/subscriber/424242", json!({})).await.pair(),
            (406, json!(["The contact does not exist."]))
        );

        assert_eq!(api.delete(&format!("/subscriber/{id}")).await.pair(), (200, json!([true])));
        assert_eq!(api.delete(&format!("/subscriber/{id}")).await.status, 404);
        assert_eq!(api.sim.contacts().len(), 1);
    }

    /// The contact key is in the redirect link of a sign-in.
    async fn klicktipp_key(api: &TestApi, id: u64) -> String {
        let answer = api.post("/list/redirect", json!({"listid": 1, "email": "a@b.example"})).await;
        let url = answer.json()[0].as_str().expect("url").to_owned();
        let key = url.rsplit('/').next().expect("key").to_owned();
        assert!(!key.chars().all(|c| c.is_ascii_digit()), "{key} for {id}");
        key
    }

    // --- tags ---------------------------------------------------------------------

    #[tokio::test]
    async fn sim_tag_crud() {
        let api = TestApi::logged_in(SimConfig::default()).await;
        let answer = api.post("/tag", json!({"name": "Registered", "text": "by the bridge"})).await;
        let id = answer.json()[0].as_u64().expect("[id] as an integer");
        assert_eq!(api.get("/tag").await.json(), json!({id.to_string(): "Registered"}));
        assert_eq!(
            api.get(&format!("/tag/{id}")).await.json(),
            json!({"tagid": id.to_string(), "name": "Registered", "text": "by the bridge"})
        );
        assert_eq!(api.post("/tag", json!({"name": "  "})).await.pair(), (406, json!(["Tag could not be created."])));
        assert_eq!(api.post("/tag", json!({})).await.status, 406);
        assert_eq!(api.put(&format!("/tag/{id}"), json!({"name": "Renamed"})).await.pair(), (200, json!([true])));
        assert_eq!(api.get(&format!("/tag/{id}")).await.json()["text"], "by the bridge");
        assert_eq!(api.put(&format!("/tag/{id}"), json!({"name": ""})).await.status, 406);
        assert_eq!(
            api.put("/tag/424242", json!({"name": "x"})).await.pair(),
            (404, json!(["There is no tag with this ID."]))
        );
        assert_eq!(api.get("/tag/424242").await.status, 404);
        assert_eq!(api.get("/tag/900001").await.status, 404, "smart tags are not listed");
        assert_eq!(api.delete("/tag/424242").await.status, 404);
    }

    #[tokio::test]
    async fn sim_tagging_is_idempotent_and_keeps_the_first_timestamp() {
        let api = TestApi::logged_in(SimConfig::default()).await;
        let a = api.create_tag("A").await;
        let b = api.create_tag("B").await;
        api.upsert(json!({"email": "a@b.example", "tagid": a})).await;
        let first = api.upsert(json!({"email": "a@b.example"})).await["manual_tags"][a.to_string()].clone();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(
            api.post("/subscriber/tag", json!({"email": "a@b.example", "tagids": [a, b.to_string()]})).await.pair(),
            (200, json!([true]))
        );
        assert_eq!(
            api.post("/subscriber/tag", json!({"email": "a@b.example", "tagids": [a, b]})).await.pair(),
            (200, json!([true]))
        );
        let contact = api.upsert(json!({"email": "a@b.example"})).await;
        assert_eq!(contact["manual_tags"][a.to_string()], first);
        assert_ne!(contact["manual_tags"][b.to_string()], first);
        assert_eq!(
            api.post("/subscriber/tag", json!({"email": "x@b.example", "tagids": [a]})).await.pair(),
            (406, json!({"error": 7}))
        );
        assert_eq!(
            api.post("/subscriber/tag", json!({"email": "a@b.example", "tagids": []})).await.pair(),
            (406, json!({"error": 403}))
        );
        assert_eq!(
            api.post("/subscriber/tag", json!({"email": "a@b.example", "tagids": [a, 999]})).await.pair(),
            (406, json!({"error": 403}))
        );
        assert_eq!(api.post("/subscriber/tag", json!({"email": "a@b.example"})).await.status, 401);

        assert_eq!(
            api.post("/subscriber/untag", json!({"email": "a@b.example", "tagid": b})).await.pair(),
            (200, json!([true]))
        );
        assert_eq!(
            api.post("/subscriber/untag", json!({"email": "a@b.example", "tagid": b})).await.pair(),
            (200, json!([true]))
        );
        assert_eq!(
            api.post("/subscriber/untag", json!({"email": "x@b.example", "tagid": b})).await.pair(),
            (406, json!({"error": 7}))
        );
        assert_eq!(
            api.post("/subscriber/untag", json!({"email": "a@b.example", "tagid": 900001})).await.pair(),
            (406, json!({"error": 31}))
        );
        assert_eq!(api.sim.contacts()[0].tags, ["A"]);
        let tagged = api.post("/subscriber/tagged", json!({"tagid": a})).await.json();
        assert_eq!(tagged.as_object().map(|m| m.len()), Some(1));
    }

    #[tokio::test]
    async fn sim_deleting_a_tag_removes_it_from_every_contact() {
        let api = TestApi::logged_in(SimConfig::default()).await;
        let doomed = api.create_tag("Doomed").await;
        let kept = api.create_tag("Kept").await;
        for email in ["a@b.example", "c@d.example"] {
            api.upsert(json!({"email": email})).await;
            api.post("/subscriber/tag", json!({"email": email, "tagids": [doomed, kept]})).await;
        }
        assert_eq!(api.delete(&format!("/tag/{doomed}")).await.pair(), (200, json!([true])));
        for contact in api.sim.contacts() {
            assert_eq!(contact.tags, ["Kept"]);
        }
        let contact = api.upsert(json!({"email": "a@b.example"})).await;
        assert_eq!(contact["tags"], json!([kept.to_string()]));
        assert_eq!(api.sim.tags().into_iter().collect::<Vec<_>>(), [(kept, "Kept".to_owned())]);
    }

    // --- lists and fields ------------------------------------------------------------

    #[tokio::test]
    async fn sim_lists_and_fields() {
        let api = TestApi::logged_in(config_with_fields()).await;
        assert_eq!(api.get("/list").await.json(), json!({"1": "", "2": "Single opt-in"}));
        let detail = api.get("/list/2").await.json();
        assert_eq!((detail["listid"].clone(), detail["usesingleoptin"].clone()), (json!(2), json!(true)));
        assert!(detail["pendingurl"].as_str().is_some_and(|u| u.starts_with("https://")));
        assert_eq!(api.get("/list/3").await.pair(), (404, json!(["There is no opt-in process with this ID."])));

        let fields = api.get("/field").await.json();
        let fields = fields.as_object().expect("map");
        assert_eq!(fields.len(), 16 + 9);
        assert_eq!(fields["fieldFirstName"], "First name");
        assert_eq!(fields["field100"], "Webinar start");
        assert_eq!(api.get("/field/FirstName").await.json(), json!({"id": "FirstName", "name": "First name"}));
        assert_eq!(api.get("/field/100").await.json(), json!({"id": "100", "name": "Webinar start"}));
        assert_eq!(api.get("/field/field100").await.status, 404);
    }

    #[tokio::test]
    async fn sim_custom_field_may_override_a_global() {
        let config = SimConfig {
            custom_fields: vec![
                FieldSpec::new("fieldWebsite", "Homepage", FieldType::Line),
                FieldSpec::new("777", "Bare id", FieldType::Line),
            ],
            ..SimConfig::default()
        };
        let api = TestApi::logged_in(config).await;
        let fields = api.get("/field").await.json();
        assert_eq!((fields["fieldWebsite"].clone(), fields["field777"].clone()), (json!("Homepage"), json!("Bare id")));
        assert_eq!(
            api.upsert(json!({"email": "a@b.example", "fields": {"fieldWebsite": "no scheme"}})).await["fieldWebsite"],
            "no scheme"
        );
    }

    // --- listbuilding -----------------------------------------------------------------

    #[tokio::test]
    async fn sim_listbuilding_signin_signout_signoff() {
        let config = SimConfig {
            listbuilding_keys: vec![
                ListbuildingKey { apikey: "doi-key".into(), listid: 1, tagid: 55 },
                ListbuildingKey { apikey: "soi-key".into(), listid: 2, tagid: 0 },
            ],
            ..SimConfig::default()
        };
        let api = TestApi::start(config).await;
        assert_eq!(api.sim.tags().get(&55).map(String::as_str), Some("Listbuilding doi-key"));
        let pending = api
            .post(
                "/subscriber/signin",
                json!({"apikey": "doi-key", "email": "a@b.example", "fields": {"fieldFirstName": "Alex"}}),
            )
            .await;
        assert_eq!(pending.status, 200);
        let url = pending.json()[0].as_str().expect("url").to_owned();
        assert!(url.starts_with("https://") && url.contains("/pending/"), "{url}");
        let thanks = api.post("/subscriber/signin", json!({"apikey": "soi-key", "email": "s@b.example"})).await;
        assert!(thanks.json()[0].as_str().is_some_and(|u| u.contains("/thankyou/")), "{}", thanks.text);

        let contacts = api.sim.contacts();
        assert_eq!(contacts[0].tags, ["Listbuilding doi-key"]);
        assert_eq!(contacts[0].fields.get("fieldFirstName").map(String::as_str), Some("Alex"));
        assert_eq!((contacts[0].status.as_str(), contacts[1].status.as_str()), ("Opt-In Pending", "Subscribed"));

        let bad_key = api.post("/subscriber/signin", json!({"apikey": "nope", "email": "a@b.example"})).await;
        assert_eq!((bad_key.status, bad_key.json()["error"].clone()), (406, json!(100)));
        assert!(bad_key.json()["error_message"].is_string());
        assert_eq!(
            api.post("/subscriber/signin", json!({"apikey": "nope"})).await.json()["error"],
            100,
            "the key is checked first"
        );
        assert_eq!(
            api.post("/subscriber/signin", json!({"apikey": "doi-key"})).await.pair(),
            (406, json!({"error": 32}))
        );
        assert_eq!(
            api.post("/subscriber/signin", json!({"apikey": "doi-key", "email": "x"})).await.pair(),
            (406, json!({"error": 5}))
        );
        assert_eq!(
            api.post("/subscriber/signin", json!({"email": "a@b.example"})).await.pair(),
            (401, json!(["Missing required argument apikey"]))
        );

        assert_eq!(
            api.post("/subscriber/signout", json!({"apikey": "doi-key", "email": "a@b.example"})).await.pair(),
            (200, json!([true]))
        );
        assert!(api.sim.contacts()[0].tags.is_empty());
        assert_eq!(
            api.post("/subscriber/signoff", json!({"apikey": "doi-key", "email": "a@b.example"})).await.pair(),
            (200, json!([true]))
        );
        assert_eq!(
            api.post("/subscriber/signoff", json!({"apikey": "doi-key", "email": "a@b.example"})).await.pair(),
            (406, json!({"error": 9}))
        );
        assert_eq!(
            api.post("/subscriber/signoff", json!({"apikey": "doi-key", "email": "who@b.example"})).await.pair(),
            (406, json!({"error": 9}))
        );
        assert_eq!(api.sim.contacts()[0].status, "Unsubscribed");
        assert_eq!(
            api.post("/subscriber/signin", json!({"apikey": "doi-key", "email": "a@b.example"})).await.pair(),
            (406, json!({"error": 4}))
        );
    }
}
