//! The platform simulator over real HTTP: the DESIGN 11 document, the
//! WebinarJam paginator and rate limit, Zoom tokens, pages and uuids, faults
//! and the per-second call log.

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use platform_sim::{JamRegistrant, Knobs, PlatformData, PlatformSim, SimConfig, ZoomParticipant};
use serde_json::{Value, json};

/// One answer, read completely.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    }
}

async fn read(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("answer body");
    Answer { status, headers, text }
}

fn design_document() -> PlatformData {
    PlatformData::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/design11.json")).expect("DESIGN 11 example")
}

async fn start(data: PlatformData) -> PlatformSim {
    PlatformSim::start(SimConfig::with_data(data)).await.expect("start the platform simulator")
}

/// `POST {url}{path}` form-encoded.
async fn post_form(client: &reqwest::Client, url: &str, params: &[(&str, &str)]) -> Answer {
    let body = serde_urlencoded::to_string(params).expect("form");
    let response = client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("send");
    read(response).await
}

async fn zoom_token(client: &reqwest::Client, sim: &PlatformSim) -> String {
    let credentials = sim.zoom_credentials();
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", credentials.client_id, credentials.client_secret));
    let body = format!("grant_type=account_credentials&account_id={}", credentials.account_id);
    let answer = read(
        client
            .post(format!("{}/oauth/token", sim.url()))
            .header("authorization", format!("Basic {basic}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let token = answer.json();
    assert_eq!(token["token_type"], "bearer");
    assert_eq!(token["expires_in"], sim.knobs().zoom_token_ttl_seconds);
    token["access_token"].as_str().expect("access_token").to_owned()
}

async fn zoom_get(client: &reqwest::Client, sim: &PlatformSim, token: &str, path_and_query: &str) -> Answer {
    read(
        client
            .get(format!("{}{path_and_query}", sim.url()))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .expect("send"),
    )
    .await
}

#[tokio::test]
async fn serves_the_design_11_document_on_both_base_paths() {
    let sim = start(design_document()).await;
    let client = reqwest::Client::new();
    let key = sim.api_key();

    let webinars = post_form(&client, &format!("{}/webinars", sim.webinarjam_url()), &[("api_key", &key)]).await;
    assert_eq!(webinars.status, 200, "{}", webinars.text);
    let webinars = webinars.json();
    assert_eq!(webinars["status"], "success");
    assert_eq!(webinars["webinars"][0]["webinar_id"], 123);
    assert_eq!(webinars["webinars"][0]["name"], "Masterclass");
    assert_eq!(webinars["webinars"][0]["schedules"], json!(["Tue, 10 Feb 2026, 7:00 PM"]));
    assert_eq!(webinars["webinars"][0]["timezone"], "Europe/Berlin");

    let webinar =
        post_form(&client, &format!("{}/webinar", sim.everwebinar_url()), &[("api_key", &key), ("webinar_id", "77")])
            .await
            .json();
    assert_eq!(webinar["status"], "success");
    // Loose types as the real API sends them: the schedule id as a string, the hour unpadded.
    assert_eq!(webinar["webinar"]["schedules"], json!([{"date": "2026-02-11 9:00", "schedule": "9", "comment": ""}]));
    assert!(webinar["webinar"].get("duration_minutes").is_none(), "the API does not return a length");

    let registrants = post_form(
        &client,
        &format!("{}/registrants", sim.webinarjam_url()),
        &[("api_key", &key), ("webinar_id", "123")],
    )
    .await
    .json();
    let page = &registrants["registrants"];
    assert_eq!(page["current_page"], 1);
    assert_eq!(page["next_page_url"], Value::Null);
    let erika = &page["data"][0];
    assert_eq!(erika["lead_id"], 5551);
    assert_eq!(erika["email"], "erika@example.com");
    assert_eq!(erika["webinar"], "Masterclass");
    assert_eq!(erika["schedule"], "45");
    assert_eq!(erika["attended_live"], "1");
    assert_eq!(erika["time_live"], "00:42:10");

    // EverWebinar's webinars are not WebinarJam's.
    let missing = post_form(
        &client,
        &format!("{}/registrants", sim.webinarjam_url()),
        &[("api_key", &key), ("webinar_id", "77")],
    )
    .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["status"], "error");

    let token = zoom_token(&client, &sim).await;
    let participants = zoom_get(
        &client,
        &sim,
        &token,
        "/v2/report/webinars/k7Zq9XvRTn2wYb3cQp1Lmg%3D%3D/participants?include_fields=registrant_id&page_size=300",
    )
    .await
    .json();
    assert_eq!(participants["total_records"], 1);
    assert_eq!(participants["participants"][0]["registrant_id"], "reg_1");
    assert_eq!(participants["participants"][0]["duration"], 2280);
    let absentees =
        zoom_get(&client, &sim, &token, "/v2/past_webinars/k7Zq9XvRTn2wYb3cQp1Lmg==/absentees").await.json();
    assert_eq!(absentees["registrants"][0]["email"], "b@example.com");
    let registrants =
        zoom_get(&client, &sim, &token, "/v2/webinars/85012345678/registrants?status=approved").await.json();
    assert_eq!(registrants["registrants"][0]["id"], "reg_1");
    assert_eq!(registrants["registrants"][0]["status"], "approved");

    // Recurring webinars: the list shows the webinar once, instances list every occurrence.
    let mut data = sim.data();
    let mut second = data.zoom.webinars[0].clone();
    second.uuid = "Zz2nd0ccurrence==".to_owned();
    second.start_time = "2026-01-22T17:00:00Z".to_owned();
    data.zoom.webinars.push(second);
    sim.set_data(data);
    let list = zoom_get(&client, &sim, &token, "/v2/users/me/webinars").await.json();
    assert_eq!(list["total_records"], 1);
    assert_eq!(list["webinars"][0]["id"], 85_012_345_678_u64);
    assert_eq!(list["webinars"][0]["uuid"], "Zz2nd0ccurrence==");
    let instances = zoom_get(&client, &sim, &token, "/v2/past_webinars/85012345678/instances").await.json();
    assert_eq!(
        instances["webinars"],
        json!([
            {"uuid": "k7Zq9XvRTn2wYb3cQp1Lmg==", "start_time": "2026-01-15T17:00:00Z"},
            {"uuid": "Zz2nd0ccurrence==", "start_time": "2026-01-22T17:00:00Z"}
        ])
    );

    let stats = sim.stats();
    assert_eq!(stats.calls_by_endpoint.get("POST /everwebinar/webinar"), Some(&1));
    assert_eq!(stats.calls_by_endpoint.get("GET /v2/report/webinars/{uuid}/participants"), Some(&1));
    sim.shutdown().await;
}

#[tokio::test]
async fn a_wrong_api_key_gets_the_error_answer() {
    let sim = start(design_document()).await;
    let client = reqwest::Client::new();
    let answer = post_form(&client, &format!("{}/webinars", sim.webinarjam_url()), &[("api_key", "regenerated")]).await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.json(), json!({"status": "error", "message": "Invalid API key."}));
    let answer = read(client.get(format!("{}/webinars", sim.everwebinar_url())).send().await.expect("send")).await;
    assert_eq!(answer.status, 405, "every call is a POST");
    sim.shutdown().await;
}

fn many_registrants(count: u64) -> PlatformData {
    let mut data = design_document();
    let webinar = &mut data.everwebinar.webinars[0];
    webinar.registrants = (0..count)
        .map(|i| JamRegistrant {
            lead_id: 10_000 + i,
            email: format!("r{i:04}@example.com"),
            first_name: format!("R{i}"),
            schedule: 9,
            signup_date: "2026-02-02 08:00:00".to_owned(),
            attended_live: if i % 3 == 0 { 0 } else { 1 },
            ..JamRegistrant::default()
        })
        .collect();
    data
}

#[tokio::test]
async fn registrants_come_in_pages_until_next_page_url_is_null() {
    let sim = start(many_registrants(250)).await;
    let client = reqwest::Client::new();
    let key = sim.api_key();
    let url = format!("{}/registrants", sim.everwebinar_url());
    let mut page = 1;
    let mut emails = Vec::new();
    loop {
        let body =
            post_form(&client, &url, &[("api_key", &key), ("webinar_id", "77"), ("page", &page.to_string())]).await;
        assert_eq!(body.status, 200, "{}", body.text);
        let body = body.json();
        let registrants = &body["registrants"];
        assert_eq!(registrants["current_page"], page);
        assert_eq!(registrants["per_page"], 100);
        emails.extend(registrants["data"].as_array().expect("data").iter().map(|r| r["email"].clone()));
        match registrants["next_page_url"].as_str() {
            Some(next) => {
                assert_eq!(next, format!("{url}?page={}", page + 1));
                page += 1;
            }
            None => break,
        }
    }
    assert_eq!(page, 3);
    assert_eq!(emails.len(), 250);
    assert_eq!(emails[0], "r0000@example.com");
    assert_eq!(emails[249], "r0249@example.com");

    // Filters: attended live only, and a search.
    let attended =
        post_form(&client, &url, &[("api_key", &key), ("webinar_id", "77"), ("attended_live", "2")]).await.json();
    assert_eq!(attended["registrants"]["total"], 84);
    let found = post_form(&client, &url, &[("api_key", &key), ("webinar_id", "77"), ("search", "r0042@")]).await.json();
    assert_eq!(found["registrants"]["data"][0]["lead_id"], 10_042);
    let bad = post_form(&client, &url, &[("api_key", &key), ("webinar_id", "77"), ("page", "0")]).await;
    assert_eq!(bad.status, 422);
    assert!(bad.json()["message"].as_str().unwrap_or_default().contains("page"), "{}", bad.text);
    let bad = post_form(&client, &url, &[("api_key", &key), ("webinar_id", "77"), ("purchased", "9")]).await;
    assert_eq!(bad.status, 422);
    assert!(bad.json()["message"].as_str().unwrap_or_default().contains("purchased"), "{}", bad.text);
    let bought = post_form(&client, &url, &[("api_key", &key), ("webinar_id", "77"), ("purchased", "1")]).await.json();
    assert_eq!(bought["registrants"]["total"], 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn the_21st_call_within_a_second_gets_429_without_retry_after() {
    let sim = start(design_document()).await;
    let client = reqwest::Client::new();
    let key = sim.api_key();
    let url = format!("{}/webinars", sim.webinarjam_url());
    let started = Instant::now();
    for call in 1..=20 {
        let answer = post_form(&client, &url, &[("api_key", &key)]).await;
        assert_eq!(answer.status, 200, "call {call}");
    }
    let refused = post_form(&client, &url, &[("api_key", &key)]).await;
    // Only meaningful when the 21 calls really fell into one second.
    if started.elapsed() < Duration::from_millis(900) {
        assert_eq!(refused.status, 429);
        assert_eq!(refused.text, "Too many requests");
        assert_eq!(refused.header("retry-after"), None);
        // The same key on the other product shares the limit; another key does not.
        let other = post_form(&client, &format!("{}/webinars", sim.everwebinar_url()), &[("api_key", &key)]).await;
        assert_eq!(other.status, 429);
        let stranger = post_form(&client, &url, &[("api_key", "someone-else")]).await;
        assert_eq!(stranger.status, 401);
        let stats = sim.stats();
        assert_eq!(stats.http_429, 2);
        assert_eq!(stats.max_accepted_in_any_window, 21, "20 for the key plus one for the stranger");
        assert_eq!(stats.max_accepted_in_any_window_by_key.get(&key), Some(&20));
        assert_eq!(stats.max_accepted_in_any_window_by_key.get("someone-else"), Some(&1));
        assert!(stats.per_second.iter().map(|s| s.http_429).sum::<u64>() == 2);
    } else {
        eprintln!("machine too slow for the 1-second window check ({:?}); skipped", started.elapsed());
    }
    // A second later the key is welcome again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(post_form(&client, &url, &[("api_key", &key)]).await.status, 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn zoom_tokens_expire_and_page_tokens_walk_the_report() {
    let mut data = design_document();
    let occurrence = &mut data.zoom.webinars[0];
    occurrence.uuid = "/ab//cd==".to_owned();
    occurrence.participants = (0..7)
        .map(|i| ZoomParticipant {
            name: format!("P{i}"),
            user_email: format!("p{i}@example.com"),
            join_time: "2026-01-15T17:02:00Z".to_owned(),
            leave_time: "2026-01-15T17:40:00Z".to_owned(),
            duration: 60 * i,
            ..ZoomParticipant::default()
        })
        .collect();
    let sim = start(data).await;
    let client = reqwest::Client::new();

    let none = zoom_get(&client, &sim, "made-up", "/v2/past_webinars/85012345678/absentees").await;
    assert_eq!((none.status, none.json()["code"].clone()), (401, json!(124)));

    let token = zoom_token(&client, &sim).await;
    // Encoded once, a uuid with `/` is not found (as on Zoom); double-encoded it is.
    let once = zoom_get(&client, &sim, &token, "/v2/report/webinars/%2Fab%2F%2Fcd%3D%3D/participants").await;
    assert_eq!((once.status, once.json()["code"].clone()), (404, json!(3001)));
    let base = "/v2/report/webinars/%252Fab%252F%252Fcd%253D%253D/participants?page_size=3";
    let mut names = Vec::new();
    let mut next = String::new();
    loop {
        let path = if next.is_empty() { base.to_owned() } else { format!("{base}&next_page_token={next}") };
        let page = zoom_get(&client, &sim, &token, &path).await;
        assert_eq!(page.status, 200, "{}", page.text);
        let page = page.json();
        assert_eq!(page["total_records"], 7);
        assert!(page["participants"][0].get("registrant_id").is_none(), "only with include_fields");
        names.extend(page["participants"].as_array().expect("rows").iter().map(|p| p["name"].clone()));
        next = page["next_page_token"].as_str().expect("token").to_owned();
        if next.is_empty() {
            break;
        }
    }
    assert_eq!(names, (0..7).map(|i| json!(format!("P{i}"))).collect::<Vec<_>>());
    let forged = zoom_get(&client, &sim, &token, &format!("{base}&next_page_token=forged")).await;
    assert_eq!(forged.status, 400);

    assert_eq!(sim.expire_tokens(), 1);
    let expired = zoom_get(&client, &sim, &token, "/v2/past_webinars/85012345678/absentees").await;
    assert_eq!(expired.status, 401);
    assert_eq!(expired.json(), json!({"code": 124, "message": "Access token is expired."}));
    let fresh = zoom_token(&client, &sim).await;
    assert_eq!(zoom_get(&client, &sim, &fresh, "/v2/past_webinars/85012345678/absentees").await.status, 200);

    // A short token lifetime expires by itself.
    sim.update_knobs(|knobs| knobs.zoom_token_ttl_seconds = 0);
    let short = zoom_token(&client, &sim).await;
    assert_eq!(zoom_get(&client, &sim, &short, "/v2/past_webinars/85012345678/absentees").await.status, 401);
    sim.shutdown().await;
}

#[tokio::test]
async fn oauth_errors_name_the_problem() {
    let sim = start(design_document()).await;
    let client = reqwest::Client::new();
    let basic = base64::engine::general_purpose::STANDARD.encode("sim-client-id:sim-client-secret");
    let wrong_grant = read(
        client
            .post(format!("{}/oauth/token?grant_type=client_credentials&account_id=sim-account", sim.url()))
            .header("authorization", format!("Basic {basic}"))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!((wrong_grant.status, wrong_grant.json()["error"].clone()), (400, json!("unsupported_grant_type")));
    let wrong_secret = read(
        client
            .post(format!("{}/oauth/token?grant_type=account_credentials&account_id=sim-account", sim.url()))
            .basic_auth("sim-client-id", Some("nope"))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!((wrong_secret.status, wrong_secret.json()["error"].clone()), (401, json!("invalid_client")));
    // Query parameters work as well as a form body.
    let ok = read(
        client
            .post(format!("{}/oauth/token?grant_type=account_credentials&account_id=sim-account", sim.url()))
            .header("authorization", format!("Basic {basic}"))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    sim.shutdown().await;
}

#[tokio::test]
async fn fault_knobs_fail_throttle_and_stall_the_next_calls() {
    let sim = start(design_document()).await;
    let client = reqwest::Client::new();
    let key = sim.api_key();
    let url = format!("{}/webinars", sim.everwebinar_url());
    sim.update_knobs(|knobs| {
        knobs.fail_next_calls = 2;
        knobs.throttle_next_calls = 1;
    });
    assert_eq!(post_form(&client, &url, &[("api_key", &key)]).await.status, 429);
    assert_eq!(post_form(&client, &url, &[("api_key", &key)]).await.status, 503);
    assert_eq!(post_form(&client, &url, &[("api_key", &key)]).await.status, 503);
    assert_eq!(post_form(&client, &url, &[("api_key", &key)]).await.status, 200);

    sim.update_knobs(|knobs| {
        knobs.stall_next_calls = 1;
        knobs.stall_ms = 200;
    });
    let before = Instant::now();
    assert_eq!(post_form(&client, &url, &[("api_key", &key)]).await.status, 200);
    assert!(before.elapsed() >= Duration::from_millis(200), "the answer was held back");

    // Faults can be aimed at one platform.
    sim.update_knobs(|knobs| {
        knobs.fail_next_calls = 1;
        knobs.fault_path_prefix = Some("/v2".to_owned());
    });
    assert_eq!(post_form(&client, &url, &[("api_key", &key)]).await.status, 200);
    assert_eq!(sim.knobs().fail_next_calls, 1);

    // Zoom's rate limit answers 429 with Retry-After.
    sim.set_knobs(Knobs { zoom_rate_per_second: Some(1), zoom_retry_after_seconds: 2, ..Knobs::default() });
    let token = zoom_token(&client, &sim).await;
    assert_eq!(zoom_get(&client, &sim, &token, "/v2/past_webinars/85012345678/absentees").await.status, 200);
    let limited = zoom_get(&client, &sim, &token, "/v2/past_webinars/85012345678/absentees").await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("retry-after").as_deref(), Some("2"));
    assert_eq!(limited.json()["code"], 429);
    sim.shutdown().await;
}

#[tokio::test]
async fn the_admin_api_shows_the_per_second_log_and_takes_knobs_and_data() {
    let sim = start(PlatformData::default()).await;
    let client = reqwest::Client::new();
    let key = sim.api_key();
    let put = client
        .put(format!("{}/_sim/data", sim.url()))
        .body(std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/design11.json")).expect("doc"))
        .send()
        .await
        .expect("send");
    assert_eq!(put.status().as_u16(), 204);
    for _ in 0..3 {
        post_form(&client, &format!("{}/webinars", sim.webinarjam_url()), &[("api_key", &key)]).await;
    }
    let calls = read(client.get(format!("{}/_sim/calls", sim.url())).send().await.expect("send")).await.json();
    assert_eq!(calls["calls"], 3);
    assert_eq!(calls["calls_by_endpoint"]["POST /webinarjam/webinars"], 3);
    assert_eq!(calls["http_429"], 0);
    let per_second: u64 =
        calls["per_second"].as_array().expect("seconds").iter().map(|s| s["calls"].as_u64().unwrap_or(0)).sum();
    assert_eq!(per_second, 3);
    let log = read(client.get(format!("{}/_sim/log", sim.url())).send().await.expect("send")).await.json();
    assert_eq!(log[0]["api_key"], key.as_str());
    assert!(log[0]["params"].get("api_key").is_none());

    let patched = client
        .patch(format!("{}/_sim/knobs", sim.url()))
        .body(r#"{"jam_rate_per_second": 5}"#)
        .send()
        .await
        .expect("send");
    assert_eq!(patched.status().as_u16(), 200);
    assert_eq!(sim.knobs().jam_rate_per_second, Some(5));
    let typo = client.patch(format!("{}/_sim/knobs", sim.url())).body(r#"{"jam_rate": 5}"#).send().await.expect("send");
    assert_eq!(typo.status().as_u16(), 400);
    let reset = client.post(format!("{}/_sim/reset", sim.url())).send().await.expect("send");
    assert_eq!(reset.status().as_u16(), 204);
    assert_eq!(sim.stats().calls, 0);
    sim.shutdown().await;
}
