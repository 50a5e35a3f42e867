//! The production KlickTipp client against the in-process KlickTipp simulator: every operation,
//! every error class, session expiry, partner auth, and the rate cap measured on the
//! simulator's own request log.

use klicktipp_sim::{FieldSpec, FieldType, Knobs, Language, ListbuildingKey, PartnerAccount, SimConfig};
use std::collections::BTreeMap;
use std::time::Duration;
use webinar_bridge::Secret;
use webinar_bridge::klicktipp::{
    ErrorClass, FieldValue, KlickTippAuth, KlickTippClient, KlickTippConfig, KlickTippError, UpsertSubscriber,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const USERNAME: &str = "bridge";
const PASSWORD: &str = "sim-password";
const DEVELOPER_KEY: &str = "0123456789abcdef";
const CUSTOMER_KEY: &str = "customer-key";
const APIKEY: &str = "lb-key-1";
const WEBINAR_START_FIELD: &str = "field100";

fn session_auth() -> KlickTippAuth {
    KlickTippAuth::Session { username: USERNAME.into(), password: Secret::new(PASSWORD) }
}

fn partner_auth(customer_key: &str) -> KlickTippAuth {
    KlickTippAuth::Partner {
        username: USERNAME.into(),
        developer_key: Secret::new(DEVELOPER_KEY),
        customer_key: Secret::new(customer_key),
    }
}

/// Unlimited rate and short backoff, so tests that are not about pacing run fast.
fn fast_config(url: &str, auth: KlickTippAuth) -> KlickTippConfig {
    let mut config = KlickTippConfig::new(url, auth);
    config.rate_per_second = 0.0;
    config.backoff_base = Duration::from_millis(5);
    config.request_timeout = Duration::from_secs(5);
    config
}

fn client(url: &str, auth: KlickTippAuth) -> Result<KlickTippClient, KlickTippError> {
    KlickTippClient::new(fast_config(url, auth))
}

fn full_config() -> SimConfig {
    SimConfig {
        partner: Some(PartnerAccount {
            username: USERNAME.into(),
            developer_key: DEVELOPER_KEY.into(),
            customer_key: CUSTOMER_KEY.into(),
        }),
        listbuilding_keys: vec![ListbuildingKey { apikey: APIKEY.into(), listid: 2, tagid: 0 }],
        custom_fields: vec![FieldSpec {
            key: WEBINAR_START_FIELD.into(),
            label: "Webinar start".into(),
            field_type: FieldType::DateTime,
        }],
        ..SimConfig::default()
    }
}

fn upsert(email: &str) -> UpsertSubscriber {
    UpsertSubscriber::new(email)
}

fn calls(sim: &klicktipp_sim::Sim, endpoint: &str) -> u64 {
    sim.calls_by_endpoint().get(endpoint).copied().unwrap_or(0)
}

fn contact_tags(sim: &klicktipp_sim::Sim, email: &str) -> Option<Vec<String>> {
    sim.contacts().into_iter().find(|contact| contact.email == email).map(|contact| {
        let mut tags = contact.tags;
        tags.sort();
        tags
    })
}

#[tokio::test]
async fn every_operation_round_trips() -> TestResult {
    let sim = klicktipp_sim::start(full_config(), "127.0.0.1:0").await?;
    let client = client(&sim.url(), session_auth())?;

    let optins = client.list_optins().await?;
    assert!(optins.values().any(String::is_empty), "the default double opt-in has an empty name: {optins:?}");
    let fields = client.list_fields().await?;
    assert!(fields.contains_key("fieldFirstName"));
    assert_eq!(fields.get(WEBINAR_START_FIELD).map(String::as_str), Some("Webinar start"));

    let registered = client.create_tag("[Zoom] [Demo] Registered", Some("set by webinar-bridge")).await?;
    let attended = client.create_tag("[Zoom] [Demo] Attended", None).await?;
    let tags = client.list_tags().await?;
    assert_eq!(tags.get(&registered).map(String::as_str), Some("[Zoom] [Demo] Registered"));
    assert_eq!(tags.get(&attended).map(String::as_str), Some("[Zoom] [Demo] Attended"));

    let email = "erika@example.com";
    let mut request = upsert(email);
    request.listid = Some(2);
    request.tagid = Some(registered);
    request.fields.insert("fieldFirstName".into(), FieldValue::from("Erika"));
    request.fields.insert(WEBINAR_START_FIELD.into(), FieldValue::Number(1_715_603_400));
    let created = client.upsert_subscriber(&request).await?;
    assert_eq!(created.email, email);
    assert_eq!(created.tags, [registered]);
    assert_eq!(created.fields.get("fieldFirstName").map(String::as_str), Some("Erika"));
    assert_eq!(created.fields.get(WEBINAR_START_FIELD).map(String::as_str), Some("1715603400"));

    assert_eq!(client.search_subscriber(email).await?, Some(created.id.clone()));
    assert_eq!(client.search_subscriber("nobody@example.com").await?, None);
    let fetched = client.get_subscriber(&created.id).await?;
    assert_eq!((fetched.id.as_str(), fetched.email.as_str()), (created.id.as_str(), email));

    client.tag(email, &[attended]).await?;
    assert_eq!(
        contact_tags(&sim, email),
        Some(vec!["[Zoom] [Demo] Attended".to_owned(), "[Zoom] [Demo] Registered".to_owned()])
    );
    client.untag(email, registered).await?;
    assert_eq!(contact_tags(&sim, email), Some(vec!["[Zoom] [Demo] Attended".to_owned()]));
    assert_eq!(client.get_subscriber(&created.id).await?.tags, [attended]);

    let contact = sim.contacts().into_iter().find(|contact| contact.email == email).ok_or("contact missing")?;
    assert_eq!(contact.id.to_string(), created.id);
    assert_eq!(contact.fields.get("fieldFirstName").map(String::as_str), Some("Erika"));

    // Logout closes the session; the next call logs in again.
    assert_eq!(calls(&sim, "POST /account/login"), 1);
    client.logout().await?;
    client.logout().await?;
    assert_eq!(calls(&sim, "POST /account/logout"), 1);
    client.list_tags().await?;
    assert_eq!(calls(&sim, "POST /account/login"), 2);
    Ok(())
}

#[tokio::test]
async fn empty_collections_as_php_arrays_are_empty_maps() -> TestResult {
    let sim = klicktipp_sim::start(SimConfig::default(), "127.0.0.1:0").await?;
    sim.set_knobs(Knobs { empty_maps_as_arrays: true, ..Knobs::default() });
    let client = client(&sim.url(), session_auth())?;
    assert!(client.list_tags().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn signin_uses_the_listbuilding_key() -> TestResult {
    let sim = klicktipp_sim::start(full_config(), "127.0.0.1:0").await?;
    let mut config = fast_config(&sim.url(), KlickTippAuth::None);
    config.listbuilding_apikey = Some(Secret::new(APIKEY));
    let client = KlickTippClient::new(config)?;

    let fields = BTreeMap::from([("fieldFirstName".to_owned(), FieldValue::from("Max"))]);
    let redirect = client.signin("max@example.com", &fields).await?;
    assert!(redirect.starts_with("https://"), "{redirect}");
    let contact = sim.contacts().into_iter().find(|contact| contact.email == "max@example.com").ok_or("no contact")?;
    assert_eq!(contact.fields.get("fieldFirstName").map(String::as_str), Some("Max"));

    // Management calls need management credentials.
    let error = client.list_tags().await.unwrap_err();
    assert!(matches!(error, KlickTippError::NotConfigured { .. }), "{error}");
    Ok(())
}

#[tokio::test]
async fn signin_with_an_unknown_key_is_rejected_once_with_error_100() -> TestResult {
    let sim = klicktipp_sim::start(full_config(), "127.0.0.1:0").await?;
    let mut config = fast_config(&sim.url(), KlickTippAuth::None);
    config.listbuilding_apikey = Some(Secret::new("not-a-key"));
    let client = KlickTippClient::new(config)?;

    let error = client.signin("max@example.com", &BTreeMap::new()).await.unwrap_err();
    assert_eq!(error.error_number(), Some(100), "{error}");
    assert_eq!(error.class(), ErrorClass::Permanent);
    assert_eq!(calls(&sim, "POST /subscriber/signin"), 1);
    Ok(())
}

async fn rate_limited_calls_succeed(retry_after: bool) -> TestResult {
    let sim = klicktipp_sim::start(SimConfig::default(), "127.0.0.1:0").await?;
    sim.set_knobs(Knobs { rate_limit_per_second: Some(1), retry_after, ..Knobs::default() });
    // The client's own limiter is off, so the simulator's limit is what paces it.
    let client = client(&sim.url(), session_auth())?;
    for _ in 0..3 {
        client.list_tags().await?;
    }
    assert!(sim.count_status(429) > 0, "the simulator never limited");
    // Every retry after a 429 came at least ~1 s later (Retry-After: 1, or the 1 s default).
    let log = sim.request_log();
    for (index, entry) in log.iter().enumerate().filter(|(_, entry)| entry.status == 429) {
        let next = log.get(index + 1).ok_or("a 429 was the last request")?;
        assert!(next.at_ms >= entry.at_ms + 950, "retried after {} ms", next.at_ms - entry.at_ms);
    }
    Ok(())
}

#[tokio::test]
async fn rate_limited_with_retry_after_waits_and_succeeds() -> TestResult {
    rate_limited_calls_succeed(true).await
}

#[tokio::test]
async fn rate_limited_without_retry_after_waits_a_second_and_succeeds() -> TestResult {
    rate_limited_calls_succeed(false).await
}

#[tokio::test]
async fn server_errors_are_retried() -> TestResult {
    let sim = klicktipp_sim::start(SimConfig::default(), "127.0.0.1:0").await?;
    sim.set_knobs(Knobs { fault_rate_500: 0.3, fault_rate_502_html: 0.2, seed: 7, ..Knobs::default() });
    let mut config = fast_config(&sim.url(), session_auth());
    config.max_attempts = 12;
    let client = KlickTippClient::new(config)?;
    for index in 0..10 {
        client.upsert_subscriber(&upsert(&format!("user{index}@example.com"))).await?;
    }
    assert!(sim.count_status(500) > 0 && sim.count_status(502) > 0, "no faults were injected");
    assert_eq!(sim.contacts().len(), 10);
    Ok(())
}

#[tokio::test]
async fn retries_are_bounded_and_return_the_last_error() -> TestResult {
    let sim = klicktipp_sim::start(full_config(), "127.0.0.1:0").await?;
    let mut config = fast_config(&sim.url(), partner_auth(CUSTOMER_KEY));
    config.max_attempts = 3;
    config.request_timeout = Duration::from_millis(100);
    let client = KlickTippClient::new(config)?;

    sim.set_knobs(Knobs { fault_rate_500: 1.0, ..Knobs::default() });
    let error = client.list_tags().await.unwrap_err();
    assert!(matches!(error, KlickTippError::Server { status: 500, .. }), "{error:?}");
    assert!(error.is_retryable());
    assert_eq!(calls(&sim, "GET /tag"), 3);

    sim.reset();
    sim.set_knobs(Knobs { fault_rate_timeout: 1.0, timeout_ms: 300, ..Knobs::default() });
    let error = client.list_fields().await.unwrap_err();
    assert!(matches!(error, KlickTippError::Transport { .. }), "{error:?}");
    assert!(error.is_retryable());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(calls(&sim, "GET /field"), 3);
    Ok(())
}

#[tokio::test]
async fn error_inside_a_200_is_retried() -> TestResult {
    let sim = klicktipp_sim::start(SimConfig::default(), "127.0.0.1:0").await?;
    sim.set_knobs(Knobs { error_in_200_rate: 0.4, seed: 7, ..Knobs::default() });
    let mut config = fast_config(&sim.url(), session_auth());
    config.max_attempts = 12;
    let client = KlickTippClient::new(config)?;
    for index in 0..10 {
        client.upsert_subscriber(&upsert(&format!("user{index}@example.com"))).await?;
    }
    assert!(calls(&sim, "POST /subscriber") > 10, "no error was injected");
    assert_eq!(sim.contacts().len(), 10);
    Ok(())
}

#[tokio::test]
async fn a_refused_email_is_rejected_once_with_error_5() -> TestResult {
    let sim = klicktipp_sim::start(SimConfig::default(), "127.0.0.1:0").await?;
    sim.set_knobs(Knobs { reject_emails: vec!["blocked@example.com".into()], ..Knobs::default() });
    let client = client(&sim.url(), session_auth())?;

    let error = client.upsert_subscriber(&upsert("blocked@example.com")).await.unwrap_err();
    assert!(matches!(error, KlickTippError::Rejected { status: 406, error: Some(5), .. }), "{error:?}");
    assert_eq!(error.class(), ErrorClass::Permanent);
    assert_eq!(calls(&sim, "POST /subscriber"), 1);
    assert!(!error.to_string().contains("blocked@example.com"), "{error}");
    Ok(())
}

#[tokio::test]
async fn a_wrong_field_format_is_error_8_naming_the_field() -> TestResult {
    let sim = klicktipp_sim::start(full_config(), "127.0.0.1:0").await?;
    let client = client(&sim.url(), session_auth())?;
    let mut request = upsert("erika@example.com");
    request.fields.insert(WEBINAR_START_FIELD.into(), FieldValue::from("next tuesday"));

    let error = client.upsert_subscriber(&request).await.unwrap_err();
    assert_eq!(error.error_number(), Some(8), "{error}");
    assert_eq!(error.class(), ErrorClass::Permanent);
    let field = error.field_error().ok_or("no field detail")?;
    assert_eq!(field.key.as_deref(), Some(WEBINAR_START_FIELD));
    assert_eq!(field.label.as_deref(), Some("Webinar start"));
    assert_eq!(field.value.as_deref(), Some("next tuesday"));
    assert!(field.reason.as_deref().is_some_and(|reason| !reason.is_empty()));
    assert!(error.to_string().contains(WEBINAR_START_FIELD), "{error}");
    assert_eq!(calls(&sim, "POST /subscriber"), 1);
    Ok(())
}

#[tokio::test]
async fn an_unknown_tag_is_a_permanent_rejection() -> TestResult {
    let sim = klicktipp_sim::start(SimConfig::default(), "127.0.0.1:0").await?;
    let client = client(&sim.url(), session_auth())?;
    client.upsert_subscriber(&upsert("erika@example.com")).await?;
    let error = client.tag("erika@example.com", &[999_999]).await.unwrap_err();
    assert_eq!((error.status(), error.class()), (Some(406), ErrorClass::Permanent), "{error}");
    assert_eq!(calls(&sim, "POST /subscriber/tag"), 1);
    Ok(())
}

#[tokio::test]
async fn session_expiry_causes_one_relogin_per_expiry_and_no_duplicate_effect() -> TestResult {
    let sim = klicktipp_sim::start(SimConfig::default(), "127.0.0.1:0").await?;
    sim.set_knobs(Knobs { session_expiry_calls: Some(3), ..Knobs::default() });
    let client = client(&sim.url(), session_auth())?;
    let tag = client.create_tag("Attended", None).await?;
    let emails: Vec<String> = (0..6).map(|index| format!("user{index}@example.com")).collect();
    for email in &emails {
        client.upsert_subscriber(&upsert(email)).await?;
        client.tag(email, &[tag]).await?;
    }

    let refusals = sim.count_status(403);
    assert!(refusals >= 3, "sessions expired only {refusals} times");
    assert_eq!(calls(&sim, "POST /account/login"), 1 + refusals);
    // Each refused call was followed by exactly one login and one replay.
    let log = sim.request_log();
    for (index, refused) in log.iter().enumerate().filter(|(_, entry)| entry.status == 403) {
        let login = log.get(index + 1).ok_or("no login after a refusal")?;
        let replay = log.get(index + 2).ok_or("no replay after the login")?;
        assert_eq!(login.endpoint, "POST /account/login");
        assert_eq!((replay.endpoint.as_str(), replay.status), (refused.endpoint.as_str(), 200));
    }
    let tag_calls_applied = log.iter().filter(|entry| entry.endpoint == "POST /subscriber/tag" && entry.status == 200);
    assert_eq!(tag_calls_applied.count(), emails.len());
    assert_eq!(calls(&sim, "POST /tag"), 1);
    for email in &emails {
        assert_eq!(contact_tags(&sim, email), Some(vec!["Attended".to_owned()]));
    }
    Ok(())
}

#[tokio::test]
async fn concurrent_calls_share_one_relogin_per_expiry() -> TestResult {
    const SESSION_CALLS: u64 = 3;
    let sim = klicktipp_sim::start(SimConfig::default(), "127.0.0.1:0").await?;
    sim.set_knobs(Knobs { session_expiry_calls: Some(SESSION_CALLS as u32), ..Knobs::default() });
    let mut config = fast_config(&sim.url(), session_auth());
    config.max_attempts = 10;
    let client = KlickTippClient::new(config)?;
    let tasks: Vec<_> = (0..8)
        .map(|index| {
            let client = client.clone();
            tokio::spawn(async move { client.upsert_subscriber(&upsert(&format!("user{index}@example.com"))).await })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    assert_eq!(sim.contacts().len(), 8);
    assert!(sim.count_status(403) > 0, "no session expired");
    // A new login only replaces a session that was used up, so the logins are as few as the
    // successful calls allow; one login per refused caller would need many more.
    let log = sim.request_log();
    let served = log.iter().filter(|entry| entry.endpoint != "POST /account/login" && entry.status == 200).count();
    let logins = calls(&sim, "POST /account/login");
    assert!(logins <= (served as u64).div_ceil(SESSION_CALLS), "{logins} logins for {served} calls");
    Ok(())
}

#[tokio::test]
async fn a_wrong_password_fails_authentication_without_retries() -> TestResult {
    let sim = klicktipp_sim::start(SimConfig::default(), "127.0.0.1:0").await?;
    let auth = KlickTippAuth::Session { username: USERNAME.into(), password: Secret::new("wrong") };
    let client = client(&sim.url(), auth)?;
    let error = client.list_tags().await.unwrap_err();
    assert!(matches!(error, KlickTippError::AuthFailed { .. }), "{error:?}");
    assert_eq!(error.class(), ErrorClass::Permanent);
    assert_eq!(calls(&sim, "POST /account/login"), 1);
    assert_eq!(calls(&sim, "GET /tag"), 0);
    Ok(())
}

#[tokio::test]
async fn partner_headers_are_accepted() -> TestResult {
    let sim = klicktipp_sim::start(full_config(), "127.0.0.1:0").await?;
    let client = client(&sim.url(), partner_auth(CUSTOMER_KEY))?;
    let tag = client.create_tag("Buyer", None).await?;
    let mut request = upsert("erika@example.com");
    request.tagid = Some(tag);
    client.upsert_subscriber(&request).await?;
    assert_eq!(contact_tags(&sim, "erika@example.com"), Some(vec!["Buyer".to_owned()]));
    assert_eq!(calls(&sim, "POST /account/login"), 0);
    let signature = "cZkWFoPs3rLacJ4OpaooJMMOcb/fLxbZpeeOzJFCGh1jdXN0b21lci1rZXk=";
    for entry in sim.request_log() {
        assert_eq!(entry.headers.get("x-un").map(String::as_str), Some(USERNAME));
        assert_eq!(entry.headers.get("x-ci").map(String::as_str), Some(signature));
        assert!(!entry.headers.contains_key("cookie"));
    }
    client.logout().await?;
    assert_eq!(calls(&sim, "POST /account/logout"), 0);
    Ok(())
}

#[tokio::test]
async fn a_wrong_partner_signature_is_final() -> TestResult {
    let sim = klicktipp_sim::start(full_config(), "127.0.0.1:0").await?;
    let client = client(&sim.url(), partner_auth("another-customer"))?;
    let error = client.list_tags().await.unwrap_err();
    assert!(matches!(error, KlickTippError::AuthFailed { status: 403, .. }), "{error:?}");
    assert_eq!(calls(&sim, "GET /tag"), 1);
    Ok(())
}

#[tokio::test]
async fn german_messages_do_not_change_classification() -> TestResult {
    let sim = klicktipp_sim::start(full_config(), "127.0.0.1:0").await?;
    sim.set_knobs(Knobs {
        language: Language::De,
        reject_emails: vec!["blocked@example.com".into()],
        session_expiry_calls: Some(2),
        ..Knobs::default()
    });
    let client = client(&sim.url(), session_auth())?;

    let rejected = client.upsert_subscriber(&upsert("blocked@example.com")).await.unwrap_err();
    assert_eq!((rejected.error_number(), rejected.class()), (Some(5), ErrorClass::Permanent), "{rejected}");
    assert_eq!(client.search_subscriber("nobody@example.com").await?, None);
    for _ in 0..3 {
        client.list_tags().await?;
    }
    assert!(sim.count_status(403) > 0, "the session never expired");

    let partner = self::client(&sim.url(), partner_auth("another-customer"))?;
    let refused = partner.list_tags().await.unwrap_err();
    assert!(matches!(refused, KlickTippError::AuthFailed { status: 403, .. }), "{refused:?}");
    let wrong_password = KlickTippAuth::Session { username: USERNAME.into(), password: Secret::new("falsch") };
    let login_refused = self::client(&sim.url(), wrong_password)?.list_tags().await.unwrap_err();
    assert!(matches!(login_refused, KlickTippError::AuthFailed { .. }), "{login_refused:?}");
    Ok(())
}

#[tokio::test]
async fn a_lost_create_tag_answer_does_not_create_a_twin() -> TestResult {
    let sim = klicktipp_sim::start(SimConfig::default(), "127.0.0.1:0").await?;
    let mut config = fast_config(&sim.url(), session_auth());
    config.request_timeout = Duration::from_millis(300);
    // The retry comes after the late answer (and its effect) at 400 ms.
    config.backoff_base = Duration::from_millis(300);
    let client = KlickTippClient::new(config)?;
    client.list_tags().await?;
    // The POST's answer is late (the tag is created) and the client gives up on it.
    sim.set_knobs(Knobs { fault_rate_timeout: 1.0, timeout_ms: 400, ..Knobs::default() });
    let creating = tokio::spawn({
        let client = client.clone();
        async move { client.create_tag("Registered", None).await }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    sim.set_knobs(Knobs::default());
    let id = creating.await??;

    let tags = client.list_tags().await?;
    assert_eq!(tags.values().filter(|name| name.as_str() == "Registered").count(), 1, "{tags:?}");
    assert_eq!(tags.get(&id).map(String::as_str), Some("Registered"));
    assert_eq!(calls(&sim, "POST /tag"), 1);
    // First list, the look-up before the retry, the final list.
    assert_eq!(calls(&sim, "GET /tag"), 3);
    Ok(())
}

#[tokio::test]
async fn the_rate_limiter_keeps_a_burst_under_the_cap() -> TestResult {
    const RATE: u64 = 10;
    const CALLS: usize = 30;
    let sim = klicktipp_sim::start(SimConfig::default(), "127.0.0.1:0").await?;
    sim.set_knobs(Knobs { rate_limit_per_second: Some(RATE as u32), ..Knobs::default() });
    let mut config = fast_config(&sim.url(), session_auth());
    config.rate_per_second = RATE as f64;
    let client = KlickTippClient::new(config)?;

    let tasks: Vec<_> = (0..CALLS)
        .map(|index| {
            let client = client.clone();
            tokio::spawn(async move { client.upsert_subscriber(&upsert(&format!("user{index}@example.com"))).await })
        })
        .collect();
    for task in tasks {
        task.await??;
    }

    assert_eq!(sim.count_status(429), 0);
    let times: Vec<u64> = sim.request_log().iter().map(|entry| entry.at_ms).collect();
    assert_eq!(times.len(), CALLS + 1, "the calls plus one login");
    for &start in &times {
        let in_window = times.iter().filter(|&&at| at >= start && at < start + 1000).count();
        assert!(in_window as u64 <= RATE, "{in_window} calls in the second from {start} ms");
    }
    // And the cap is used, not just respected: 31 evenly spaced calls take about 3 s.
    let span = times.iter().max().copied().unwrap_or(0) - times.iter().min().copied().unwrap_or(0);
    assert!(span < 3_400, "took {span} ms");
    Ok(())
}
