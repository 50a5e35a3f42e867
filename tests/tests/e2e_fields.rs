//! Issue 15 item 3: every logical field a marketer can map reaches KlickTipp (the simulator,
//! over real HTTP) in the format of its KlickTipp field type, from each source that sends it.
//! The simulator refuses a value of the wrong type (406, error 8), so an accepted field is a
//! field in KlickTipp's format; the values are asserted exactly too.

use chrono::Utc;
use klicktipp_sim::{FieldType, SimConfig};
use serde_json::json;
use std::collections::BTreeMap;
use webinar_bridge::sources::RawRequest;
use webinar_bridge_tests::harness::{self, Backend, BridgeEnv, Pipeline, WEBINARJAM_SECRET};

const FIELD_MAP: &str = r#"{"first_name":"fieldFirstName","webinar_start":"field101",
    "session_date":"field102","session_time":"field103","reschedule_url":"field104","cancel_url":"field105",
    "thank_you_url":"field106","sms_number":"fieldMobilePhone","utm_source":"field107","utm_medium":"field108",
    "utm_campaign":"field109","gdpr_status":"field110","gdpr_date":"field111","organization":"fieldCompanyName",
    "job_title":"field112","custom.Company Size":"field113","custom.favourite_topic":"field114"}"#;

fn simulator_config() -> SimConfig {
    [
        ("field101", FieldType::DateTime),
        ("field102", FieldType::Date),
        ("field103", FieldType::Time),
        ("field104", FieldType::Url),
        ("field105", FieldType::Url),
        ("field106", FieldType::Url),
        ("field107", FieldType::Line),
        ("field108", FieldType::Line),
        ("field109", FieldType::Line),
        ("field110", FieldType::Line),
        ("field111", FieldType::DateTime),
        ("field112", FieldType::Line),
        ("field113", FieldType::Line),
        ("field114", FieldType::Line),
    ]
    .into_iter()
    .fold(SimConfig::default(), |config, (key, field_type)| config.with_custom_field(key, key, field_type))
}

fn request(path: &str, headers: Vec<(String, String)>, body: String) -> RawRequest {
    RawRequest {
        method: "POST".to_owned(),
        path: path.to_owned(),
        query: None,
        headers,
        body: body.into(),
        received_at: Utc::now(),
    }
}

fn header(name: &str, value: &str) -> (String, String) {
    (name.to_owned(), value.to_owned())
}

fn fields_of(contacts: &[klicktipp_sim::ContactView], email: &str) -> BTreeMap<String, String> {
    contacts.iter().find(|contact| contact.email == email).map(|contact| contact.fields.clone()).unwrap_or_default()
}

fn expected(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect()
}

#[tokio::test]
async fn every_new_logical_field_reaches_klicktipp_in_its_format() {
    let sim = klicktipp_sim::start(simulator_config(), "127.0.0.1:0").await.expect("start the simulator");
    let config = BridgeEnv::with_sources().set("BRIDGE_FIELD_MAP", FIELD_MAP).config();
    let pipeline = Pipeline::new(Backend::Sqlite, &sim, &config);

    // Generic: links in `webinar`, SMS, UTM, consent and job in `contact`, the `custom` map.
    let generic = json!({"kind": "registered", "occurred_at": "2026-05-01T09:00:00Z",
        "contact": {"email": "gina@example.com", "first_name": "Gina", "sms_number": "+49 171 2345678",
            "utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "spring-launch",
            "gdpr_status": "accepted", "gdpr_date": "2026-05-01T08:59:30Z",
            "organization": "Beispiel GmbH", "job_title": "CMO"},
        "webinar": {"id": "4711", "name": "Product Tour", "starts_at": "2026-05-12T17:00:00Z",
            "timezone": "Europe/Berlin", "reschedule_url": "tool.example/r/abc",
            "cancel_url": "https://tool.example/c/abc", "thank_you_url": "https://tool.example/t/abc"},
        "custom": {"Company Size": "50-249", "favourite_topic": "Automation", "ignored": 7}})
    .to_string();
    let headers = harness::standard_webhook_headers("msg_fields_1", Utc::now().timestamp(), &generic);
    let reply = pipeline.ingest.handle(&request("/hooks/generic/livestorm", headers, generic)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    // WebinarJam: its own names (thank_you_url, utm_*, gdpr_status_date, phone with country code).
    let webinarjam = json!({"webinar_id": "91", "webinar_name": "Masterclass", "schedule": "7",
        "date": "2026-05-20 18:30", "timezone": "Europe/Berlin", "email": "jan@example.com", "first_name": "Jan",
        "phone_country_code": "+49", "phone": "1719876543", "thank_you_url": "https://event.webinarjam.com/t/jan",
        "utm_source": "facebook", "utm_medium": "cpc", "utm_campaign": "may", "gdpr_status": "granted",
        "gdpr_status_date": "2026-05-02 10:15"})
    .to_string();
    let headers = vec![
        header("content-type", "application/json"),
        header("authorization", &format!("Bearer {WEBINARJAM_SECRET}")),
    ];
    let reply = pipeline.ingest.handle(&request("/hooks/webinarjam/registered", headers, webinarjam)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    // Zoom: organisation, job title and custom questions of the registrant.
    let zoom = json!({"event": "webinar.registration_created", "event_ts": 1_777_000_000_000_i64,
        "payload": {"account_id": "AbCdEf123", "object": {"id": "85012345678", "uuid": "u1", "topic": "Zoom Talk",
            "start_time": "2026-05-12T02:30:00Z", "timezone": "America/New_York", "duration": 60,
            "registrant": {"id": "reg_1", "email": "zoe@example.com", "first_name": "Zoe", "org": "Example Inc",
                "job_title": "Head of Growth", "join_url": "https://us06web.zoom.us/w/85012345678?tk=z",
                "custom_questions": [{"title": "Company size?", "value": "10-49"},
                    {"title": "Favourite topic", "value": "Webinars"}]}}}})
    .to_string();
    let headers = harness::zoom_headers(&zoom, Utc::now().timestamp());
    let reply = pipeline.ingest.handle(&request("/hooks/zoom", headers, zoom)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    let summary = pipeline.drain().await;
    assert_eq!((summary.applied, summary.rejected, summary.flagged), (3, 0, 0), "{summary:?}");
    assert_eq!(sim.count_status(406), 0, "KlickTipp refused a field format");
    let contacts = sim.contacts();

    // 2026-05-12T17:00Z is 19:00 in Berlin: the date field is that day (midnight, Unix seconds),
    // the time field 19:00 as seconds since midnight.
    assert_eq!(
        fields_of(&contacts, "gina@example.com"),
        expected(&[
            ("fieldFirstName", "Gina"),
            ("field101", "1778605200"),
            ("field102", "1778544000"),
            ("field103", "68400"),
            ("field104", "https://tool.example/r/abc"),
            ("field105", "https://tool.example/c/abc"),
            ("field106", "https://tool.example/t/abc"),
            ("fieldMobilePhone", "+49 171 2345678"),
            ("field107", "newsletter"),
            ("field108", "email"),
            ("field109", "spring-launch"),
            ("field110", "accepted"),
            ("field111", "1777625970"),
            ("fieldCompanyName", "Beispiel GmbH"),
            ("field112", "CMO"),
            ("field113", "50-249"),
            ("field114", "Automation"),
        ])
    );
    let jan = fields_of(&contacts, "jan@example.com");
    assert_eq!(jan.get("field102").map(String::as_str), Some("1779235200"), "2026-05-20");
    assert_eq!(jan.get("field103").map(String::as_str), Some("66600"), "18:30 in Berlin");
    assert_eq!(jan.get("field106").map(String::as_str), Some("https://event.webinarjam.com/t/jan"));
    assert_eq!(jan.get("fieldMobilePhone").map(String::as_str), Some("+49 1719876543"));
    assert_eq!(jan.get("field107").map(String::as_str), Some("facebook"));
    assert_eq!(jan.get("field110").map(String::as_str), Some("granted"));
    assert_eq!(jan.get("field111").map(String::as_str), Some("1777709700"), "10:15 Berlin = 08:15 UTC");
    // A New York session at 02:30 UTC is still the day before there, at 22:30.
    let zoe = fields_of(&contacts, "zoe@example.com");
    assert_eq!(zoe.get("field102").map(String::as_str), Some("1778457600"), "2026-05-11");
    assert_eq!(zoe.get("field103").map(String::as_str), Some("81000"), "22:30");
    assert_eq!(zoe.get("fieldCompanyName").map(String::as_str), Some("Example Inc"));
    assert_eq!(zoe.get("field112").map(String::as_str), Some("Head of Growth"));
    assert_eq!(zoe.get("field113").map(String::as_str), Some("10-49"));
    assert_eq!(zoe.get("field114").map(String::as_str), Some("Webinars"));
    sim.shutdown().await;
}

/// `sms_number` mapped to KlickTipp's own SMS field (`smsnumber`) reaches KlickTipp as the
/// subscriber's `smsnumber` parameter, which the simulator stores as `0049…`; a number KlickTipp
/// refuses (error 11) is dropped while the contact and its tag are applied.
#[tokio::test]
async fn sms_number_mapped_to_smsnumber_reaches_klicktipps_own_sms_field() {
    let sim = klicktipp_sim::start(SimConfig::default(), "127.0.0.1:0").await.expect("start the simulator");
    let field_map = r#"{"first_name":"fieldFirstName","sms_number":"smsnumber"}"#;
    let config = BridgeEnv::with_sources().set("BRIDGE_FIELD_MAP", field_map).config();
    let pipeline = Pipeline::new(Backend::Sqlite, &sim, &config);
    for (id, email, sms) in
        [("msg_sms_1", "gina@example.com", "+49 171 2345678"), ("msg_sms_2", "otto@example.com", "12")]
    {
        let body = json!({"kind": "registered", "occurred_at": "2026-05-01T09:00:00Z",
            "contact": {"email": email, "first_name": "Gina", "sms_number": sms},
            "webinar": {"id": "4711", "name": "Product Tour", "starts_at": "2026-05-12T17:00:00Z"}})
        .to_string();
        let headers = harness::standard_webhook_headers(id, Utc::now().timestamp(), &body);
        let reply = pipeline.ingest.handle(&request("/hooks/generic/livestorm", headers, body)).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let summary = pipeline.drain().await;
    assert_eq!((summary.applied, summary.rejected), (2, 0), "{summary:?}");
    let contacts = sim.contacts();
    let contact = |email: &str| contacts.iter().find(|contact| contact.email == email).expect("the contact").clone();
    let gina = contact("gina@example.com");
    assert_eq!(gina.sms.as_deref(), Some("00491712345678"));
    assert_eq!(gina.fields, BTreeMap::from([("fieldFirstName".to_owned(), "Gina".to_owned())]), "not a data field");
    let otto = contact("otto@example.com");
    assert_eq!((otto.sms, otto.tags), (None, vec!["[livestorm] [Product Tour] Registered".to_owned()]));
    assert_eq!(sim.count_status(406), 1, "the invalid number was refused once, then left out");
    let bodies: Vec<serde_json::Value> = sim
        .request_log()
        .into_iter()
        .filter(|request| request.endpoint == "POST /subscriber")
        .map(|request| request.body)
        .collect();
    assert!(
        bodies.iter().any(|body| body["smsnumber"] == "+49 171 2345678" && body["fields"].get("smsnumber").is_none())
    );
}
