//! Per-webinar settings (issue 15, DESIGN 13 addition): which existing KlickTipp tag a state
//! uses instead of a generated one, the opt-in process (`listid`) of new contacts, and whether
//! the webinar's events are applied at all. Kept in the bridge's store so the console, the
//! command line and both Lambdas share one copy; `BRIDGE_WEBINAR_SETTINGS` may seed it.
//!
//! Precedence, per item (each state's tag, the listid, the filter): the entry of the webinar
//! (`source` + webinar id, else webinar name) > the source's `*` entry > the `*`/`*` entry >
//! the built-in behaviour (generated tag names, `KLICKTIPP_LISTID`, included).

use super::state::StateLabel;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `source` or `webinar` of an entry that applies to all.
pub const ALL: &str = "*";

/// KlickTipp tag names are short labels; an id of 0 is never a real tag.
const MAX_MAPPED_TAG_NAME_CHARS: usize = 250;

/// An existing KlickTipp tag a state is mapped to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappedTag {
    pub id: u64,
    pub name: String,
}

/// The settings of one webinar, or of all webinars of a source (`webinar` = `*`), or of all
/// (`source` = `webinar` = `*`). An item left out inherits from the wider entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebinarSetting {
    /// `Source::key` (`zoom`, `webinarjam`, `everwebinar`, `generic:<tool>`) or `*`.
    pub source: String,
    /// The webinar's id (or its name), or `*`.
    pub webinar: String,
    /// State -> existing tag, keyed by the English state name (`Registered`, `Did Not Attend`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", with = "state_keys")]
    pub tags: BTreeMap<StateLabel, MappedTag>,
    /// The opt-in process new contacts of this webinar are subscribed with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listid: Option<u64>,
    /// `false`: the webinar's events are recorded as skipped and cost no KlickTipp call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<bool>,
}

impl WebinarSetting {
    pub fn new(source: impl Into<String>, webinar: impl Into<String>) -> Self {
        Self { source: source.into(), webinar: webinar.into(), tags: BTreeMap::new(), listid: None, include: None }
    }

    /// The store key: `<source>#<webinar>`.
    pub fn key(&self) -> String {
        setting_key(&self.source, &self.webinar)
    }

    /// Checks one entry; the error names the bad key within it (`tags.Buyer.id`).
    pub fn validate(&self) -> Result<(), WebinarSettingsError> {
        let source = self.source.trim();
        if source.is_empty() {
            return Err(WebinarSettingsError::new(
                "source",
                "is empty; use a source key (zoom, webinarjam, everwebinar, generic:<tool>) or \"*\"",
            ));
        }
        if source != ALL && !is_source_key(source) {
            return Err(WebinarSettingsError::new(
                "source",
                format!("{source:?} is not a source; use zoom, webinarjam, everwebinar, generic:<tool> or \"*\""),
            ));
        }
        if self.webinar.trim().is_empty() {
            return Err(WebinarSettingsError::new("webinar", "is empty; use the webinar's id or name, or \"*\""));
        }
        if source == ALL && self.webinar != ALL {
            return Err(WebinarSettingsError::new(
                "webinar",
                "must be \"*\" when source is \"*\"; name the source of a single webinar",
            ));
        }
        for (label, tag) in &self.tags {
            let at = format!("tags.{}", label.as_str());
            if tag.id == 0 {
                return Err(WebinarSettingsError::new(
                    format!("{at}.id"),
                    "must be the id of an existing KlickTipp tag (see `webinar-bridge klicktipp tags`)",
                ));
            }
            let name = tag.name.trim();
            if name.is_empty() || name.chars().count() > MAX_MAPPED_TAG_NAME_CHARS {
                return Err(WebinarSettingsError::new(
                    format!("{at}.name"),
                    format!(
                        "must be the tag's name as KlickTipp shows it (1 to {MAX_MAPPED_TAG_NAME_CHARS} characters)"
                    ),
                ));
            }
        }
        if self.listid == Some(0) {
            return Err(WebinarSettingsError::new(
                "listid",
                "must be the id of an opt-in process (see `webinar-bridge klicktipp optins`), not 0",
            ));
        }
        Ok(())
    }
}

/// `<source>#<webinar>`: the key of one entry in every store.
pub fn setting_key(source: &str, webinar: &str) -> String {
    format!("{source}#{webinar}")
}

fn is_source_key(key: &str) -> bool {
    matches!(key, "zoom" | "webinarjam" | "everwebinar")
        || key.strip_prefix("generic:").is_some_and(|tool| !tool.trim().is_empty())
}

/// A bad settings entry or seed, naming the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct WebinarSettingsError {
    pub key: String,
    pub problem: String,
}

impl WebinarSettingsError {
    fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { key: key.into(), problem: problem.into() }
    }

    fn within(self, prefix: &str) -> Self {
        Self { key: format!("{prefix}.{}", self.key), problem: self.problem }
    }
}

/// What applies to one webinar after precedence.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effective {
    pub tags: BTreeMap<StateLabel, MappedTag>,
    pub listid: Option<u64>,
    pub included: bool,
    /// The key of the entry that excluded the webinar, for the skip reason.
    pub excluded_by: Option<String>,
}

/// Every stored entry: what the consumer, the CLI and the console read at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebinarSettingsSet {
    entries: BTreeMap<String, WebinarSetting>,
}

impl WebinarSettingsSet {
    pub fn new(entries: impl IntoIterator<Item = WebinarSetting>) -> Self {
        Self { entries: entries.into_iter().map(|entry| (entry.key(), entry)).collect() }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> impl Iterator<Item = &WebinarSetting> {
        self.entries.values()
    }

    /// The entries that apply to a webinar, narrowest first.
    fn chain(&self, source: &str, webinar_id: &str, webinar_name: Option<&str>) -> Vec<&WebinarSetting> {
        let by_id = self.entries.get(&setting_key(source, webinar_id));
        let by_name = webinar_name.and_then(|name| self.entries.get(&setting_key(source, name.trim())));
        [by_id, by_name, self.entries.get(&setting_key(source, ALL)), self.entries.get(&setting_key(ALL, ALL))]
            .into_iter()
            .flatten()
            .collect()
    }

    /// The settings of one webinar (`source` is `Source::key`).
    pub fn effective(&self, source: &str, webinar_id: &str, webinar_name: Option<&str>) -> Effective {
        let chain = self.chain(source, webinar_id, webinar_name);
        let mut tags = BTreeMap::new();
        for entry in chain.iter().rev() {
            tags.extend(entry.tags.iter().map(|(label, tag)| (*label, tag.clone())));
        }
        let listid = chain.iter().find_map(|entry| entry.listid);
        let deciding = chain.iter().find(|entry| entry.include.is_some());
        let included = deciding.and_then(|entry| entry.include).unwrap_or(true);
        let excluded_by = (!included).then(|| deciding.map(|entry| entry.key())).flatten();
        Effective { tags, listid, included, excluded_by }
    }

    /// The existing tag a state of a webinar is mapped to, if any.
    pub fn mapped_tag(
        &self,
        source: &str,
        webinar_id: &str,
        webinar_name: Option<&str>,
        label: StateLabel,
    ) -> Option<MappedTag> {
        self.chain(source, webinar_id, webinar_name).into_iter().find_map(|entry| entry.tags.get(&label).cloned())
    }

    /// Every mapped tag (name -> id), so the resolver knows them without asking KlickTipp.
    pub fn mapped_ids(&self) -> BTreeMap<String, u64> {
        self.entries.values().flat_map(|entry| entry.tags.values()).map(|tag| (tag.name.clone(), tag.id)).collect()
    }
}

/// Reads a seed (`BRIDGE_WEBINAR_SETTINGS`): `{"webinars": [entry, ...]}` or a bare list of
/// entries. Each entry: `source`, `webinar`, and optionally `tags` (English state name ->
/// `{"id": 123, "name": "..."}`), `listid`, `include`. Errors name the bad key
/// (`webinars[1].tags.Buyer.id: ...`).
pub fn parse_seed(raw: &str) -> Result<Vec<WebinarSetting>, WebinarSettingsError> {
    let document: serde_json::Value = serde_json::from_str(raw)
        .map_err(|error| WebinarSettingsError::new("(document)", format!("is not JSON: {error}")))?;
    let list = match &document {
        serde_json::Value::Array(list) => list,
        serde_json::Value::Object(object) => {
            if let Some(unknown) = object.keys().find(|key| *key != "webinars") {
                return Err(WebinarSettingsError::new(
                    unknown.as_str(),
                    "is not a known key; the document has \"webinars\": [...]",
                ));
            }
            match object.get("webinars") {
                Some(serde_json::Value::Array(list)) => list,
                _ => return Err(WebinarSettingsError::new("webinars", "must be a list of webinar entries")),
            }
        }
        _ => return Err(WebinarSettingsError::new("(document)", "must be {\"webinars\": [...]} or a list of entries")),
    };
    let mut seen = BTreeMap::new();
    let mut entries = Vec::with_capacity(list.len());
    for (index, value) in list.iter().enumerate() {
        let at = format!("webinars[{index}]");
        let entry = parse_entry(value).map_err(|error| error.within(&at))?;
        if let Some(first) = seen.insert(entry.key(), index) {
            return Err(WebinarSettingsError::new(
                at,
                format!("names the same source and webinar as webinars[{first}]; merge the two entries"),
            ));
        }
        entries.push(entry);
    }
    Ok(entries)
}

fn parse_entry(value: &serde_json::Value) -> Result<WebinarSetting, WebinarSettingsError> {
    let Some(object) = value.as_object() else {
        return Err(WebinarSettingsError::new("(entry)", "must be an object with \"source\" and \"webinar\""));
    };
    const KEYS: [&str; 5] = ["source", "webinar", "tags", "listid", "include"];
    if let Some(unknown) = object.keys().find(|key| !KEYS.contains(&key.as_str())) {
        return Err(WebinarSettingsError::new(
            unknown.as_str(),
            "is not a known key; an entry has source, webinar, tags, listid and include",
        ));
    }
    let text = |key: &str| -> Result<String, WebinarSettingsError> {
        match object.get(key) {
            Some(serde_json::Value::String(text)) => Ok(text.trim().to_owned()),
            Some(_) => Err(WebinarSettingsError::new(key, "must be a string")),
            None => Err(WebinarSettingsError::new(key, "is missing")),
        }
    };
    let mut entry = WebinarSetting::new(text("source")?, text("webinar")?);
    match object.get("listid") {
        None | Some(serde_json::Value::Null) => {}
        Some(value) => {
            entry.listid = Some(value.as_u64().ok_or_else(|| {
                WebinarSettingsError::new(
                    "listid",
                    "must be the number of an opt-in process (see `webinar-bridge klicktipp optins`)",
                )
            })?)
        }
    }
    match object.get("include") {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::Bool(include)) => entry.include = Some(*include),
        Some(_) => return Err(WebinarSettingsError::new("include", "must be true or false")),
    }
    match object.get("tags") {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::Object(tags)) => {
            for (state, tag) in tags {
                let label = state_label(state).ok_or_else(|| {
                    WebinarSettingsError::new(
                        format!("tags.{state}"),
                        format!("is not a state; the states are {}", known_states()),
                    )
                })?;
                let at = format!("tags.{state}");
                let tag: MappedTag = serde_json::from_value(tag.clone()).map_err(|_| {
                    WebinarSettingsError::new(
                        at.as_str(),
                        "must be {\"id\": <KlickTipp tag id>, \"name\": \"<its name>\"}",
                    )
                })?;
                if entry.tags.insert(label, tag).is_some() {
                    return Err(WebinarSettingsError::new(at, "is named twice"));
                }
            }
        }
        Some(_) => {
            return Err(WebinarSettingsError::new("tags", "must be an object: state name -> {\"id\", \"name\"}"));
        }
    }
    entry.validate()?;
    Ok(entry)
}

/// The state of an English state name, ignoring case and surrounding spaces.
pub fn state_label(name: &str) -> Option<StateLabel> {
    StateLabel::ALL.into_iter().find(|label| label.as_str().eq_ignore_ascii_case(name.trim()))
}

fn known_states() -> String {
    StateLabel::ALL.iter().map(|label| label.as_str()).collect::<Vec<_>>().join(", ")
}

/// Stores tag maps keyed by the English state name, the same words a seed uses.
mod state_keys {
    use super::{MappedTag, StateLabel, state_label};
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(tags: &BTreeMap<StateLabel, MappedTag>, serializer: S) -> Result<S::Ok, S::Error> {
        let named: BTreeMap<&str, &MappedTag> = tags.iter().map(|(label, tag)| (label.as_str(), tag)).collect();
        named.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<StateLabel, MappedTag>, D::Error> {
        let named = BTreeMap::<String, MappedTag>::deserialize(deserializer)?;
        named
            .into_iter()
            .map(|(name, tag)| {
                state_label(&name)
                    .map(|label| (label, tag))
                    .ok_or_else(|| D::Error::custom(format!("unknown state {name:?}")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(id: u64, name: &str) -> MappedTag {
        MappedTag { id, name: name.to_owned() }
    }

    #[test]
    fn the_webinar_entry_wins_over_the_source_default_and_the_global_default() {
        let mut global = WebinarSetting::new(ALL, ALL);
        global.listid = Some(1);
        global.tags.insert(StateLabel::Buyer, tag(9, "Kunde"));
        global.tags.insert(StateLabel::Registered, tag(8, "Global Registered"));
        let mut zoom = WebinarSetting::new("zoom", ALL);
        zoom.include = Some(false);
        let mut demo = WebinarSetting::new("zoom", "811");
        demo.include = Some(true);
        demo.listid = Some(3);
        demo.tags.insert(StateLabel::Registered, tag(7, "Demo angemeldet"));
        let set = WebinarSettingsSet::new([global, zoom, demo]);

        let effective = set.effective("zoom", "811", Some("Demo"));
        assert!(effective.included);
        assert_eq!(effective.listid, Some(3));
        assert_eq!(effective.tags.get(&StateLabel::Registered), Some(&tag(7, "Demo angemeldet")));
        assert_eq!(effective.tags.get(&StateLabel::Buyer), Some(&tag(9, "Kunde")), "inherited from *");

        let other = set.effective("zoom", "999", None);
        assert!(!other.included);
        assert_eq!(other.excluded_by.as_deref(), Some("zoom#*"));
        assert_eq!(other.listid, Some(1));
        let jam = set.effective("webinarjam", "1", None);
        assert!(jam.included);
        assert_eq!(set.mapped_tag("webinarjam", "1", None, StateLabel::Registered), Some(tag(8, "Global Registered")));
        assert_eq!(
            WebinarSettingsSet::default().effective("zoom", "1", None),
            Effective { included: true, ..Effective::default() }
        );
    }

    #[test]
    fn an_entry_can_name_the_webinar_instead_of_its_id() {
        let mut by_name = WebinarSetting::new("webinarjam", "Spring Launch");
        by_name.listid = Some(5);
        let set = WebinarSettingsSet::new([by_name]);
        assert_eq!(set.effective("webinarjam", "42", Some("Spring Launch")).listid, Some(5));
        assert_eq!(set.effective("webinarjam", "42", Some("Autumn")).listid, None);
    }

    #[test]
    fn a_seed_reads_back_and_stores_with_english_state_names() {
        let seed = r#"{"webinars": [
            {"source": "*", "webinar": "*", "include": true},
            {"source": "zoom", "webinar": "811", "listid": 3,
             "tags": {"registered": {"id": 42, "name": "VIP angemeldet"}, "Did Not Attend": {"id": 43, "name": "VIP verpasst"}}}
        ]}"#;
        let entries = parse_seed(seed).expect("a valid seed");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].tags.get(&StateLabel::DidNotAttend), Some(&tag(43, "VIP verpasst")));
        let stored = serde_json::to_string(&entries[1]).expect("serializes");
        assert!(stored.contains("\"Did Not Attend\""), "{stored}");
        let back: WebinarSetting = serde_json::from_str(&stored).expect("reads back");
        assert_eq!(back, entries[1]);
        assert_eq!(parse_seed("[]").expect("an empty list"), []);
    }

    #[test]
    fn seed_errors_name_the_bad_key() {
        let cases = [
            ("{", "(document)"),
            (r#"{"webinar": []}"#, "webinar"),
            (r#"[{"source": "zoom"}]"#, "webinars[0].webinar"),
            (r#"[{"source": "teams", "webinar": "1"}]"#, "webinars[0].source"),
            (r#"[{"source": "*", "webinar": "1"}]"#, "webinars[0].webinar"),
            (r#"[{"source": "zoom", "webinar": "1", "listid": "x"}]"#, "webinars[0].listid"),
            (r#"[{"source": "zoom", "webinar": "1", "include": "no"}]"#, "webinars[0].include"),
            (
                r#"[{"source": "zoom", "webinar": "1", "tags": {"Bought": {"id": 1, "name": "x"}}}]"#,
                "webinars[0].tags.Bought",
            ),
            (r#"[{"source": "zoom", "webinar": "1", "tags": {"Buyer": 5}}]"#, "webinars[0].tags.Buyer"),
            (
                r#"[{"source": "zoom", "webinar": "1", "tags": {"Buyer": {"id": 0, "name": "x"}}}]"#,
                "webinars[0].tags.Buyer.id",
            ),
            (
                r#"[{"source": "zoom", "webinar": "1", "tags": {"Buyer": {"id": 4, "name": " "}}}]"#,
                "webinars[0].tags.Buyer.name",
            ),
            (r#"[{"source": "zoom", "webinar": "1", "colour": "red"}]"#, "webinars[0].colour"),
            (r#"[{"source": "zoom", "webinar": "1"}, {"source": "zoom", "webinar": "1"}]"#, "webinars[1]"),
        ];
        for (seed, key) in cases {
            let error = parse_seed(seed).expect_err(seed);
            assert_eq!(error.key, key, "{seed}: {error}");
            assert!(!error.to_string().contains('\n'), "one line: {error}");
        }
    }
}
