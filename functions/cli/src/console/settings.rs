//! The settings page (issue 15): per webinar, or for all webinars, which KlickTipp tag each
//! state writes (an existing tag of the account, or the generated name), a "Create tag" action
//! for a generated name the account lacks, a preview of the tag names as they will be written,
//! the opt-in process, and whether the webinar's events are applied at all.
//!
//! Server-rendered forms, no script: "Create tag" is a second submit button of the same form
//! (`formaction`), so the choices made so far survive it. Webinars are addressed by a hash of
//! their key, never by anything a person typed.

use super::{Console, Shared, WithStatus as _, plain, redirect};
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use webinar_bridge::domain::{
    Effective, MappedTag, Source, StateLabel, WebinarKey, WebinarSetting, WebinarSettingsSet, session_date,
};
use webinar_bridge::ports::PortResult;

/// The console's address of the defaults that apply to every webinar without its own choice
/// (the store's `*`/`*` entry).
pub const ALL_WEBINARS: &str = "all";

/// One entry of the settings store as the page edits it: the entry of one webinar, or (`None`
/// scope) the `*`/`*` entry for all webinars.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebinarChoice {
    /// States written to an existing tag instead of the generated name.
    pub tags: BTreeMap<StateLabel, MappedTag>,
    /// The opt-in process for new contacts; `None` keeps the bridge's default.
    pub listid: Option<u64>,
    /// `Some(false)`: the webinar's events are recorded as skipped and cost no KlickTipp call.
    /// `None` inherits (from the defaults for all webinars; included when nothing says otherwise).
    pub include: Option<bool>,
}

/// The store's (source, webinar) of a scope.
fn store_key(scope: Option<&WebinarKey>) -> (String, String) {
    match scope {
        Some(key) => (key.source.key(), key.webinar_id.clone()),
        None => (webinar_bridge::domain::ALL_WEBINARS.to_owned(), webinar_bridge::domain::ALL_WEBINARS.to_owned()),
    }
}

/// The stored entry of a scope, as the page edits it.
fn choice_in(set: &WebinarSettingsSet, scope: Option<&WebinarKey>) -> WebinarChoice {
    let (source, webinar) = store_key(scope);
    set.entries()
        .find(|entry| entry.source == source && entry.webinar == webinar)
        .map(|entry| WebinarChoice { tags: entry.tags.clone(), listid: entry.listid, include: entry.include })
        .unwrap_or_default()
}

/// What a webinar gets from the other entries (its source's `*`, the `*`/`*` defaults) without
/// its own; for the defaults themselves, the built-in behaviour.
fn inherited(set: &WebinarSettingsSet, webinar: Option<&Webinar>) -> Effective {
    let builtin = Effective { included: true, ..Effective::default() };
    let Some(webinar) = webinar else { return builtin };
    let (source, id) = store_key(Some(&webinar.key));
    let others = WebinarSettingsSet::new(
        set.entries().filter(|entry| !(entry.source == source && entry.webinar == id)).cloned(),
    );
    others.effective(&source, &id, webinar.name.as_deref())
}

/// Writes a scope's entry (an empty one is removed, so the scope inherits again).
async fn store_choice(
    store: &dyn webinar_bridge::ports::WebinarSettings,
    scope: Option<&WebinarKey>,
    choice: &WebinarChoice,
) -> Result<(), String> {
    let (source, webinar) = store_key(scope);
    if choice.tags.is_empty() && choice.listid.is_none() && choice.include.is_none() {
        return store.remove(&source, &webinar).await.map(|_| ()).map_err(|error| error.to_string());
    }
    let mut entry = WebinarSetting::new(source, webinar);
    entry.tags = choice.tags.clone();
    entry.listid = choice.listid;
    entry.include = choice.include;
    entry.validate().map_err(|error| format!("The settings were not saved: {error}"))?;
    store.put(&entry).await.map_err(|error| error.to_string())
}

/// A `Source::key` back as its source (`generic:<tool>` included).
fn source_of(key: &str) -> Option<Source> {
    match key {
        "zoom" => Some(Source::Zoom),
        "webinarjam" => Some(Source::Webinarjam),
        "everwebinar" => Some(Source::Everwebinar),
        other => other
            .strip_prefix("generic:")
            .filter(|tool| !tool.trim().is_empty())
            .map(|tool| Source::Generic { tool: tool.to_owned() }),
    }
}

/// A webinar's address in console URLs: 12 hex characters of a hash of its key.
pub fn webinar_slug(key: &WebinarKey) -> String {
    let digest = Sha256::digest(format!("{}\n{}", key.source.key(), key.webinar_id).as_bytes());
    hex::encode(&digest[..6])
}

/// The form field of a state's tag choice (`tag_DidNotAttend`).
fn tag_field(label: StateLabel) -> String {
    format!("tag_{label:?}")
}

/// A webinar the page can show: its key and what events told about it.
#[derive(Debug, Clone)]
struct Webinar {
    key: WebinarKey,
    name: Option<String>,
    latest_start: Option<String>,
    timezone: Option<String>,
    contacts: u64,
}

impl Webinar {
    fn title(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.key.webinar_id.clone())
    }
}

#[derive(Serialize)]
struct WebinarRow {
    slug: String,
    tool: String,
    name: String,
    id: String,
    contacts: u64,
    included: bool,
    mapped: usize,
    listid: Option<u64>,
}

#[derive(Serialize, Clone)]
struct Choice {
    id: u64,
    name: String,
}

#[derive(Serialize)]
struct StateRow {
    state: &'static str,
    /// The state's name in forms (`DidNotAttend`).
    key: String,
    field: String,
    /// The name the template generates for this webinar and state.
    generated: String,
    /// What the next event of this state writes.
    effective: String,
    /// Where `effective` comes from: "this webinar", "all webinars" or "generated".
    origin: &'static str,
    selected: Option<u64>,
    /// The generated name's tag id in the account, if it exists.
    generated_id: Option<u64>,
    /// Offer "Create tag": a webinar page, and the account lacks the generated name.
    create: bool,
}

/// The form's choices, checked against the account's tags and opt-in processes.
struct FormChoice {
    choice: WebinarChoice,
}

impl FormChoice {
    fn parse(
        form: &HashMap<String, String>,
        tags: &BTreeMap<u64, String>,
        lists: &BTreeMap<u64, String>,
    ) -> Result<Self, String> {
        let mut choice = WebinarChoice { include: parse_include(form)?, ..WebinarChoice::default() };
        for label in StateLabel::ALL {
            let raw = form.get(&tag_field(label)).map_or("", |value| value.trim());
            if raw.is_empty() {
                continue;
            }
            let id = raw.parse::<u64>().ok().filter(|id| tags.contains_key(id)).ok_or_else(|| {
                format!(
                    "The tag chosen for {} is not in the KlickTipp account (any more); reload the page and choose again.",
                    label.as_str()
                )
            })?;
            let name = tags.get(&id).cloned().unwrap_or_default();
            choice.tags.insert(label, MappedTag { id, name });
        }
        let raw = form.get("listid").map_or("", |value| value.trim());
        if !raw.is_empty() {
            let id = raw.parse::<u64>().ok().filter(|id| lists.contains_key(id)).ok_or_else(|| {
                "The opt-in process chosen is not in the KlickTipp account (any more); reload the page and choose again."
                    .to_owned()
            })?;
            choice.listid = Some(id);
        }
        Ok(Self { choice })
    }
}

/// The form's `include`: empty inherits, `yes` applies the events, `no` skips them.
fn parse_include(form: &HashMap<String, String>) -> Result<Option<bool>, String> {
    match form.get("include").map_or("", |value| value.trim()) {
        "" => Ok(None),
        "yes" => Ok(Some(true)),
        "no" => Ok(Some(false)),
        _ => Err("Choose whether the events are applied (inherit, yes or no); reload the page.".to_owned()),
    }
}

// ---------------------------------------------------------------------------------------------
// Handlers

/// `GET /console/settings`: the defaults and every known webinar.
pub(super) async fn index(State(console): State<Shared>, request: Request) -> Response {
    let Some(session) = console.session_of(&request) else {
        return redirect("/console");
    };
    let Some(store) = console.settings.clone() else {
        return console.settings_unavailable(&session);
    };
    let webinars = match console.webinars().await {
        Ok(webinars) => webinars,
        Err(error) => return console.failure(&session, &error),
    };
    let set = match store.all().await {
        Ok(set) => set,
        Err(error) => return console.failure(&session, &error),
    };
    let defaults = choice_in(&set, None);
    let rows: Vec<WebinarRow> = webinars
        .iter()
        .map(|webinar| {
            let effective = set.effective(&webinar.key.source.key(), &webinar.key.webinar_id, webinar.name.as_deref());
            WebinarRow {
                slug: webinar_slug(&webinar.key),
                tool: webinar.key.source.tool_name().to_owned(),
                name: webinar.title(),
                id: webinar.key.webinar_id.clone(),
                contacts: webinar.contacts,
                included: effective.included,
                mapped: effective.tags.len(),
                listid: effective.listid,
            }
        })
        .collect();
    console.page(
        &session,
        "settings.html",
        minijinja::context! {
            webinars => rows,
            all => ALL_WEBINARS,
            defaults_included => defaults.include.unwrap_or(true),
            defaults_mapped => defaults.tags.len(),
            defaults_listid => defaults.listid,
        },
        None,
    )
}

/// `GET /console/settings/{webinar}`: one webinar's (or all webinars') choices.
pub(super) async fn webinar(State(console): State<Shared>, Path(slug): Path<String>, request: Request) -> Response {
    let Some(session) = console.session_of(&request) else {
        return redirect("/console");
    };
    let saved = request.uri().query().is_some_and(|query| query.split('&').any(|pair| pair == "saved=1"));
    let notice = saved.then(|| "Saved. The next events use these settings.".to_owned());
    console.settings_page(&session, &slug, None, notice).await
}

/// `POST /console/settings/{webinar}`: Save.
pub(super) async fn save(State(console): State<Shared>, Path(slug): Path<String>, request: Request) -> Response {
    let (session, form) = match console.checked_post(request).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    let Some(store) = console.settings.clone() else {
        return console.settings_unavailable(&session);
    };
    let scope = match console.scope_of(&slug).await {
        Ok(Some(scope)) => scope,
        Ok(None) => return console.no_such_webinar(&session),
        Err(error) => return console.failure(&session, &error),
    };
    let (tags, lists) = match console.account_choices().await {
        Ok(choices) => choices,
        Err(message) => return console.klicktipp_failure(&session, &message),
    };
    let parsed = match FormChoice::parse(&form, &tags, &lists) {
        Ok(parsed) => parsed,
        Err(message) => {
            return console
                .settings_page(&session, &slug, Some(&form), Some(message))
                .await
                .with_status(StatusCode::UNPROCESSABLE_ENTITY);
        }
    };
    let key = scope.as_ref().map(|webinar| webinar.key.clone());
    if let Err(message) = store_choice(store.as_ref(), key.as_ref(), &parsed.choice).await {
        tracing::warn!(reason = %message, "console: saving webinar settings failed");
        return console
            .page(&session, "message.html", minijinja::context! {}, Some(message))
            .with_status(StatusCode::SERVICE_UNAVAILABLE);
    }
    tracing::info!(
        webinar = %slug,
        mapped = parsed.choice.tags.len(),
        include = ?parsed.choice.include,
        "console: webinar settings saved"
    );
    redirect(&format!("/console/settings/{slug}?saved=1"))
}

/// `POST /console/settings/{webinar}/create-tag`: creates a state's generated tag name through
/// the tag resolver (single writer, idempotent), then shows the page with the form's choices kept.
pub(super) async fn create_tag(State(console): State<Shared>, Path(slug): Path<String>, request: Request) -> Response {
    let (session, form) = match console.checked_post(request).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    let scope = match console.scope_of(&slug).await {
        Ok(Some(Some(webinar))) => webinar,
        Ok(Some(None)) => {
            return plain(StatusCode::BAD_REQUEST, "Tags are created per webinar; open a webinar's settings.");
        }
        Ok(None) => return console.no_such_webinar(&session),
        Err(error) => return console.failure(&session, &error),
    };
    let Some(label) = StateLabel::ALL
        .into_iter()
        .find(|label| form.get("create").is_some_and(|wanted| *wanted == format!("{label:?}")))
    else {
        return plain(StatusCode::BAD_REQUEST, "The form did not say which state's tag to create; reload the page.");
    };
    let name = console.generated_name(&scope, label);
    let notice = match console.resolver.resolve(&name).await {
        Ok((id, true)) => {
            tracing::info!(tag_id = id, webinar = %slug, "console: tag created");
            format!("Created the tag \u{201c}{name}\u{201d} (id {id}). Save to keep your other choices.")
        }
        Ok((id, false)) => format!("The tag \u{201c}{name}\u{201d} already exists (id {id})."),
        Err(error) => {
            tracing::warn!(%error, "console: creating a tag failed");
            return console.klicktipp_failure(&session, &format!("KlickTipp did not create the tag: {error}"));
        }
    };
    console.settings_page(&session, &slug, Some(&form), Some(notice)).await
}

// ---------------------------------------------------------------------------------------------
// Pieces

impl Console {
    /// The webinars the stored contacts have state for, and those the settings store knows.
    async fn webinars(&self) -> PortResult<Vec<Webinar>> {
        let mut webinars: Vec<Webinar> = self
            .db
            .known_webinars()
            .await?
            .into_iter()
            .map(|known| Webinar {
                key: known.key,
                name: known.name,
                latest_start: known.latest_start,
                timezone: known.timezone,
                contacts: known.contacts,
            })
            .collect();
        if let Some(store) = &self.settings {
            for entry in store.all().await?.entries() {
                if entry.webinar == webinar_bridge::domain::ALL_WEBINARS {
                    continue;
                }
                let Some(source) = source_of(&entry.source) else { continue };
                let key = WebinarKey { source, webinar_id: entry.webinar.clone() };
                // An entry may name the webinar by its name rather than its id.
                let by_name = webinars.iter().any(|known| {
                    known.key.source == key.source && known.name.as_deref() == Some(entry.webinar.as_str())
                });
                if !by_name && !webinars.iter().any(|known| known.key == key) {
                    webinars.push(Webinar { key, name: None, latest_start: None, timezone: None, contacts: 0 });
                }
            }
        }
        webinars.sort_by(|a, b| (a.key.source.tool_name(), a.title()).cmp(&(b.key.source.tool_name(), b.title())));
        Ok(webinars)
    }

    /// `Some(None)` for all webinars, `Some(Some(webinar))` for one, `None` when unknown.
    async fn scope_of(&self, slug: &str) -> PortResult<Option<Option<Webinar>>> {
        if slug == ALL_WEBINARS {
            return Ok(Some(None));
        }
        Ok(self.webinars().await?.into_iter().find(|webinar| webinar_slug(&webinar.key) == slug).map(Some))
    }

    fn generated_name(&self, webinar: &Webinar, label: StateLabel) -> String {
        let date = if self.tag_template.uses_date() {
            session_date(webinar.latest_start.as_deref(), webinar.timezone.as_deref())
        } else {
            None
        };
        self.tag_template.render_session(webinar.key.source.tool_name(), &webinar.title(), date, label)
    }

    /// The account's tags and opt-in processes, asked live (`GET /tag`, `GET /list`).
    async fn account_choices(&self) -> Result<(BTreeMap<u64, String>, BTreeMap<u64, String>), String> {
        let tags = self
            .klicktipp
            .list_tags()
            .await
            .map_err(|error| format!("KlickTipp did not list the account's tags: {error}"))?;
        let lists = self
            .klicktipp
            .list_optins()
            .await
            .map_err(|error| format!("KlickTipp did not list the opt-in processes: {error}"))?;
        Ok((tags, lists))
    }

    /// The settings page of one scope; `form` (after "Create tag", or a refused save) keeps the
    /// choices the person made over the stored ones.
    async fn settings_page(
        &self,
        session: &super::Session,
        slug: &str,
        form: Option<&HashMap<String, String>>,
        notice: Option<String>,
    ) -> Response {
        let Some(store) = self.settings.clone() else {
            return self.settings_unavailable(session);
        };
        let scope = match self.scope_of(slug).await {
            Ok(Some(scope)) => scope,
            Ok(None) => return self.no_such_webinar(session),
            Err(error) => return self.failure(session, &error),
        };
        let (tags, lists) = match self.account_choices().await {
            Ok(choices) => choices,
            Err(message) => return self.klicktipp_failure(session, &message),
        };
        let set = match store.all().await {
            Ok(set) => set,
            Err(error) => return self.failure(session, &error),
        };
        let key = scope.as_ref().map(|webinar| webinar.key.clone());
        let stored = choice_in(&set, key.as_ref());
        let defaults = inherited(&set, scope.as_ref());
        // The form's choices where it has them (ids it names that are gone are simply dropped).
        let shown = match form {
            Some(form) => WebinarChoice {
                tags: StateLabel::ALL
                    .into_iter()
                    .filter_map(|label| {
                        let id = form.get(&tag_field(label))?.trim().parse::<u64>().ok()?;
                        Some((label, MappedTag { id, name: tags.get(&id)?.clone() }))
                    })
                    .collect(),
                listid: form.get("listid").and_then(|raw| raw.trim().parse().ok()),
                include: parse_include(form).unwrap_or(None),
            },
            None => stored,
        };
        let by_name: HashMap<&str, u64> = tags.iter().map(|(id, name)| (name.as_str(), *id)).collect();
        let rows: Vec<StateRow> = StateLabel::ALL
            .into_iter()
            .map(|label| {
                let generated = match &scope {
                    Some(webinar) => self.generated_name(webinar, label),
                    None => self.tag_template.render("{tool}", "{webinar}", label),
                };
                let generated_id = by_name.get(generated.as_str()).copied();
                let (effective, origin) = match (shown.tags.get(&label), defaults.tags.get(&label)) {
                    (Some(mapped), _) => {
                        (mapped.name.clone(), if scope.is_some() { "this webinar" } else { "all webinars" })
                    }
                    (None, Some(inherited)) => (inherited.name.clone(), "defaults"),
                    (None, None) => (generated.clone(), "generated"),
                };
                StateRow {
                    state: label.as_str(),
                    key: format!("{label:?}"),
                    field: tag_field(label),
                    // Not for a state written to an existing tag: its generated name is not used.
                    create: scope.is_some() && generated_id.is_none() && !shown.tags.contains_key(&label),
                    selected: shown.tags.get(&label).map(|mapped| mapped.id),
                    generated,
                    generated_id,
                    effective,
                    origin,
                }
            })
            .collect();
        let mut account_tags: Vec<Choice> =
            tags.iter().map(|(id, name)| Choice { id: *id, name: name.clone() }).collect();
        account_tags.sort_by(|a, b| a.name.to_lowercase().cmp(&b.name.to_lowercase()).then(a.id.cmp(&b.id)));
        let optins: Vec<Choice> = lists
            .iter()
            .map(|(id, name)| Choice {
                id: *id,
                name: if name.is_empty() { "Default double opt-in".to_owned() } else { name.clone() },
            })
            .collect();
        let (title, tool, webinar_id, session_date) = match &scope {
            Some(webinar) => (
                webinar.title(),
                webinar.key.source.tool_name().to_owned(),
                webinar.key.webinar_id.clone(),
                self.tag_template
                    .uses_date()
                    .then(|| session_date(webinar.latest_start.as_deref(), webinar.timezone.as_deref()))
                    .flatten()
                    .map(|date| date.format("%Y-%m-%d").to_string()),
            ),
            None => ("All webinars".to_owned(), String::new(), String::new(), None),
        };
        self.page(
            session,
            "settings_webinar.html",
            minijinja::context! {
                slug,
                all => scope.is_none(),
                title,
                tool,
                webinar_id,
                session_date,
                rows,
                account_tags,
                optins,
                listid => shown.listid,
                include_choice => match shown.include {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "",
                },
                inherited_include => defaults.included,
                inherited_listid => defaults.listid,
            },
            notice,
        )
    }

    fn settings_unavailable(&self, session: &super::Session) -> Response {
        self.page(
            session,
            "message.html",
            minijinja::context! {},
            Some("Per-webinar settings are not available in this build.".to_owned()),
        )
        .with_status(StatusCode::NOT_FOUND)
    }

    fn no_such_webinar(&self, session: &super::Session) -> Response {
        self.page(
            session,
            "message.html",
            minijinja::context! {},
            Some("The bridge knows no webinar with that id; open it from the settings list.".to_owned()),
        )
        .with_status(StatusCode::NOT_FOUND)
    }

    fn klicktipp_failure(&self, session: &super::Session, message: &str) -> Response {
        tracing::warn!(reason = message, "console: KlickTipp could not be asked");
        self.page(
            session,
            "message.html",
            minijinja::context! {},
            Some(format!("{message}. Check the KlickTipp credentials and try again.")),
        )
        .with_status(StatusCode::BAD_GATEWAY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use webinar_bridge::domain::Source;

    fn tags() -> BTreeMap<u64, String> {
        BTreeMap::from([(7, "Webinar attendees".to_owned()), (9, "[Zoom] [Demo] Registered".to_owned())])
    }

    #[test]
    fn a_form_becomes_a_choice_of_existing_tags_only() {
        let lists = BTreeMap::from([(0, String::new()), (44, "Webinar leads".to_owned())]);
        let form: HashMap<String, String> =
            [("tag_Attended", "7"), ("tag_Buyer", ""), ("listid", "44"), ("include", "yes")]
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .collect();
        let parsed = FormChoice::parse(&form, &tags(), &lists).expect("a valid form").choice;
        assert_eq!(
            parsed.tags,
            BTreeMap::from([(StateLabel::Attended, MappedTag { id: 7, name: "Webinar attendees".to_owned() })])
        );
        assert_eq!((parsed.listid, parsed.include), (Some(44), Some(true)));

        let inherit: HashMap<String, String> = HashMap::new();
        assert_eq!(FormChoice::parse(&inherit, &tags(), &lists).expect("valid").choice.include, None);
        let excluded: HashMap<String, String> = HashMap::from([("include".to_owned(), "no".to_owned())]);
        assert_eq!(FormChoice::parse(&excluded, &tags(), &lists).expect("valid").choice.include, Some(false));
        let odd: HashMap<String, String> = HashMap::from([("include".to_owned(), "maybe".to_owned())]);
        assert!(FormChoice::parse(&odd, &tags(), &lists).is_err());
        let gone: HashMap<String, String> = HashMap::from([("tag_Attended".to_owned(), "8".to_owned())]);
        let error = FormChoice::parse(&gone, &tags(), &lists).err().expect("an unknown tag");
        assert!(error.contains("Attended") && error.contains("reload"), "{error}");
        let bad_list: HashMap<String, String> = HashMap::from([("listid".to_owned(), "x".to_owned())]);
        assert!(FormChoice::parse(&bad_list, &tags(), &lists).is_err());
    }

    #[test]
    fn a_webinar_slug_is_stable_and_carries_no_name() {
        let key = WebinarKey { source: Source::Zoom, webinar_id: "8123".to_owned() };
        let slug = webinar_slug(&key);
        assert_eq!(slug.len(), 12);
        assert!(slug.bytes().all(|byte| byte.is_ascii_hexdigit()));
        assert_eq!(slug, webinar_slug(&key.clone()));
        assert_ne!(slug, webinar_slug(&WebinarKey { source: Source::Webinarjam, webinar_id: "8123".to_owned() }));
        assert_ne!(slug, ALL_WEBINARS);
    }
}

/// The settings page through the console's router: a SQLite database with one contact, the
/// KlickTipp simulator over HTTP, and an in-memory stand-in for the settings port.
#[cfg(test)]
mod page_tests {
    use super::*;
    use crate::console::{ConsoleParts, router};
    use axum::body::Body;
    use axum::http::{Request as HttpRequest, header};
    use std::sync::Arc;
    use tower::ServiceExt as _;
    use webinar_bridge::adapters::memory::{MemoryWebinarSettings, QueueSettings};
    use webinar_bridge::adapters::sqlite::{SqliteContactStore, SqliteDb};
    use webinar_bridge::domain::{ContactRecord, TagTemplate};
    use webinar_bridge::ports::ContactStore as _;
    use webinar_bridge::ports::WebinarSettings as _;

    const TOKEN: &str = "settings-page-test-token";

    async fn send(app: &axum::Router, request: HttpRequest<Body>) -> (StatusCode, String, Option<String>) {
        let response = app.clone().oneshot(request).await.expect("an answer");
        let status = response.status();
        let cookie = response
            .headers()
            .get(header::SET_COOKIE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .map(str::to_owned);
        let location =
            response.headers().get(header::LOCATION).and_then(|value| value.to_str().ok()).map(str::to_owned);
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("a body");
        (status, String::from_utf8_lossy(&body).into_owned(), cookie.or(location))
    }

    fn post(path: &str, cookie: &str, body: String) -> HttpRequest<Body> {
        HttpRequest::post(path)
            .header(header::COOKIE, cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .expect("a request")
    }

    fn get(path: &str, cookie: &str) -> HttpRequest<Body> {
        HttpRequest::get(path).header(header::COOKIE, cookie).body(Body::empty()).expect("a request")
    }

    fn csrf_of(html: &str) -> String {
        let marker = r#"name="csrf" value=""#;
        let start = html.find(marker).expect("a CSRF field") + marker.len();
        html[start..].split('"').next().expect("a value").to_owned()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_person_maps_a_state_creates_a_tag_and_saves() {
        let simulator =
            klicktipp_sim::start(klicktipp_sim::SimConfig::default(), "127.0.0.1:0").await.expect("a simulator");
        let client = crate::wiring::client(crate::wiring::simulator_client_config(&simulator, 0.0)).expect("a client");
        let existing = client.create_tag("Webinar attendees", None).await.expect("an existing tag");
        let db = SqliteDb::open_in_memory().expect("a database");
        let record: ContactRecord = serde_json::from_value(serde_json::json!({
            "email": "erika@example.com",
            "webinars": [{"webinar": {"source": {"platform": "webinarjam"}, "webinar_id": "321"}, "state": {
                "registration": {"stamp": {"at": "2026-12-05T02:04:11Z", "event_id": "webinarjam:abc"}, "value": "registered"},
                "fields": {"webinar_name": {"stamp": {"at": "2026-12-05T02:04:11Z", "event_id": "webinarjam:abc"}, "value": "Spring Launch"}},
            }}],
        }))
        .expect("a record");
        SqliteContactStore::new(db.clone()).save(&record, None).await.expect("saved");
        let store = Arc::new(MemoryWebinarSettings::default());
        let app = router(ConsoleParts {
            token: TOKEN.to_owned(),
            db,
            queue_settings: QueueSettings::default(),
            klicktipp: client,
            consumer: None,
            tag_template: TagTemplate::default(),
            settings: Some(store.clone()),
            parked: None,
        });
        let sign_in = HttpRequest::post("/console/sign-in")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("token={TOKEN}")))
            .expect("a request");
        let (status, _, cookie) = send(&app, sign_in).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let cookie = cookie.expect("a session cookie");

        let (status, html, _) = send(&app, get("/console/settings", &cookie)).await;
        assert_eq!(status, StatusCode::OK, "{html}");
        let key = WebinarKey { source: webinar_bridge::domain::Source::Webinarjam, webinar_id: "321".to_owned() };
        let slug = webinar_slug(&key);
        assert!(html.contains(&format!(r#"href="/console/settings/{slug}">Spring Launch</a>"#)), "{html}");

        let page = format!("/console/settings/{slug}");
        let (status, html, _) = send(&app, get(&page, &cookie)).await;
        assert_eq!(status, StatusCode::OK, "{html}");
        assert!(html.contains("Generated: [WebinarJam] [Spring Launch] Attended"), "{html}");
        assert!(html.contains(&format!(r#"<option value="{existing}">Webinar attendees</option>"#)), "{html}");
        assert!(html.contains(r#"value="Registered">Create tag</button>"#), "{html}");
        let csrf = csrf_of(&html);

        // Create tag keeps the choice made so far on the page.
        let form = format!("csrf={csrf}&tag_Attended={existing}&include=yes&create=Registered");
        let (status, html, _) = send(&app, post(&format!("{page}/create-tag"), &cookie, form)).await;
        assert_eq!(status, StatusCode::OK, "{html}");
        assert!(html.contains("Created the tag \u{201c}[WebinarJam] [Spring Launch] Registered\u{201d}"), "{html}");
        let created = simulator
            .tags()
            .into_iter()
            .find(|(_, name)| name == "[WebinarJam] [Spring Launch] Registered")
            .map(|(id, _)| id)
            .expect("the tag was created in KlickTipp");
        assert!(html.contains(&format!(r#"<option value="{existing}" selected>"#)), "{html}");
        assert!(!html.contains(r#"value="Attended">Create tag"#), "a state on an existing tag needs no new tag");
        assert!(html.contains(&format!("exists (id {created})")), "{html}");
        assert!(store.all().await.expect("settings").is_empty(), "nothing saved before Save");
        // A second click creates nothing new.
        let form = format!("csrf={csrf}&create=Registered");
        let (_, html, _) = send(&app, post(&format!("{page}/create-tag"), &cookie, form)).await;
        assert!(html.contains("already exists"), "{html}");
        assert_eq!(simulator.tags().values().filter(|name| name.contains("Registered")).count(), 1);

        // Save; a refused save (no CSRF, or a tag the account lacks) stores nothing.
        let form = format!("tag_Attended={existing}&include=yes");
        assert_eq!(send(&app, post(&page, &cookie, form)).await.0, StatusCode::FORBIDDEN);
        let form = format!("csrf={csrf}&tag_Attended=999999&include=yes");
        let (status, html, _) = send(&app, post(&page, &cookie, form)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(html.contains("reload the page"), "{html}");
        assert!(store.all().await.expect("settings").is_empty());
        let form = format!("csrf={csrf}&tag_Attended={existing}&listid=&include=yes");
        let (status, _, location) = send(&app, post(&page, &cookie, form)).await;
        assert_eq!((status, location.as_deref()), (StatusCode::SEE_OTHER, Some(format!("{page}?saved=1").as_str())));
        let set = store.all().await.expect("settings");
        let saved: Vec<&WebinarSetting> = set.entries().collect();
        let attendees = MappedTag { id: existing, name: "Webinar attendees".to_owned() };
        let mut expected = WebinarSetting::new("webinarjam", "321");
        expected.tags = BTreeMap::from([(StateLabel::Attended, attendees.clone())]);
        expected.include = Some(true);
        assert_eq!(saved, [&expected]);
        assert_eq!(set.mapped_tag("webinarjam", "321", Some("Spring Launch"), StateLabel::Attended), Some(attendees));
        let (_, html, _) = send(&app, get(&format!("{page}?saved=1"), &cookie)).await;
        assert!(html.contains("Saved."), "{html}");
        assert!(html.contains("<code>Webinar attendees</code> <small>this webinar</small>"), "{html}");
        assert!(html.contains(r#"<option value="yes" selected>Yes</option>"#), "{html}");

        // The defaults page previews placeholders and offers no creation.
        let (status, html, _) = send(&app, get("/console/settings/all", &cookie)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("[{tool}] [{webinar}] Attended") && !html.contains("Create tag"), "{html}");
        let (status, _, _) = send(&app, get("/console/settings/000000000000", &cookie)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        simulator.shutdown().await;
    }
}
