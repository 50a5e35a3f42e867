//! The web console of `serve` at `/console` (issue 14, DESIGN 12): an overview with charts, a
//! contact's timeline found by a POSTed search, and the problems list with redrive.
//!
//! Off (404, the ingest router answers) unless `BRIDGE_CONSOLE_TOKEN` is set. Signing in with the
//! token sets an HttpOnly, SameSite=Strict session cookie; every state change is a POST carrying
//! the session's CSRF token; wrong tokens are rate-limited. No address ever appears in a URL
//! (contacts are addressed by `Email::short_hash`) or in a log line.

mod charts;
mod security;
pub mod settings;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Duration as ChronoDuration, TimeZone as _, Utc};
use minijinja::Environment;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use webinar_bridge::adapters::memory::{DeadLetter, QueueSettings};
use webinar_bridge::adapters::sqlite::{SqliteContactStore, SqliteDb, SqliteQueue};
use webinar_bridge::consume::Consumer;
use webinar_bridge::domain::{ContactRecord, Email};
use webinar_bridge::klicktipp::KlickTippClient;
use webinar_bridge::ports::ContactStore;

pub use security::MIN_TOKEN_CHARS;
use security::{Guard, Session, SignIn};

/// The variable that turns the console on.
pub const TOKEN_VARIABLE: &str = "BRIDGE_CONSOLE_TOKEN";
/// Form bodies larger than this are refused.
const MAX_FORM_BYTES: usize = 8 * 1024;
/// Seconds of KlickTipp calls the overview charts.
const CALL_CHART_SECONDS: usize = 120;
/// Rows per list on the problems page.
const LIST_LIMIT: usize = 200;

const CSS: &str = include_str!("templates/console.css");

/// The console's token from the environment: `None` (console off) when unset or empty; an
/// error when it is too short to be a secret.
pub fn token_from_env() -> Result<Option<String>, String> {
    match std::env::var(TOKEN_VARIABLE) {
        Ok(token) if token.trim().is_empty() => Ok(None),
        Ok(token) if token.trim().chars().count() < MIN_TOKEN_CHARS => {
            Err(format!("{TOKEN_VARIABLE} must be at least {MIN_TOKEN_CHARS} characters (e.g. `openssl rand -hex 24`)"))
        }
        Ok(token) => Ok(Some(token.trim().to_owned())),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("{TOKEN_VARIABLE} is not valid UTF-8")),
    }
}

/// What the console reads and acts on.
pub struct ConsoleParts {
    pub token: String,
    pub db: SqliteDb,
    pub queue_settings: QueueSettings,
    /// The KlickTipp client of the consumer: its rate limiter counts the calls per second.
    pub klicktipp: KlickTippClient,
    /// The consumer of `serve`: resync re-applies through it, exactly as the queue would.
    pub consumer: Option<Arc<Consumer>>,
    /// The tag names of the settings page's preview (language, state names, `{date}`).
    pub tag_template: webinar_bridge::domain::TagTemplate,
    /// The per-webinar settings the settings page reads and writes.
    pub settings: Option<Arc<dyn webinar_bridge::ports::WebinarSettings>>,
    /// The parked webhooks and the ingest that reprocesses them (the one serve's router uses).
    pub parked: Option<ParkedParts>,
}

/// Parked webhooks (issue 15) and the ingest `reprocess` runs them through, as the CLI does.
#[derive(Clone)]
pub struct ParkedParts {
    pub store: Arc<dyn webinar_bridge::ports::ParkedWebhooks>,
    pub ingest: webinar_bridge::ingest::Ingest,
}

impl ConsoleParts {
    pub fn with_consumer(mut self, consumer: Arc<Consumer>) -> Self {
        self.consumer = Some(consumer);
        self
    }

    /// Lists parked webhooks on the problems page and reprocesses them through `ingest`.
    pub fn with_parked(
        mut self,
        store: Option<Arc<dyn webinar_bridge::ports::ParkedWebhooks>>,
        ingest: webinar_bridge::ingest::Ingest,
    ) -> Self {
        self.parked = store.map(|store| ParkedParts { store, ingest });
        self
    }
}

struct Console {
    guard: Guard,
    db: SqliteDb,
    queue: SqliteQueue,
    contacts: SqliteContactStore,
    klicktipp: KlickTippClient,
    consumer: Option<Arc<Consumer>>,
    templates: Environment<'static>,
    tag_template: webinar_bridge::domain::TagTemplate,
    settings: Option<Arc<dyn webinar_bridge::ports::WebinarSettings>>,
    /// Creates a state's generated tag ("Create tag"), single-writer like the consumer's.
    resolver: webinar_bridge::tag_resolver::TagResolver,
    parked: Option<ParkedParts>,
}

type Shared = Arc<Console>;

/// The console's routes, all under `/console`.
pub fn router(parts: ConsoleParts) -> Router {
    let resolver = webinar_bridge::tag_resolver::TagResolver::new(
        Arc::new(webinar_bridge::adapters::sqlite::SqliteTagDirectory::new(parts.db.clone())),
        parts.klicktipp.clone(),
        Arc::new(webinar_bridge::ports::SystemClock),
    );
    let console = Console {
        guard: Guard::new(&parts.token),
        queue: SqliteQueue::new(parts.db.clone(), parts.queue_settings),
        contacts: SqliteContactStore::new(parts.db.clone()),
        db: parts.db,
        klicktipp: parts.klicktipp,
        consumer: parts.consumer,
        templates: templates(),
        tag_template: parts.tag_template,
        settings: parts.settings,
        resolver,
        parked: parts.parked,
    };
    Router::new()
        .route("/console", get(overview))
        .route("/console/", get(overview))
        .route("/console/sign-in", post(sign_in))
        .route("/console/sign-out", post(sign_out))
        .route("/console/search", post(search))
        .route("/console/contacts/{hash}", get(contact))
        .route("/console/problems", get(problems))
        .route("/console/redrive", post(redrive))
        .route("/console/resync", post(resync))
        .route("/console/reprocess", post(reprocess))
        .route("/console/settings", get(settings::index))
        .route("/console/settings/{webinar}", get(settings::webinar).post(settings::save))
        .route("/console/settings/{webinar}/create-tag", post(settings::create_tag))
        .with_state(Arc::new(console))
}

fn templates() -> Environment<'static> {
    let mut env = Environment::new();
    for (name, source) in [
        ("base.html", include_str!("templates/base.html")),
        ("sign_in.html", include_str!("templates/sign_in.html")),
        ("overview.html", include_str!("templates/overview.html")),
        ("contact.html", include_str!("templates/contact.html")),
        ("problems.html", include_str!("templates/problems.html")),
        ("message.html", include_str!("templates/message.html")),
        ("settings.html", include_str!("templates/settings.html")),
        ("settings_webinar.html", include_str!("templates/settings_webinar.html")),
    ] {
        // The templates are part of the binary and covered by the tests: a syntax error is a bug.
        if let Err(error) = env.add_template(name, source) {
            tracing::error!(%error, template = name, "console template does not parse");
        }
    }
    env
}

// ---------------------------------------------------------------------------------------------
// Handlers

async fn overview(State(console): State<Shared>, request: Request) -> Response {
    let Some(session) = console.session_of(&request) else {
        return console.sign_in_page(StatusCode::OK, None);
    };
    let now = Utc::now();
    let counts = match console.db.overview_counts(now - ChronoDuration::hours(23), now).await {
        Ok(counts) => counts,
        Err(error) => return console.failure(&session, &error),
    };
    let labels: Vec<String> = counts.hours.iter().map(|hour| hour_label(hour.hour_start)).collect();
    let events_chart = charts::bars(
        "Events per hour",
        &labels,
        &[
            charts::Series {
                name: "accepted",
                class: "accepted",
                values: counts.hours.iter().map(|h| h.accepted).collect(),
            },
            charts::Series {
                name: "applied",
                class: "applied",
                values: counts.hours.iter().map(|h| h.applied).collect(),
            },
            charts::Series {
                name: "rejected",
                class: "rejected",
                values: counts.hours.iter().map(|h| h.rejected).collect(),
            },
        ],
        None,
    );
    let limiter = console.klicktipp.rate_limiter();
    let calls = limiter.calls_per_second(CALL_CHART_SECONDS);
    let call_labels: Vec<String> = (0..calls.len()).map(|index| format!("-{}s", calls.len() - 1 - index)).collect();
    let cap = (limiter.rate() > 0.0).then(|| limiter.rate());
    let calls_chart = charts::bars(
        "KlickTipp calls per second",
        &call_labels,
        &[charts::Series { name: "calls", class: "calls", values: calls.iter().map(|c| u64::from(*c)).collect() }],
        cap,
    );
    let parked = match console.parked_webhooks(now).await {
        Ok(parked) => parked.len() as u64,
        Err(error) => return console.failure(&session, &error),
    };
    let problems = counts.dead_letters + counts.rejected + counts.field_problem_contacts + parked;
    console.page(
        &session,
        "overview.html",
        minijinja::context! {
            parked,
            queue_depth => counts.queue_depth,
            dead_letters => counts.dead_letters,
            problems,
            calls_last_minute => calls.iter().rev().take(60).map(|c| u64::from(*c)).sum::<u64>(),
            rate_cap => cap.map_or_else(|| "no".to_owned(), |rate| format!("{rate}")),
            events_chart => minijinja::Value::from_safe_string(events_chart),
            calls_chart => minijinja::Value::from_safe_string(calls_chart),
        },
        None,
    )
}

async fn sign_in(State(console): State<Shared>, request: Request) -> Response {
    // The connection's peer (serve's edge records it); behind a proxy every client shares it.
    let client = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or(std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), |info| info.0.ip());
    let form = match read_form(request).await {
        Ok(form) => form,
        Err(response) => return response,
    };
    let offered = form.get("token").map_or("", String::as_str);
    match console.guard.sign_in(offered, client, Instant::now()) {
        SignIn::Accepted(session) => {
            tracing::info!("console: signed in");
            let mut response = redirect("/console");
            if let Ok(cookie) = HeaderValue::from_str(&security::set_cookie(&session)) {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            response
        }
        SignIn::Wrong => {
            tracing::warn!("console: sign-in with a wrong token");
            console.sign_in_page(
                StatusCode::UNAUTHORIZED,
                Some("That token is not the console token. Check BRIDGE_CONSOLE_TOKEN.".to_owned()),
            )
        }
        SignIn::Limited(wait) => {
            tracing::warn!(retry_after_s = wait.as_secs(), "console: sign-in refused, too many wrong tokens");
            let message =
                format!("Too many wrong tokens. Try again in {} minutes.", wait.as_secs().div_ceil(60).max(1));
            let mut response = console.sign_in_page(StatusCode::TOO_MANY_REQUESTS, Some(message));
            if let Ok(value) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
    }
}

async fn sign_out(State(console): State<Shared>, request: Request) -> Response {
    let (session, _) = match console.checked_post(request).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    console.guard.sign_out(&session.id);
    let mut response = redirect("/console");
    if let Ok(cookie) = HeaderValue::from_str(&security::clear_cookie()) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// The address arrives in a POST body and leaves as its hash in the redirect.
async fn search(State(console): State<Shared>, request: Request) -> Response {
    let (session, form) = match console.checked_post(request).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    let raw = form.get("email").map_or("", String::as_str);
    let Ok(email) = Email::parse(raw) else {
        return console
            .page(
                &session,
                "message.html",
                minijinja::context! {},
                Some("That is not an e-mail address; enter the contact's address, e.g. name@example.com.".to_owned()),
            )
            .with_status(StatusCode::UNPROCESSABLE_ENTITY);
    };
    match console.contacts.load(&email).await {
        Ok(Some(_)) => redirect(&format!("/console/contacts/{}", email.short_hash())),
        Ok(None) => console
            .page(
                &session,
                "message.html",
                minijinja::context! {},
                Some(
                    "The bridge has no contact with that address: no accepted event named it (or it was forgotten)."
                        .to_owned(),
                ),
            )
            .with_status(StatusCode::NOT_FOUND),
        Err(error) => console.failure(&session, &error),
    }
}

async fn contact(State(console): State<Shared>, Path(hash): Path<String>, request: Request) -> Response {
    let Some(session) = console.session_of(&request) else {
        return redirect("/console");
    };
    let request_resynced = request.uri().query().is_some_and(|query| query.contains("resynced=1"));
    let found = match console.db.contacts_with_short_hash(&hash).await {
        Ok(found) => found,
        Err(error) => return console.failure(&session, &error),
    };
    let Some(email) = found.into_iter().next() else {
        return console
            .page(&session, "message.html", minijinja::context! {}, Some("No contact has that id.".to_owned()))
            .with_status(StatusCode::NOT_FOUND);
    };
    let record = match console.contacts.load(&email).await {
        Ok(Some(record)) => record.value,
        Ok(None) => {
            return console
                .page(&session, "message.html", minijinja::context! {}, Some("No contact has that id.".to_owned()))
                .with_status(StatusCode::NOT_FOUND);
        }
        Err(error) => return console.failure(&session, &error),
    };
    let letters = match console.queue.dead_letters().await {
        Ok(letters) => letters,
        Err(error) => return console.failure(&session, &error),
    };
    let group = email.group_hash();
    // The per-contact history (every event received and how it ended) when it holds entries;
    // else what the stored state says each event set.
    let history = webinar_bridge::adapters::sqlite::SqliteHistoryLog::new(console.db.clone());
    let entries = match webinar_bridge::ports::HistoryLog::for_contact(&history, &group, Utc::now()).await {
        Ok(entries) => entries,
        Err(error) => return console.failure(&session, &error),
    };
    let mut timeline = if entries.is_empty() { stamped_facts(&record) } else { history_timeline(&entries) };
    timeline.extend(letters.iter().filter(|letter| letter.group_id == group).map(|letter| TimelineEntry {
        at: String::new(),
        outcome: "dead-lettered".to_owned(),
        class: "bad",
        what: format!("message {} after {} receives", letter.message_id, letter.receive_count),
        detail: letter.reason.clone().unwrap_or_default(),
    }));
    let view = ContactView::of(&record);
    let notice = request_resynced.then(|| "Resynced with KlickTipp.".to_owned());
    console.page(
        &session,
        "contact.html",
        minijinja::context! {
            hash => email.short_hash(),
            email => email.as_str(),
            tags => view.tags,
            field_problems => view.field_problems,
            webinars => view.webinars,
            timeline,
            resync => console.consumer.is_some(),
        },
        notice,
    )
}

async fn problems(State(console): State<Shared>, request: Request) -> Response {
    let Some(session) = console.session_of(&request) else {
        return redirect("/console");
    };
    let notice = query_notice(request.uri().query());
    let letters = match console.queue.dead_letters().await {
        Ok(letters) => letters,
        Err(error) => return console.failure(&session, &error),
    };
    let rejected = match console.db.rejected_events(LIST_LIMIT).await {
        Ok(rejected) => rejected,
        Err(error) => return console.failure(&session, &error),
    };
    let field_problems = match console.field_problems().await {
        Ok(problems) => problems,
        Err(error) => return console.failure(&session, &error),
    };
    let parked: Vec<ParkedRow> = match console.parked_webhooks(Utc::now()).await {
        Ok(parked) => parked.iter().take(LIST_LIMIT).map(ParkedRow::of).collect(),
        Err(error) => return console.failure(&session, &error),
    };
    let dead_letters: Vec<DeadLetterRow> = letters.iter().take(LIST_LIMIT).map(DeadLetterRow::of).collect();
    let rejected: Vec<RejectedRow> = rejected
        .into_iter()
        .map(|(id, outcome, at)| RejectedRow { id, reason: rejection_text(&outcome), at: timestamp(at) })
        .collect();
    console.page(
        &session,
        "problems.html",
        minijinja::context! {
            dead_letters, rejected, field_problems, parked,
            resync => console.consumer.is_some(),
            reprocess => console.parked.is_some(),
        },
        notice,
    )
}

async fn redrive(State(console): State<Shared>, request: Request) -> Response {
    let (session, _) = match console.checked_post(request).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    match console.queue.redrive_dead_letters().await {
        Ok(moved) => {
            tracing::info!(moved, "console: dead letters redriven");
            redirect(&format!("/console/problems?redriven={moved}"))
        }
        Err(error) => console.failure(&session, &error),
    }
}

/// Runs one parked webhook (`id`) or every one (`all`) through ingest again, as `webinar-bridge
/// reprocess` does: accepted bodies are queued for serve's consumer and leave the list.
async fn reprocess(State(console): State<Shared>, request: Request) -> Response {
    let (session, form) = match console.checked_post(request).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    let Some(parked) = console.parked.clone() else {
        return plain(StatusCode::NOT_FOUND, "Reprocessing is not available here.");
    };
    let now = Utc::now();
    let selected = match form.get("id").filter(|id| !id.is_empty()) {
        Some(id) => match parked.store.get(id, now).await {
            Ok(Some(webhook)) => vec![webhook],
            Ok(None) => {
                return console
                    .page(
                        &session,
                        "message.html",
                        minijinja::context! {},
                        Some(
                            "That webhook is no longer parked (reprocessed or expired); reload the problems page."
                                .to_owned(),
                        ),
                    )
                    .with_status(StatusCode::NOT_FOUND);
            }
            Err(error) => return console.failure(&session, &error),
        },
        None if form.contains_key("all") => match parked.store.list(now).await {
            Ok(all) => all,
            Err(error) => return console.failure(&session, &error),
        },
        None => return plain(StatusCode::BAD_REQUEST, "Choose a parked webhook, or all of them."),
    };
    let (mut accepted, mut still) = (0_usize, 0_usize);
    for webhook in &selected {
        match parked.ingest.reprocess(parked.store.as_ref(), webhook, Utc::now()).await {
            webinar_bridge::ingest::Reprocessed::Accepted { event_ids } => {
                accepted += 1;
                tracing::info!(id = %webhook.id, events = event_ids.len(), "console: parked webhook reprocessed");
            }
            webinar_bridge::ingest::Reprocessed::StillRefused { .. } => still += 1,
            webinar_bridge::ingest::Reprocessed::Failed { message } => {
                still += 1;
                tracing::warn!(id = %webhook.id, %message, "console: reprocessing a parked webhook failed");
            }
        }
    }
    redirect(&format!("/console/problems?reprocessed={accepted}&still_parked={still}"))
}

/// Re-applies one contact (addressed by its hash) through serve's consumer.
async fn resync(State(console): State<Shared>, request: Request) -> Response {
    let (session, form) = match console.checked_post(request).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    let Some(consumer) = console.consumer.clone() else {
        return plain(StatusCode::NOT_FOUND, "Resync is not available here.");
    };
    let hash = form.get("contact").map_or("", String::as_str);
    let found = match console.db.contacts_with_short_hash(hash).await {
        Ok(found) => found,
        Err(error) => return console.failure(&session, &error),
    };
    let Some(email) = found.into_iter().next() else {
        return console
            .page(&session, "message.html", minijinja::context! {}, Some("No contact has that id.".to_owned()))
            .with_status(StatusCode::NOT_FOUND);
    };
    match consumer.resync_contact(&email).await {
        Ok(_) => redirect(&format!("/console/contacts/{}?resynced=1", email.short_hash())),
        Err(reason) => console
            .page(&session, "message.html", minijinja::context! {}, Some(format!("Resync failed: {reason}")))
            .with_status(StatusCode::BAD_GATEWAY),
    }
}

// ---------------------------------------------------------------------------------------------
// Pieces

impl Console {
    fn session_of(&self, request: &Request) -> Option<Session> {
        let cookie = request.headers().get(header::COOKIE).and_then(|value| value.to_str().ok());
        self.guard.session(security::session_cookie(cookie)?, Instant::now())
    }

    /// A POST from a signed-in session with its CSRF token, and its form.
    async fn checked_post(&self, request: Request) -> Result<(Session, HashMap<String, String>), Response> {
        let Some(session) = self.session_of(&request) else {
            tracing::warn!(path = request.uri().path(), "console: POST without a session refused");
            return Err(self.sign_in_page(StatusCode::UNAUTHORIZED, Some("Sign in first.".to_owned())));
        };
        let form = read_form(request).await?;
        if !session.csrf_matches(form.get("csrf").map(String::as_str)) {
            tracing::warn!("console: POST without a valid CSRF token refused");
            return Err(plain(
                StatusCode::FORBIDDEN,
                "This form is out of date or did not come from the console; reload the page and try again.",
            ));
        }
        Ok((session, form))
    }

    fn sign_in_page(&self, status: StatusCode, error: Option<String>) -> Response {
        self.render("sign_in.html", minijinja::context! { css => CSS, error }).with_status(status)
    }

    fn page(&self, session: &Session, name: &str, values: minijinja::Value, notice: Option<String>) -> Response {
        let context = minijinja::context! { css => CSS, csrf => &session.csrf, notice, ..values };
        self.render(name, context)
    }

    fn render(&self, name: &str, context: minijinja::Value) -> Response {
        match self.templates.get_template(name).and_then(|template| template.render(context)) {
            Ok(html) => html_response(StatusCode::OK, html),
            Err(error) => {
                tracing::error!(%error, template = name, "console page could not be rendered");
                plain(StatusCode::INTERNAL_SERVER_ERROR, "The page could not be rendered; see the server log.")
            }
        }
    }

    fn failure(&self, session: &Session, error: &dyn std::fmt::Display) -> Response {
        tracing::error!(%error, "console: reading the database failed");
        self.page(
            session,
            "message.html",
            minijinja::context! {},
            Some("The database could not be read; see the server log and try again.".to_owned()),
        )
        .with_status(StatusCode::SERVICE_UNAVAILABLE)
    }

    /// The live parked webhooks, oldest first; none when this console keeps none.
    async fn parked_webhooks(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<webinar_bridge::ports::ParkedWebhook>, webinar_bridge::ports::PortError> {
        match &self.parked {
            Some(parked) => parked.store.list(now).await,
            None => Ok(Vec::new()),
        }
    }

    /// Every contact with a refused field value (DESIGN 6), with the fix.
    async fn field_problems(&self) -> Result<Vec<FieldProblemRow>, webinar_bridge::ports::PortError> {
        let emails = self.db.contacts_with_field_problems(LIST_LIMIT).await?;
        let mut rows = Vec::new();
        for email in emails {
            if let Some(record) = self.contacts.load(&email).await? {
                let hash = email.short_hash();
                for mut row in ContactView::of(&record.value).field_problems {
                    row.contact.clone_from(&hash);
                    rows.push(row);
                }
            }
        }
        Ok(rows)
    }
}

trait WithStatus {
    fn with_status(self, status: StatusCode) -> Self;
}

impl WithStatus for Response {
    fn with_status(mut self, status: StatusCode) -> Self {
        *self.status_mut() = status;
        self
    }
}

async fn read_form(request: Request) -> Result<HashMap<String, String>, Response> {
    let body = axum::body::to_bytes(request.into_body(), MAX_FORM_BYTES)
        .await
        .map_err(|_| plain(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large."))?;
    serde_urlencoded::from_bytes(&body)
        .map_err(|_| plain(StatusCode::BAD_REQUEST, "The form could not be read; reload the page and try again."))
}

fn html_response(status: StatusCode, html: String) -> Response {
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

fn plain(status: StatusCode, message: &'static str) -> Response {
    let mut response = (status, Body::from(message)).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

fn redirect(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

fn query_notice(query: Option<&str>) -> Option<String> {
    let pairs: HashMap<String, String> = serde_urlencoded::from_str(query?).ok()?;
    if let Some(accepted) = pairs.get("reprocessed").and_then(|value| value.parse::<u64>().ok()) {
        let still: u64 = pairs.get("still_parked").and_then(|value| value.parse().ok()).unwrap_or(0);
        return Some(format!("{accepted} parked webhook(s) reprocessed, {still} still parked."));
    }
    let moved: u64 = pairs.get("redriven")?.parse().ok()?;
    Some(format!("{moved} dead letter(s) sent back to the queue."))
}

fn hour_label(hour_start: i64) -> String {
    Utc.timestamp_opt(hour_start, 0).single().map_or_else(String::new, |at| at.format("%H:00").to_string())
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// KlickTipp's refusal as a sentence, from the stored outcome JSON.
fn rejection_text(outcome: &str) -> String {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(outcome) else { return outcome.to_owned() };
    let mut text = value["reason"].as_str().unwrap_or("refused").to_owned();
    if let Some(field) = value["field"].as_str() {
        text = format!("{field}: {text}");
    }
    if let Some(number) = value["error_number"].as_i64() {
        text.push_str(&format!(" (KlickTipp error {number})"));
    }
    if let Some(operation) = value["operation"].as_str() {
        text.push_str(&format!(" during {operation}"));
    }
    text
}

/// What each event told the bridge about this contact, oldest first: every stamped value in
/// the contact's webinar states, grouped by the event that set it.
fn stamped_facts(record: &ContactRecord) -> Vec<TimelineEntry> {
    let mut events: std::collections::BTreeMap<(String, String), Vec<String>> = std::collections::BTreeMap::new();
    for (key, state) in &record.webinars {
        let Ok(state) = serde_json::to_value(state) else { continue };
        collect_stamped(&state, &format!("{} {}", key.source.tool_name(), key.webinar_id), "", &mut events);
    }
    events
        .into_iter()
        .map(|((at, event_id), facts)| TimelineEntry {
            at: at.get(..19).unwrap_or(&at).replace('T', " "),
            outcome: "applied".to_owned(),
            class: "good",
            what: facts.join(", "),
            detail: format!("event {event_id}"),
        })
        .collect()
}

fn collect_stamped(
    value: &serde_json::Value,
    webinar: &str,
    name: &str,
    events: &mut std::collections::BTreeMap<(String, String), Vec<String>>,
) {
    let serde_json::Value::Object(map) = value else { return };
    if let (Some(stamp), Some(inner)) = (map.get("stamp"), map.get("value")) {
        let at = stamp["at"].as_str().unwrap_or_default().to_owned();
        let event_id = stamp["event_id"].as_str().unwrap_or_default().to_owned();
        let shown = match inner {
            serde_json::Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        let fact = if name == "registration" { format!("{webinar}: {shown}") } else { format!("{name}: {shown}") };
        events.entry((at, event_id)).or_default().push(fact);
        return;
    }
    for (key, inner) in map {
        collect_stamped(inner, webinar, key, events);
    }
}

fn history_timeline(entries: &[webinar_bridge::ports::HistoryEntry]) -> Vec<TimelineEntry> {
    webinar_bridge::story::timeline(entries)
        .into_iter()
        .map(|item| {
            let status = item.status();
            let what = item.received.as_ref().map_or_else(
                || "event".to_owned(),
                |received| {
                    format!(
                        "{} {} {}",
                        received.source,
                        received.kind,
                        received.webinar_name.as_deref().unwrap_or(&received.webinar_id)
                    )
                },
            );
            TimelineEntry {
                at: item.at().map(timestamp).unwrap_or_default(),
                outcome: status.replace('_', " "),
                class: match status {
                    "applied" | "duplicate" | "skipped" => "good",
                    _ => "bad",
                },
                what,
                detail: format!("event {}", item.event_id),
            }
        })
        .collect()
}

/// The state's plain facts (registration, attendance, replay, purchase) in one line.
fn state_summary(state: &serde_json::Value) -> String {
    let mut parts = Vec::new();
    if let Some(registration) = state["registration"]["value"].as_str() {
        parts.push(registration.to_owned());
    }
    for key in ["attendance", "replay_watched", "purchased", "platform_minutes"] {
        match &state[key] {
            serde_json::Value::String(text) => parts.push(format!("{key}: {text}")),
            serde_json::Value::Bool(true) => parts.push(key.replace('_', " ")),
            serde_json::Value::Number(number) => parts.push(format!("{key}: {number}")),
            _ => {}
        }
    }
    parts.join("; ")
}

#[derive(Serialize)]
struct TimelineEntry {
    at: String,
    outcome: String,
    class: &'static str,
    what: String,
    detail: String,
}

#[derive(Serialize)]
struct DeadLetterRow {
    id: String,
    contact: Option<String>,
    receives: u32,
    reason: String,
}

impl DeadLetterRow {
    fn of(letter: &DeadLetter) -> Self {
        let contact = serde_json::from_str::<serde_json::Value>(&letter.body)
            .ok()
            .and_then(|body| find_email(&body))
            .and_then(|email| Email::parse(&email).ok())
            .map(|email| email.short_hash());
        Self {
            id: letter.message_id.clone(),
            contact,
            receives: letter.receive_count,
            reason: letter.reason.clone().unwrap_or_else(|| "used up its receives (KlickTipp kept failing)".to_owned()),
        }
    }
}

/// The first `email` string in a message body, at any depth.
fn find_email(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::Object(map) => map
            .get("email")
            .and_then(|email| email.as_str().map(str::to_owned))
            .or_else(|| map.values().find_map(find_email)),
        serde_json::Value::Array(items) => items.iter().find_map(find_email),
        _ => None,
    }
}

/// A parked webhook as the problems page lists it: never its body (it may hold an address).
#[derive(Serialize)]
struct ParkedRow {
    id: String,
    at: String,
    source: String,
    path: String,
    reason: String,
    size: usize,
}

impl ParkedRow {
    fn of(webhook: &webinar_bridge::ports::ParkedWebhook) -> Self {
        Self {
            id: webhook.id.clone(),
            at: timestamp(webhook.received_at),
            source: webhook.source.clone(),
            path: webhook.path.clone(),
            reason: webhook.reason.clone(),
            size: webhook.size(),
        }
    }
}

#[derive(Serialize)]
struct RejectedRow {
    id: String,
    reason: String,
    at: String,
}

#[derive(Serialize, Clone)]
struct FieldProblemRow {
    contact: String,
    field: String,
    reason: String,
    error_number: Option<i64>,
    event_id: String,
    fix: String,
}

#[derive(Serialize)]
struct WebinarRow {
    source: String,
    id: String,
    state: String,
}

struct ContactView {
    tags: Vec<String>,
    field_problems: Vec<FieldProblemRow>,
    webinars: Vec<WebinarRow>,
}

impl ContactView {
    fn of(record: &ContactRecord) -> Self {
        Self {
            tags: record.applied.tags.iter().cloned().collect(),
            field_problems: record
                .field_problems
                .iter()
                .map(|(field, problem)| FieldProblemRow {
                    contact: record.email.short_hash(),
                    field: field.clone(),
                    reason: problem.reason.clone(),
                    error_number: problem.error_number,
                    event_id: problem.event_id.as_str().to_owned(),
                    fix: format!(
                        "KlickTipp refused the value for {field}; map it to a field of a type that accepts it (BRIDGE_FIELD_MAP), e.g. a text field, then resync."
                    ),
                })
                .collect(),
            webinars: record
                .webinars
                .iter()
                .map(|(key, state)| WebinarRow {
                    source: key.source.tool_name().to_owned(),
                    id: key.webinar_id.clone(),
                    state: serde_json::to_value(state).map(|state| state_summary(&state)).unwrap_or_default(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses_and_the_css_stays_small() {
        let env = templates();
        for name in [
            "base.html",
            "sign_in.html",
            "overview.html",
            "contact.html",
            "problems.html",
            "message.html",
            "settings.html",
            "settings_webinar.html",
        ] {
            assert!(env.get_template(name).is_ok(), "{name}");
        }
        assert!(CSS.len() < 6 * 1024, "a few KB of CSS, not {}", CSS.len());
    }

    #[test]
    fn a_dead_letter_names_its_contact_by_hash_only() {
        let letter = DeadLetter {
            message_id: "7".into(),
            group_id: "g".into(),
            body: r#"{"event":{"contact":{"email":"erika@example.com"}}}"#.into(),
            receive_count: 3,
            reason: None,
        };
        let row = DeadLetterRow::of(&letter);
        let hash = Email::parse("erika@example.com").expect("an address").short_hash();
        assert_eq!(row.contact, Some(hash));
    }

    #[test]
    fn a_parked_row_shows_no_body_and_the_reprocess_notice_counts() {
        let at = Utc.with_ymd_and_hms(2026, 12, 5, 5, 0, 0).single().expect("a time");
        let body = br#"{"Mail Adresse":"petra@example.com"}"#.to_vec();
        let webhook = webinar_bridge::ports::ParkedWebhook {
            id: "abc-1".into(),
            source: "webinarjam".into(),
            path: "/hooks/webinarjam/registered".into(),
            query: None,
            content_type: Some("application/json".into()),
            body: body.clone(),
            received_at: at,
            reason: "The body has no e-mail address".into(),
            updated_at: at,
            expires_at: at,
        };
        let row = serde_json::to_string(&ParkedRow::of(&webhook)).expect("JSON");
        assert!(!row.contains("petra") && !row.contains("Mail Adresse"), "{row}");
        assert!(row.contains(&format!(r#""size":{}"#, body.len())), "{row}");
        assert_eq!(
            query_notice(Some("reprocessed=2&still_parked=1")).as_deref(),
            Some("2 parked webhook(s) reprocessed, 1 still parked.")
        );
        assert_eq!(query_notice(Some("redriven=3")).as_deref(), Some("3 dead letter(s) sent back to the queue."));
    }

    #[test]
    fn a_rejection_reads_as_a_sentence() {
        let text = rejection_text(
            r#"{"outcome":"rejected","operation":"subscriber.update","error_number":8,"field":"field101","reason":"not a number"}"#,
        );
        assert_eq!(text, "field101: not a number (KlickTipp error 8) during subscriber.update");
    }
}

#[cfg(test)]
mod timeline_tests {
    use super::*;

    #[test]
    fn a_stored_state_reads_as_a_timeline() {
        let record: ContactRecord = serde_json::from_value(serde_json::json!({
            "email": "erika@example.com",
            "webinars": [{"webinar": {"source": {"platform": "webinarjam"}, "webinar_id": "321"}, "state": {
                "registration": {"stamp": {"at": "2026-12-05T02:04:11.5Z", "event_id": "webinarjam:abc"}, "value": "registered"},
                "attendance": "none", "replay_watched": false, "purchased": false,
            }}],
        }))
        .expect("a record");
        let timeline = stamped_facts(&record);
        assert_eq!(timeline.len(), 1, "{:?}", serde_json::to_string(&record));
        assert_eq!(timeline[0].what, "WebinarJam 321: registered");
        assert_eq!(timeline[0].at, "2026-12-05 02:04:11");
    }
}
