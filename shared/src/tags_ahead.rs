//! Tags ahead of time (issue 15): every state tag of a webinar, created before the first contact
//! needs one, so a marketer can build the webinar's campaigns before it opens. Used by
//! `webinar-bridge tags ensure` and by the consumer when it first sees a webinar
//! (`BRIDGE_TAGS_AHEAD`). Creation goes through the [`TagResolver`]: single-writer, idempotent.

use crate::domain::{Settings, Source, StateLabel, WebinarEvent, WebinarSettingsSet, session_date};
use crate::tag_resolver::{TagResolveError, TagResolver};
use chrono::NaiveDate;

/// How a state's tag came to be there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    /// This call created it in KlickTipp.
    Created,
    /// KlickTipp (or the bridge's directory) already had it.
    Existing,
    /// The state is mapped to an existing tag in the per-webinar settings: nothing created.
    Mapped,
}

impl Ensured {
    pub fn as_str(self) -> &'static str {
        match self {
            Ensured::Created => "created",
            Ensured::Existing => "existing",
            Ensured::Mapped => "mapped",
        }
    }
}

/// One state's tag after [`ensure_webinar_tags`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnsuredTag {
    pub state: StateLabel,
    pub name: String,
    pub id: u64,
    pub how: Ensured,
}

/// The webinar a set of tags belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebinarRef {
    pub source: Source,
    pub webinar_id: String,
    /// The name tags show; the id when unknown.
    pub name: Option<String>,
    /// The session date, for templates with `{date}`.
    pub date: Option<NaiveDate>,
}

impl WebinarRef {
    /// The webinar of an event (its session date in the webinar's time zone).
    pub fn of_event(event: &WebinarEvent) -> Self {
        let start = event.webinar.starts_at.map(|at| at.to_rfc3339());
        Self {
            source: event.source.clone(),
            webinar_id: event.webinar.id.clone(),
            name: event.webinar.name.clone(),
            date: session_date(start.as_deref(), event.webinar.timezone.as_deref()),
        }
    }

    /// The key under which the settings store remembers the webinar as seen: `source#webinar`,
    /// plus `#<date>` when tag names carry the session date (each session has its own tags).
    pub fn seen_key(&self, settings: &Settings) -> String {
        let mut key = crate::domain::setting_key(&self.source.key(), &self.webinar_id);
        if settings.tag_template.uses_date()
            && let Some(date) = self.date
        {
            key.push('#');
            key.push_str(&date.format("%Y-%m-%d").to_string());
        }
        key
    }
}

/// The tag name of every state of `webinar`, mapped states named by their existing tag, in
/// `StateLabel::ALL` order.
pub fn webinar_tag_names(
    settings: &Settings,
    webinar_settings: &WebinarSettingsSet,
    webinar: &WebinarRef,
) -> Vec<(StateLabel, String, Option<u64>)> {
    let label = webinar.name.as_deref().unwrap_or(&webinar.webinar_id);
    let source = webinar.source.key();
    StateLabel::ALL
        .into_iter()
        .map(|state| match webinar_settings.mapped_tag(&source, &webinar.webinar_id, webinar.name.as_deref(), state) {
            Some(mapped) => (state, mapped.name, Some(mapped.id)),
            None => (
                state,
                settings.tag_template.render_session(webinar.source.tool_name(), label, webinar.date, state),
                None,
            ),
        })
        .collect()
}

/// Creates every state tag of `webinar` that KlickTipp does not have yet (mapped states are
/// left alone). Running it again creates nothing.
pub async fn ensure_webinar_tags(
    resolver: &TagResolver,
    settings: &Settings,
    webinar_settings: &WebinarSettingsSet,
    webinar: &WebinarRef,
) -> Result<Vec<EnsuredTag>, TagResolveError> {
    let mut ensured = Vec::with_capacity(StateLabel::ALL.len());
    for (state, name, mapped) in webinar_tag_names(settings, webinar_settings, webinar) {
        let (id, how) = match mapped {
            Some(id) => (id, Ensured::Mapped),
            None => match resolver.resolve(&name).await? {
                (id, true) => (id, Ensured::Created),
                (id, false) => (id, Ensured::Existing),
            },
        };
        ensured.push(EnsuredTag { state, name, id, how });
    }
    Ok(ensured)
}

/// Writes the entries of a seed (`BRIDGE_WEBINAR_SETTINGS`) to the settings store; each
/// replaces the stored entry of its source and webinar, other stored entries stay.
pub async fn seed_webinar_settings(
    store: &dyn crate::ports::WebinarSettings,
    entries: &[crate::domain::WebinarSetting],
) -> Result<(), crate::ports::PortError> {
    for entry in entries {
        store.put(entry).await?;
    }
    if !entries.is_empty() {
        tracing::info!(entries = entries.len(), "per-webinar settings seeded from BRIDGE_WEBINAR_SETTINGS");
    }
    Ok(())
}

/// Tags ahead for the webinars a platform's API lists (reconciliation, issue 15): each webinar
/// (or, with `{date}` in the tag template, each session) not seen before gets every state tag
/// once, under the same seen key the consumer uses, so a marketer's webinar has its tags before
/// its first registrant. Honours the per-webinar mapping (mapped states create nothing).
pub struct ListedWebinars {
    resolver: TagResolver,
    settings: Settings,
    store: std::sync::Arc<dyn crate::ports::WebinarSettings>,
}

impl std::fmt::Debug for ListedWebinars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ListedWebinars")
    }
}

impl ListedWebinars {
    pub fn new(
        resolver: TagResolver,
        settings: Settings,
        store: std::sync::Arc<dyn crate::ports::WebinarSettings>,
    ) -> Self {
        Self { resolver, settings, store }
    }

    /// Whether the tag names carry the session date (then each listed session is prepared).
    pub fn per_session(&self) -> bool {
        self.settings.tag_template.uses_date()
    }

    /// Creates the state tags of `webinar` unless it was seen before; returns how many tags this
    /// call created (0 for a webinar already seen). A failure is for the caller to log: nothing
    /// is marked seen then, so the next pass (or the consumer) tries again.
    pub async fn prepare(&self, webinar: &WebinarRef) -> Result<usize, String> {
        let key = webinar.seen_key(&self.settings);
        if self.store.is_seen(&key).await.map_err(|error| error.to_string())? {
            return Ok(0);
        }
        let mapping = self.store.all().await.map_err(|error| error.to_string())?;
        if !mapping.effective(&webinar.source.key(), &webinar.webinar_id, webinar.name.as_deref()).included {
            // An excluded webinar gets no tags (its events are skipped too).
            return Ok(0);
        }
        let tags = ensure_webinar_tags(&self.resolver, &self.settings, &mapping, webinar)
            .await
            .map_err(|error| error.to_string())?;
        let created = tags.iter().filter(|tag| tag.how == Ensured::Created).count();
        self.store.mark_seen(&key, chrono::Utc::now()).await.map_err(|error| error.to_string())?;
        tracing::info!(webinar = %key, created, "created the listed webinar's tags ahead");
        Ok(created)
    }
}
