//! Every knob, observed over HTTP.

mod common;

use std::time::Duration;

use common::{Answer, PASSWORD, TestApi, USERNAME};
use klicktipp_sim::{DuplicateTagPolicy, Knobs, Language, PartnerAccount, SimConfig, UnknownTagAnswer};
use serde_json::json;

async fn statuses(api: &TestApi, path: &str, count: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..count {
        statuses.push(api.get(path).await.status);
    }
    statuses
}

mod sim {
    use super::*;

    async fn rate_limit_case(retry_after: bool) {
        let mut api = TestApi::start(SimConfig::default()).await;
        api.sim.set_knobs(Knobs { rate_limit_per_second: Some(3), retry_after, ..Knobs::default() });
        api.login().await; // accepted request 1 of 3
        let refused: Answer = {
            assert_eq!(statuses(&api, "/tag", 2).await, [200, 200]);
            api.get("/tag").await
        };
        assert_eq!(refused.status, 429);
        assert!(refused.json().as_array().is_some_and(|a| a.iter().all(|m| m.is_string())), "{}", refused.text);
        assert_eq!(refused.header("retry-after").as_deref(), retry_after.then_some("1"));
        // Refused requests do not count: after the window slides, R more get through.
        assert_eq!(statuses(&api, "/tag", 3).await, [429, 429, 429]);
        tokio::time::sleep(Duration::from_millis(1050)).await;
        assert_eq!(statuses(&api, "/tag", 4).await, [200, 200, 200, 429]);
        assert_eq!(api.sim.count_status(429), 5);
        assert_eq!(api.sim.calls_by_endpoint().get("GET /tag"), Some(&10));
    }

    #[tokio::test]
    async fn sim_rate_limit_answers_429_without_retry_after() {
        rate_limit_case(false).await;
    }

    #[tokio::test]
    async fn sim_rate_limit_answers_429_with_retry_after() {
        rate_limit_case(true).await;
    }

    #[tokio::test]
    async fn sim_rate_limit_window_never_admits_more_than_r_per_second() {
        let api = TestApi::logged_in(SimConfig::default()).await;
        api.sim.set_knobs(Knobs { rate_limit_per_second: Some(5), ..Knobs::default() });
        let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
        while tokio::time::Instant::now() < deadline {
            api.get("/list").await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let accepted: Vec<u64> =
            api.sim.request_log().iter().filter(|e| e.status != 429 && e.method == "GET").map(|e| e.at_ms).collect();
        assert!(accepted.len() >= 5, "{accepted:?}");
        for &start in &accepted {
            let in_window = accepted.iter().filter(|&&at| at >= start && at < start + 1000).count();
            assert!(in_window <= 5, "{in_window} accepted in the second from {start} ms");
        }
        assert!(api.sim.count_status(429) > 0);
    }

    #[tokio::test]
    async fn sim_session_expires_after_n_calls() {
        let mut api = TestApi::logged_in(SimConfig::default()).await;
        api.sim.set_knobs(Knobs { session_expiry_calls: Some(2), ..Knobs::default() });
        assert_eq!(statuses(&api, "/tag", 4).await, [200, 200, 403, 403]);
        assert_eq!(api.get("/tag").await.pair(), (403, json!(["API access denied."])));
        // Logging in with the dead cookie is allowed and gives a fresh session.
        let old_cookie = api.cookie.clone();
        api.login().await;
        assert_ne!(api.cookie, old_cookie);
        assert_eq!(statuses(&api, "/tag", 3).await, [200, 200, 403]);
    }

    #[tokio::test]
    async fn sim_session_expires_after_n_seconds() {
        let api = TestApi::logged_in(SimConfig::default()).await;
        api.sim.set_knobs(Knobs { session_expiry_seconds: Some(1), ..Knobs::default() });
        assert_eq!(api.get("/tag").await.status, 200);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(api.get("/tag").await.status, 403);
    }

    #[tokio::test]
    async fn sim_fault_500_and_502_happen_before_any_effect() {
        let api = TestApi::logged_in(SimConfig::default()).await;
        api.sim.set_knobs(Knobs { fault_rate_500: 1.0, ..Knobs::default() });
        let answer = api.post("/tag", json!({"name": "A"})).await;
        assert_eq!((answer.status, answer.text.as_str()), (500, ""));
        api.sim.set_knobs(Knobs { fault_rate_502_html: 1.0, ..Knobs::default() });
        let answer = api.post("/tag", json!({"name": "A"})).await;
        assert_eq!(answer.status, 502);
        assert!(answer.header("content-type").is_some_and(|ct| ct.starts_with("text/html")));
        assert!(answer.text.contains("502 Bad Gateway"));
        assert!(api.sim.tags().is_empty());
    }

    #[tokio::test]
    async fn sim_fault_error12_and_error_in_200_have_no_effect() {
        let api = TestApi::logged_in(SimConfig::default()).await;
        api.sim.set_knobs(Knobs { fault_rate_error12: 1.0, ..Knobs::default() });
        assert_eq!(api.post("/tag", json!({"name": "A"})).await.pair(), (406, json!({"error": 12})));
        api.sim.set_knobs(Knobs { error_in_200_rate: 1.0, ..Knobs::default() });
        assert_eq!(api.post("/tag", json!({"name": "A"})).await.pair(), (200, json!({"error": 12})));
        assert!(api.sim.tags().is_empty());
    }

    #[tokio::test]
    async fn sim_fault_timeout_delays_the_answer_but_the_effect_happens() {
        let api = TestApi::logged_in(SimConfig::default()).await;
        api.sim.set_knobs(Knobs { fault_rate_timeout: 1.0, timeout_ms: 400, ..Knobs::default() });
        let impatient = reqwest::Client::builder().timeout(Duration::from_millis(100)).build().expect("client");
        let outcome = impatient
            .post(format!("{}/tag", api.sim.url()))
            .header("cookie", api.cookie.clone().expect("cookie"))
            .json(&json!({"name": "Late"}))
            .send()
            .await;
        assert!(outcome.is_err_and(|e| e.is_timeout()));
        // The client gave up, yet the tag was created: a retry must look before it creates.
        assert_eq!(api.sim.tags().values().collect::<Vec<_>>(), ["Late"]);
        assert_eq!(api.sim.request_log().last().map(|e| e.status), Some(200));
        // A patient client gets the normal answer, late.
        let started = std::time::Instant::now();
        assert_eq!(api.get("/tag").await.status, 200);
        assert!(started.elapsed() >= Duration::from_millis(390));
    }

    #[tokio::test]
    async fn sim_fault_rates_are_roughly_right_and_reproducible_by_seed() {
        let api = TestApi::logged_in(SimConfig::default()).await;
        let knobs = Knobs { fault_rate_500: 0.3, fault_rate_error12: 0.2, seed: 42, ..Knobs::default() };
        api.sim.set_knobs(knobs.clone());
        let first = statuses(&api, "/list", 200).await;
        let count = |status: u16| first.iter().filter(|&&s| s == status).count();
        assert!((35..=85).contains(&count(500)), "500s: {}", count(500));
        assert!((20..=60).contains(&count(406)), "406s: {}", count(406));
        assert_eq!(count(200) + count(500) + count(406), 200);
        // The same seed gives the same sequence.
        api.sim.set_knobs(knobs);
        assert_eq!(statuses(&api, "/list", 200).await, first);
    }

    #[tokio::test]
    async fn sim_german_messages() {
        let mut api = TestApi::start(SimConfig::default()).await;
        api.sim.set_knobs(Knobs { language: Language::De, ..Knobs::default() });
        assert_eq!(api.get("/tag").await.pair(), (403, json!(["API Zugriff verweigert"])));
        let wrong = api.post("/account/login", json!({"username": USERNAME, "password": "falsch"})).await;
        assert_eq!(wrong.pair(), (401, json!(["Falscher Benutzername oder Passwort."])));
        api.login().await;
        assert_eq!(api.get("/field").await.json()["fieldFirstName"], "Vorname");
        assert_eq!(
            api.post("/account/login", json!({"username": USERNAME, "password": PASSWORD})).await.pair(),
            (406, json!(["Sie sind bereits eingeloggt."]))
        );
        api.sim.set_knobs(Knobs::default());
        assert_eq!(api.get("/field").await.json()["fieldFirstName"], "First name");
    }

    #[tokio::test]
    async fn sim_empty_maps_as_arrays() {
        let api = TestApi::logged_in(SimConfig::default()).await;
        assert_eq!(api.get("/tag").await.json(), json!({}));
        api.sim.set_knobs(Knobs { empty_maps_as_arrays: true, ..Knobs::default() });
        assert_eq!(api.get("/tag").await.json(), json!([]));
        let contact = api.upsert(json!({"email": "a@b.example"})).await;
        assert_eq!(contact["manual_tags"], json!([]));
        assert_eq!(contact["campaigns_started"], json!([]));
        api.sim.set_knobs(Knobs::default());
        let contact = api.upsert(json!({"email": "a@b.example"})).await;
        assert_eq!(contact["manual_tags"], json!({}));
    }

    #[tokio::test]
    async fn sim_duplicate_tag_names_allowed_or_rejected() {
        let api = TestApi::logged_in(SimConfig::default()).await;
        let first = api.create_tag("Registered").await;
        let second = api.create_tag("Registered").await;
        assert_ne!(first, second);
        api.sim.set_knobs(Knobs { duplicate_tag_names: DuplicateTagPolicy::Reject, ..Knobs::default() });
        let refused = api.post("/tag", json!({"name": "registered"})).await;
        assert_eq!(refused.status, 406);
        assert!(refused.json()[0].is_string(), "{}", refused.text);
        let other = api.create_tag("Attended").await;
        assert_eq!(api.put(&format!("/tag/{other}"), json!({"name": "REGISTERED"})).await.status, 406);
        assert_eq!(api.sim.tags().len(), 3);
    }

    #[tokio::test]
    async fn sim_unknown_tag_answer_403_or_7() {
        let api = TestApi::logged_in(SimConfig::default()).await;
        api.upsert(json!({"email": "a@b.example"})).await;
        let probes = [
            ("/subscriber", json!({"email": "a@b.example", "tagid": 424242})),
            ("/subscriber/tag", json!({"email": "a@b.example", "tagids": [424242]})),
            ("/subscriber/untag", json!({"email": "a@b.example", "tagid": 424242})),
        ];
        for (path, body) in &probes {
            assert_eq!(api.post(path, body.clone()).await.pair(), (406, json!({"error": 403})), "{path}");
        }
        api.sim.set_knobs(Knobs { unknown_tag_answer: UnknownTagAnswer::Error7, ..Knobs::default() });
        for (path, body) in &probes {
            assert_eq!(api.post(path, body.clone()).await.pair(), (406, json!({"error": 7})), "{path}");
        }
    }

    #[tokio::test]
    async fn sim_reject_emails_is_a_permanent_error_5() {
        let config = SimConfig {
            listbuilding_keys: vec![klicktipp_sim::ListbuildingKey { apikey: "k".into(), listid: 1, tagid: 0 }],
            knobs: Knobs { reject_emails: vec!["Blocked@Example.com".into()], ..Knobs::default() },
            ..SimConfig::default()
        };
        let api = TestApi::logged_in(config).await;
        for _ in 0..2 {
            let answer = api.post("/subscriber", json!({"email": "blocked@example.com"})).await;
            assert_eq!(answer.pair(), (406, json!({"error": 5})));
        }
        let signin = api.post("/subscriber/signin", json!({"apikey": "k", "email": "blocked@example.com"})).await;
        assert_eq!(signin.pair(), (406, json!({"error": 5})));
        assert!(api.sim.contacts().is_empty());
    }

    #[tokio::test]
    async fn sim_partner_auth_with_the_reference_vector() {
        let signature = "cZkWFoPs3rLacJ4OpaooJMMOcb/fLxbZpeeOzJFCGh1jdXN0b21lci1rZXk=";
        assert_eq!(klicktipp_sim::auth::partner_ci("0123456789abcdef", "customer-key").expect("hex"), signature);
        let config = SimConfig {
            partner: Some(PartnerAccount {
                username: "partner-user".into(),
                developer_key: "0123456789abcdef".into(),
                customer_key: "customer-key".into(),
            }),
            ..SimConfig::default()
        };
        let mut api = TestApi::start(config).await;
        api.extra_headers = vec![("x-un".into(), "partner-user".into()), ("x-ci".into(), signature.into())];
        assert_eq!(api.get("/tag").await.status, 200);
        api.create_tag("Buyer").await;
        // No session limits: expiry knobs do not apply to partner calls.
        api.sim.set_knobs(Knobs { session_expiry_calls: Some(1), ..Knobs::default() });
        assert_eq!(statuses(&api, "/tag", 3).await, [200, 200, 200]);
        assert_eq!(api.post("/account/logout", json!({})).await.pair(), (200, json!([true])));

        api.extra_headers = vec![("x-un".into(), "someone-else".into()), ("x-ci".into(), signature.into())];
        assert_eq!(api.get("/tag").await.pair(), (403, json!(["API access denied."])));
        let other = klicktipp_sim::auth::partner_ci("0123456789abcdef", "other-key").expect("hex");
        api.extra_headers = vec![("x-un".into(), "partner-user".into()), ("x-ci".into(), other)];
        assert_eq!(api.get("/tag").await.status, 403);
    }

    #[tokio::test]
    async fn sim_knobs_round_trip_through_the_admin_api() {
        let api = TestApi::logged_in(SimConfig::default()).await;
        let client = reqwest::Client::new();
        let patched: serde_json::Value = client
            .patch(format!("{}/_sim/knobs", api.sim.url()))
            .json(&json!({"language": "de", "rate_limit_per_second": 7}))
            .send()
            .await
            .expect("patch")
            .json()
            .await
            .expect("json");
        assert_eq!(patched["language"], "De");
        assert_eq!(api.sim.knobs().rate_limit_per_second, Some(7));
        assert_eq!(api.sim.knobs().language, Language::De);
        let put = client
            .put(format!("{}/_sim/knobs", api.sim.url()))
            .json(&json!({"retry_after": true}))
            .send()
            .await
            .expect("put");
        assert_eq!(put.status().as_u16(), 200);
        assert_eq!(api.sim.knobs(), Knobs { retry_after: true, ..Knobs::default() });
        let typo = client
            .patch(format!("{}/_sim/knobs", api.sim.url()))
            .json(&json!({"rate_limit": 3}))
            .send()
            .await
            .expect("patch");
        assert_eq!(typo.status().as_u16(), 400);
        let current: Knobs = client
            .get(format!("{}/_sim/knobs", api.sim.url()))
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("knobs json");
        assert_eq!(current, api.sim.knobs());
    }
}
