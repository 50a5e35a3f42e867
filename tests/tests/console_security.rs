//! The web console of `serve` (issue 14) through serve's own port: off (404) without
//! `BRIDGE_CONSOLE_TOKEN`; a wrong token gets 401 and, after a few, 429 for that client address
//! (another address still signs in); a POST (redrive, search, settings, reprocess) without the
//! session's CSRF token gets 403; the cookie is HttpOnly and SameSite=Strict; and no e-mail
//! address appears in any URL or log line, though the contact's page shows it.
//!
//! Needs `cargo build --workspace` first (the harness says so if the binary is missing).

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;
use std::time::Duration;
use webinar_bridge::domain::Email;
use webinar_bridge_tests::harness::{self, BridgeEnv, ServeProcess, WEBINARJAM_SECRET};

const TOKEN: &str = "console-token-for-the-security-test";
const ERIKA: &str = "erika.console@example.com";

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("a client")
}

async fn sign_in(http: &reqwest::Client, serve: &ServeProcess, token: &str) -> reqwest::Response {
    http.post(serve.url("/console/sign-in"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .expect("serve answers")
}

/// The CSRF token in a console page's forms.
fn csrf_of(html: &str) -> String {
    let marker = r#"name="csrf" value=""#;
    let start = html.find(marker).expect("a CSRF field") + marker.len();
    html[start..].split('"').next().expect("a value").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_the_console_does_not_exist() {
    let simulator = harness::start_simulator().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let env = BridgeEnv::for_simulator(&simulator.url(), &dir.path().join("bridge.db"));
    let serve = ServeProcess::start(&env, &[]).await;
    let http = client();
    for path in ["/console", "/console/problems", "/console/settings", "/console/settings/all"] {
        let answer = http.get(serve.url(path)).send().await.expect("serve answers");
        assert_eq!(answer.status(), StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(sign_in(&http, &serve, TOKEN).await.status(), StatusCode::NOT_FOUND);
    for path in ["/console/settings/all", "/console/settings/all/create-tag"] {
        let answer = http
            .post(serve.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("include=yes")
            .send()
            .await
            .expect("serve answers");
        assert_eq!(answer.status(), StatusCode::NOT_FOUND, "{path}");
    }
    serve.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_token_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = BridgeEnv::for_simulator("http://127.0.0.1:9", &dir.path().join("bridge.db"))
        .set("BRIDGE_CONSOLE_TOKEN", "short");
    let finished = harness::run_bridge_async(&env, &["serve", "--listen", "127.0.0.1:0"]).await;
    assert_eq!(finished.code, Some(2), "{}", finished.stderr);
    assert!(finished.stderr.contains("BRIDGE_CONSOLE_TOKEN must be at least 16 characters"), "{}", finished.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_sessions_csrf_and_no_address_in_urls_or_logs() {
    let simulator = harness::start_simulator().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let db_path = dir.path().join("bridge.db");
    let env = BridgeEnv::for_simulator(&simulator.url(), &db_path).set("BRIDGE_CONSOLE_TOKEN", TOKEN);
    let serve = ServeProcess::start(&env, &[]).await;
    let db = harness::open_db(&db_path);
    let http = client();

    // A contact to look for.
    let body = json!({
        "webinar_id": "321", "webinar_name": "Spring Launch", "schedule": "7", "date": "2026-04-14 18:00",
        "timezone": "GMT+2", "email": ERIKA, "first_name": "Erika",
    });
    let accepted = http
        .post(serve.url("/hooks/webinarjam/registered"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {WEBINARJAM_SECRET}"))
        .body(body.to_string())
        .send()
        .await
        .expect("serve answers");
    assert!(accepted.status().is_success(), "{}", accepted.status());
    harness::wait_until_drained(&db, Duration::from_secs(45)).await;

    // Signed out, the console shows the sign-in form and nothing else.
    let page = http.get(serve.url("/console")).send().await.expect("serve answers");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("a page");
    assert!(html.contains(r#"action="/console/sign-in""#) && !html.contains("Events per hour"), "{html}");
    let problems = http.get(serve.url("/console/problems")).send().await.expect("serve answers");
    assert_eq!(problems.status(), StatusCode::SEE_OTHER);

    // The right token: a session cookie that scripts cannot read and other sites cannot send.
    let signed_in = sign_in(&http, &serve, TOKEN).await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let cookie_header = signed_in.headers()[SET_COOKIE].to_str().expect("ASCII").to_owned();
    assert!(cookie_header.contains("HttpOnly") && cookie_header.contains("SameSite=Strict"), "{cookie_header}");
    let cookie = cookie_header.split(';').next().expect("name=value").to_owned();
    let overview = http.get(serve.url("/console")).header(COOKIE, &cookie).send().await.expect("serve answers");
    assert_eq!(overview.status(), StatusCode::OK);
    let html = overview.text().await.expect("a page");
    assert!(html.contains("Events per hour") && html.contains("<svg"), "{html}");
    assert!(!html.contains("<script"), "no script on the console");
    let csrf = csrf_of(&html);

    // Wrong tokens: 401 each, then 429 for a while, even for the right token.
    for attempt in 0..5 {
        let answer = sign_in(&http, &serve, "not-the-console-token-at-all").await;
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    let limited = sign_in(&http, &serve, TOKEN).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().contains_key("retry-after"));
    // The limit is per client address: another address still signs in.
    let elsewhere = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .expect("a client");
    assert_eq!(sign_in(&elsewhere, &serve, TOKEN).await.status(), StatusCode::SEE_OTHER, "another address");

    // State changes need the session's CSRF token.
    let form = |body: String| {
        http.post(serve.url("/console/redrive"))
            .header(COOKIE, &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    };
    assert_eq!(form(String::new()).send().await.expect("answer").status(), StatusCode::FORBIDDEN);
    assert_eq!(form("csrf=forged".to_owned()).send().await.expect("answer").status(), StatusCode::FORBIDDEN);
    let no_session = http
        .post(serve.url("/console/redrive"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .expect("answer");
    assert_eq!(no_session.status(), StatusCode::UNAUTHORIZED);
    let redriven = form(format!("csrf={csrf}")).send().await.expect("answer");
    assert_eq!(redriven.status(), StatusCode::SEE_OTHER);
    // The settings page's state changes too: Save and Create tag need the CSRF token and a session.
    for path in ["/console/settings/all", "/console/settings/all/create-tag"] {
        let settings_form = |body: String| {
            http.post(serve.url(path))
                .header(COOKIE, &cookie)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
        };
        let missing = settings_form("include=yes&tag_Attended=1".to_owned()).send().await.expect("answer");
        assert_eq!(missing.status(), StatusCode::FORBIDDEN, "{path} without CSRF");
        let forged = settings_form("csrf=forged&include=yes".to_owned()).send().await.expect("answer");
        assert_eq!(forged.status(), StatusCode::FORBIDDEN, "{path} with a forged CSRF token");
        let anonymous = http
            .post(serve.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("csrf={csrf}&include=yes"))
            .send()
            .await
            .expect("answer");
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED, "{path} without a session");
    }
    // Reprocessing a parked webhook is a state change too: refused without the CSRF token, and
    // the body stays parked.
    let unknown_shape = json!({"webinar_id": "321", "webinar_name": "Spring Launch", "Mail Adresse": ERIKA});
    let parked = http
        .post(serve.url("/hooks/webinarjam/registered"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {WEBINARJAM_SECRET}"))
        .body(unknown_shape.to_string())
        .send()
        .await
        .expect("serve answers");
    assert_eq!(parked.status(), StatusCode::ACCEPTED);
    let parked_store = webinar_bridge::adapters::sqlite::SqliteParkedWebhooks::new(db.clone());
    let parked_id = webinar_bridge::ports::ParkedWebhooks::list(&parked_store, chrono::Utc::now())
        .await
        .expect("list")
        .first()
        .map(|webhook| webhook.id.clone())
        .expect("one parked body");
    for body in [format!("id={parked_id}"), "all=1".to_owned(), format!("csrf=forged&id={parked_id}")] {
        let refused = http
            .post(serve.url("/console/reprocess"))
            .header(COOKIE, &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.clone())
            .send()
            .await
            .expect("answer");
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "reprocess with {body}");
    }
    let anonymous = http
        .post(serve.url("/console/reprocess"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}&all=1"))
        .send()
        .await
        .expect("answer");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED, "reprocess without a session");
    let still = webinar_bridge::ports::ParkedWebhooks::list(&parked_store, chrono::Utc::now()).await.expect("list");
    assert_eq!(still.len(), 1, "a refused reprocess leaves the body parked");
    // The problems page lists it by id, time, source, reason and size: never its body or address.
    let problems = http.get(serve.url("/console/problems")).header(COOKIE, &cookie).send().await.expect("answer");
    let html = problems.text().await.expect("a page");
    assert!(html.contains(&parked_id) && html.contains("Reprocess"), "the parked body is listed: {html}");
    assert!(!html.contains(ERIKA) && !html.contains("Mail Adresse"), "no body or address in the list: {html}");
    let settings_signed_out = http.get(serve.url("/console/settings")).send().await.expect("answer");
    assert_eq!(settings_signed_out.status(), StatusCode::SEE_OTHER);
    let search_without_csrf = http
        .post(serve.url("/console/search"))
        .header(COOKIE, &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("email={ERIKA}"))
        .send()
        .await
        .expect("answer");
    assert_eq!(search_without_csrf.status(), StatusCode::FORBIDDEN);

    // The search is a POST; the timeline's URL carries the contact's hash, not its address.
    let found = http
        .post(serve.url("/console/search"))
        .header(COOKIE, &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded_pair("email", ERIKA, &csrf))
        .send()
        .await
        .expect("answer");
    assert_eq!(found.status(), StatusCode::SEE_OTHER);
    let location = found.headers()[LOCATION].to_str().expect("ASCII").to_owned();
    let hash = Email::parse(ERIKA).expect("an address").short_hash();
    assert_eq!(location, format!("/console/contacts/{hash}"));
    let timeline = http.get(serve.url(&location)).header(COOKIE, &cookie).send().await.expect("answer");
    assert_eq!(timeline.status(), StatusCode::OK);
    let html = timeline.text().await.expect("a page");
    assert!(html.contains(ERIKA), "the person asked for this contact: the page shows the address");
    assert!(html.contains("Spring Launch"), "the tags the bridge set: {html}");
    assert!(html.contains(r#"<ol class="timeline">"#), "the timeline: {html}");
    for href in html.split("href=\"").skip(1).filter_map(|rest| rest.split('"').next()) {
        assert!(!href.contains('@') && !href.contains("%40"), "an address in a link: {href}");
    }
    // The settings pages link webinars by a hash of their key; no address anywhere in them.
    let settings = http.get(serve.url("/console/settings")).header(COOKIE, &cookie).send().await.expect("answer");
    assert_eq!(settings.status(), StatusCode::OK);
    let html = settings.text().await.expect("a page");
    assert!(html.contains("Spring Launch") && !html.contains(ERIKA), "{html}");
    let webinar = html
        .split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .find(|href| href.starts_with("/console/settings/") && *href != "/console/settings/all")
        .expect("a link to the webinar's settings")
        .to_owned();
    let page = http.get(serve.url(&webinar)).header(COOKIE, &cookie).send().await.expect("answer");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("a page");
    assert!(html.contains("[WebinarJam] [Spring Launch] Attended") && !html.contains(ERIKA), "{html}");
    for href in html.split("href=\"").skip(1).filter_map(|rest| rest.split('"').next()) {
        assert!(!href.contains('@') && !href.contains("%40"), "an address in a link: {href}");
    }
    let unknown = http.get(serve.url("/console/contacts/000000000000")).header(COOKIE, &cookie).send().await;
    assert_eq!(unknown.expect("answer").status(), StatusCode::NOT_FOUND);

    // Signing out ends the session.
    let signed_out = http
        .post(serve.url("/console/sign-out"))
        .header(COOKIE, &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .expect("answer");
    assert_eq!(signed_out.status(), StatusCode::SEE_OTHER);
    let after = http.get(serve.url("/console/problems")).header(COOKIE, &cookie).send().await.expect("answer");
    assert_eq!(after.status(), StatusCode::SEE_OTHER);

    let output = format!("{}\n{}", serve.stdout_text(), serve.stderr_text());
    assert!(output.contains("console: sign-in with a wrong token"), "the refusals are logged");
    assert!(!output.contains(ERIKA) && !output.contains("%40"), "an address in serve's output:\n{output}");
    assert!(!output.contains(TOKEN), "the token in serve's output");
    serve.terminate().await;
}

fn serde_urlencoded_pair(name: &str, value: &str, csrf: &str) -> String {
    let encoded: String = value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (byte as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect();
    format!("{name}={encoded}&csrf={csrf}")
}
