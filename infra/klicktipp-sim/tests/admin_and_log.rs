//! The request log, the counters and the `/_sim/` admin API.

mod common;

use std::collections::BTreeMap;

use common::TestApi;
use klicktipp_sim::{ContactView, Knobs, LoggedRequest, SimConfig};
use serde_json::{Value, json};

async fn admin_get(api: &TestApi, path: &str) -> (u16, String) {
    let response = reqwest::get(format!("{}{path}", api.sim.url())).await.expect("admin request");
    let status = response.status().as_u16();
    (status, response.text().await.expect("admin body"))
}

async fn admin_json(api: &TestApi, path: &str) -> Value {
    let (status, text) = admin_get(api, path).await;
    assert_eq!(status, 200, "{path}: {text}");
    serde_json::from_str(&text).expect("admin JSON")
}

mod sim {
    use super::*;

    #[tokio::test]
    async fn sim_request_log_and_counts_are_exact() {
        let mut api = TestApi::logged_in(SimConfig::default()).await;
        assert_eq!(api.get("/tag").await.status, 200);
        let tag = api.create_tag("A").await;
        let contact = api.upsert(json!({"email": "a@b.example", "tagid": tag})).await;
        let id = contact["id"].as_str().expect("id").to_owned();
        api.post("/subscriber/tag", json!({"email": "a@b.example", "tagids": [tag]})).await;
        api.post("/subscriber/untag", json!({"email": "a@b.example", "tagid": tag})).await;
        api.get(&format!("/subscriber/{id}.json")).await;
        api.delete("/tag").await;
        api.get("/nope").await;
        // Admin calls are neither logged nor counted.
        admin_json(&api, "/_sim/contacts").await;
        api.sim.set_knobs(Knobs { rate_limit_per_second: Some(1), ..Knobs::default() });
        api.get("/tag").await;
        api.get("/tag").await;
        api.cookie = None;
        api.get("/list").await;

        let expected_calls: BTreeMap<String, u64> = [
            ("DELETE /tag", 1),
            ("GET /list", 1),
            ("GET /nope", 1),
            ("GET /subscriber/{id}", 1),
            ("GET /tag", 3),
            ("POST /account/login", 1),
            ("POST /subscriber", 1),
            ("POST /subscriber/tag", 1),
            ("POST /subscriber/untag", 1),
            ("POST /tag", 1),
        ]
        .into_iter()
        .map(|(label, count)| (label.to_owned(), count))
        .collect();
        assert_eq!(api.sim.calls_by_endpoint(), expected_calls);
        assert_eq!(api.sim.total_calls(), 12);
        let statuses: Vec<(u16, u64)> =
            [200, 403, 404, 405, 429].into_iter().map(|s| (s, api.sim.count_status(s))).collect();
        assert_eq!(statuses, [(200, 8), (403, 0), (404, 1), (405, 1), (429, 2)]);

        let log = api.sim.request_log();
        let summary: Vec<(&str, &str, &str, u16)> =
            log.iter().map(|e| (e.method.as_str(), e.path.as_str(), e.endpoint.as_str(), e.status)).collect();
        let subscriber_path = format!("/subscriber/{id}.json");
        assert_eq!(
            summary,
            [
                ("POST", "/account/login", "POST /account/login", 200),
                ("GET", "/tag", "GET /tag", 200),
                ("POST", "/tag", "POST /tag", 200),
                ("POST", "/subscriber", "POST /subscriber", 200),
                ("POST", "/subscriber/tag", "POST /subscriber/tag", 200),
                ("POST", "/subscriber/untag", "POST /subscriber/untag", 200),
                ("GET", subscriber_path.as_str(), "GET /subscriber/{id}", 200),
                ("DELETE", "/tag", "DELETE /tag", 405),
                ("GET", "/nope", "GET /nope", 404),
                ("GET", "/tag", "GET /tag", 200),
                ("GET", "/tag", "GET /tag", 429),
                ("GET", "/list", "GET /list", 429),
            ]
        );
        assert_eq!(log[2].body, json!({"name": "A"}));
        assert_eq!(log[1].body, Value::Null);
        assert!(log.windows(2).all(|pair| pair[0].at_ms <= pair[1].at_ms));
        assert!(log[1].headers.get("cookie").is_some_and(|c| c.starts_with("SSESS")));
        assert_eq!(log[3].headers.get("content-type").map(String::as_str), Some("application/json"));

        // The same through the admin API.
        let logged: Vec<LoggedRequest> = serde_json::from_value(admin_json(&api, "/_sim/requests").await).expect("log");
        assert_eq!(logged, log);
        let calls = admin_json(&api, "/_sim/calls").await;
        assert_eq!(calls["total"], 12);
        assert_eq!(calls["calls_by_endpoint"]["GET /tag"], 3);
        assert_eq!(calls["by_status"]["429"], 2);
    }

    #[tokio::test]
    async fn sim_admin_views_match_the_library_views() {
        let api = TestApi::logged_in(SimConfig::default()).await;
        let tag = api.create_tag("Registered").await;
        api.upsert(json!({"email": "b@b.example", "tagid": tag, "fields": {"fieldFirstName": "B"}})).await;
        api.upsert(json!({"email": "a@b.example", "listid": 2})).await;
        let contacts: Vec<ContactView> =
            serde_json::from_value(admin_json(&api, "/_sim/contacts").await).expect("contacts");
        assert_eq!(contacts, api.sim.contacts());
        assert_eq!(contacts.iter().map(|c| c.email.as_str()).collect::<Vec<_>>(), ["a@b.example", "b@b.example"]);
        assert_eq!(contacts[1].tags, ["Registered"]);
        assert_eq!(contacts[1].fields, BTreeMap::from([("fieldFirstName".to_owned(), "B".to_owned())]));
        assert_eq!((contacts[0].status.as_str(), contacts[0].listid), ("Subscribed", 2));
        assert_eq!(admin_json(&api, "/_sim/tags").await, json!({tag.to_string(): "Registered"}));
        assert_eq!(api.sim.total_calls(), 4, "admin calls are not counted");
    }

    #[tokio::test]
    async fn sim_admin_page_escapes_everything() {
        let api = TestApi::logged_in(SimConfig::default()).await;
        let tag = api.create_tag("<b>bold</b>").await;
        api.upsert(json!({"email": "x@b.example", "tagid": tag, "fields": {"fieldFirstName": "<script>alert(\"x\")</script>"}}))
            .await;
        for path in ["/_sim", "/_sim/"] {
            let (status, html) = admin_get(&api, path).await;
            assert_eq!(status, 200);
            assert!(html.contains("x@b.example"));
            assert!(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"), "{html}");
            assert!(html.contains("&lt;b&gt;bold&lt;/b&gt;"));
            assert!(!html.contains("<script>") && !html.contains("<b>bold"));
        }
    }

    #[tokio::test]
    async fn sim_reset_returns_to_the_start_config_and_keeps_knobs() {
        let api = TestApi::logged_in(SimConfig::default()).await;
        let first_tag = api.create_tag("A").await;
        api.upsert(json!({"email": "a@b.example"})).await;
        api.sim.set_knobs(Knobs { retry_after: true, ..Knobs::default() });
        let reset = reqwest::Client::new().post(format!("{}/_sim/reset", api.sim.url())).send().await.expect("reset");
        assert_eq!(reset.status().as_u16(), 200);
        assert!(api.sim.contacts().is_empty() && api.sim.tags().is_empty());
        assert_eq!((api.sim.total_calls(), api.sim.calls_by_endpoint().len()), (0, 0));
        assert!(api.sim.knobs().retry_after);
        assert_eq!(api.get("/tag").await.status, 403, "sessions are gone");
        api.sim.reset();
        let mut api = api;
        api.login().await;
        assert_eq!(api.create_tag("B").await, first_tag, "ids start over");
    }

    #[tokio::test]
    async fn sim_admin_errors_and_confirm() {
        let api = TestApi::logged_in(SimConfig::default()).await;
        api.upsert(json!({"email": "a@b.example"})).await;
        assert_eq!(admin_get(&api, "/_sim/nothing").await.0, 404);
        let client = reqwest::Client::new();
        let wrong = client.delete(format!("{}/_sim/contacts", api.sim.url())).send().await.expect("delete");
        assert_eq!(wrong.status().as_u16(), 405);
        let bad = client.put(format!("{}/_sim/knobs", api.sim.url())).body("{").send().await.expect("put");
        assert_eq!(bad.status().as_u16(), 400);
        let confirm = client
            .post(format!("{}/_sim/confirm", api.sim.url()))
            .json(&json!({"email": "A@b.example"}))
            .send()
            .await
            .expect("confirm");
        assert_eq!(confirm.json::<Value>().await.expect("json"), json!({"confirmed": true}));
        assert_eq!(api.sim.contacts()[0].status, "Subscribed");
        assert_eq!(api.sim.total_calls(), 2);
    }

    #[tokio::test]
    async fn sim_clones_share_state_and_shutdown_stops_serving() {
        let api = TestApi::logged_in(SimConfig::default()).await;
        let clone = api.sim.clone();
        api.create_tag("Shared").await;
        assert_eq!(clone.tags().len(), 1);
        let url = clone.url();
        clone.shutdown().await;
        let after = reqwest::Client::new().get(format!("{url}/_sim/tags")).send().await;
        assert!(after.is_err(), "still serving after shutdown");
        api.sim.shutdown().await; // a second shutdown is a no-op
    }
}
