//! Tag names from `BRIDGE_TAG_TEMPLATE` (DESIGN 4), default `[{tool}] [{webinar}] {state}`, with
//! the state words of `BRIDGE_LANGUAGE` and `BRIDGE_STATE_NAMES` (DESIGN 13).

use super::event::{MAX_ENGAGEMENT_LABEL_CHARS, engagement_label};
use super::state::StateLabel;
use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use std::collections::{BTreeMap, BTreeSet};

pub const DEFAULT_TAG_TEMPLATE: &str = "[{tool}] [{webinar}] {state}";

/// KlickTipp shows tag names in lists; longer names are truncated in its UI and are a sign of a
/// template or webinar name gone wrong.
const MAX_TAG_NAME_CHARS: usize = 250;

/// A state word is one short label; the rest of the tag name belongs to the webinar.
pub const MAX_STATE_WORD_CHARS: usize = 60;

/// The language of the built-in state words.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Language {
    #[default]
    En,
    De,
}

impl Language {
    pub const CODES: &'static str = "en or de";

    /// `en` or `de`, in any case; a region (`de-DE`, `de_AT`) is accepted and ignored.
    pub fn parse(raw: &str) -> Option<Self> {
        let base = raw.trim().split(['-', '_']).next().unwrap_or_default().to_ascii_lowercase();
        match base.as_str() {
            "en" => Some(Self::En),
            "de" => Some(Self::De),
            _ => None,
        }
    }

    /// The built-in word for a state (DESIGN 13 for German).
    pub fn word(self, label: StateLabel) -> &'static str {
        match self {
            Self::En => label.as_str(),
            Self::De => match label {
                StateLabel::Registered => "Angemeldet",
                StateLabel::Cancelled => "Abgemeldet",
                StateLabel::DidNotAttend => "Nicht teilgenommen",
                StateLabel::Attended => "Teilgenommen",
                StateLabel::FullyAttended => "Komplett teilgenommen",
                StateLabel::ReplayWatched => "Aufzeichnung angesehen",
                StateLabel::Buyer => "Käufer",
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateNamesError {
    #[error(
        "{0:?} is neither a state nor an engagement label (up to {MAX_ENGAGEMENT_LABEL_CHARS} characters, no ']', with a word of the same kind); the states are {known}",
        known = known_states()
    )]
    UnknownState(String),
    #[error("the word for {0:?} is empty; leave the state out to keep its default word")]
    EmptyWord(String),
    #[error("the word for {0:?} is longer than {MAX_STATE_WORD_CHARS} characters")]
    TooLong(String),
    #[error(
        "{first:?} and {second:?} would both be named {word:?}, so two states of one webinar would share one tag; give each state its own word"
    )]
    Collision { first: String, second: String, word: String },
}

fn known_states() -> String {
    StateLabel::ALL.iter().map(|label| format!("{:?}", label.as_str())).collect::<Vec<_>>().join(", ")
}

/// The word each state shows in tag names. Every state has its own word: no two states of one
/// webinar can share a tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateNames(BTreeMap<StateLabel, String>, BTreeMap<String, String>);

impl StateNames {
    /// The words of `language`, with single states overridden by `overrides` (English state
    /// name -> word; the name is matched ignoring case and surrounding spaces).
    pub fn new(language: Language, overrides: &BTreeMap<String, String>) -> Result<Self, StateNamesError> {
        let mut words: BTreeMap<StateLabel, String> =
            StateLabel::ALL.iter().map(|label| (*label, language.word(*label).to_owned())).collect();
        let mut engagement_words = BTreeMap::new();
        for (name, word) in overrides {
            let Some(label) =
                StateLabel::ALL.into_iter().find(|label| label.as_str().eq_ignore_ascii_case(name.trim()))
            else {
                // Any other key translates an engagement label (`Clicked Offer` -> `Angebot geklickt`).
                let (Ok(key), Ok(word)) = (engagement_label(name), engagement_label(word)) else {
                    return Err(StateNamesError::UnknownState(name.clone()));
                };
                engagement_words.insert(key.to_lowercase(), word);
                continue;
            };
            let word = collapse_whitespace(word);
            if word.is_empty() {
                return Err(StateNamesError::EmptyWord(label.as_str().to_owned()));
            }
            if word.chars().count() > MAX_STATE_WORD_CHARS {
                return Err(StateNamesError::TooLong(label.as_str().to_owned()));
            }
            words.insert(label, word);
        }
        let names = Self(words, engagement_words);
        names.check_distinct()?;
        Ok(names)
    }

    pub fn word(&self, label: StateLabel) -> &str {
        self.0.get(&label).map(String::as_str).unwrap_or_else(|| label.as_str())
    }

    /// The word an engagement label shows: its translation from `BRIDGE_STATE_NAMES` (matched
    /// ignoring case), or the label itself.
    pub fn engagement_word<'a>(&'a self, label: &'a str) -> &'a str {
        self.1.get(&label.to_lowercase()).map(String::as_str).unwrap_or(label)
    }

    /// KlickTipp compares names without regard to case, so `Kunde` and `kunde` collide too.
    fn check_distinct(&self) -> Result<(), StateNamesError> {
        let mut seen: BTreeMap<String, StateLabel> = BTreeMap::new();
        for label in StateLabel::ALL {
            let word = self.word(label);
            if let Some(first) = seen.insert(word.to_lowercase(), label) {
                return Err(StateNamesError::Collision {
                    first: first.as_str().to_owned(),
                    second: label.as_str().to_owned(),
                    word: word.to_owned(),
                });
            }
        }
        Ok(())
    }
}

impl Default for StateNames {
    fn default() -> Self {
        Self(StateLabel::ALL.iter().map(|label| (*label, label.as_str().to_owned())).collect(), BTreeMap::new())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Tool,
    Webinar,
    State,
    Date,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagTemplate {
    parts: Vec<Part>,
    names: StateNames,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagTemplateError {
    #[error("must contain {{state}}, otherwise every state of a webinar would get the same tag")]
    MissingState,
    #[error("must contain {{webinar}}, otherwise every webinar would share the same tags")]
    MissingWebinar,
    #[error("has an unknown placeholder {0:?}; the placeholders are {{tool}}, {{webinar}}, {{state}} and {{date}}")]
    UnknownPlaceholder(String),
    #[error("has {0} characters besides its placeholders; keep it under 100 so the webinar name fits")]
    TooLong(usize),
}

impl TagTemplate {
    pub fn parse(raw: &str) -> Result<Self, TagTemplateError> {
        let mut parts = Vec::new();
        let mut rest = raw;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| TagTemplateError::UnknownPlaceholder(after.chars().take(20).collect()))?;
            parts.push(match &after[..close] {
                "tool" => Part::Tool,
                "webinar" => Part::Webinar,
                "state" => Part::State,
                "date" => Part::Date,
                name => return Err(TagTemplateError::UnknownPlaceholder(name.chars().take(20).collect())),
            });
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        if !parts.contains(&Part::State) {
            return Err(TagTemplateError::MissingState);
        }
        if !parts.contains(&Part::Webinar) {
            return Err(TagTemplateError::MissingWebinar);
        }
        let literal: usize = parts
            .iter()
            .map(|part| match part {
                Part::Text(text) => text.chars().count(),
                _ => 0,
            })
            .sum();
        if literal >= 100 {
            return Err(TagTemplateError::TooLong(literal));
        }
        Ok(Self { parts, names: StateNames::default() })
    }

    /// The same template with other state words.
    pub fn with_names(mut self, names: StateNames) -> Self {
        self.names = names;
        self
    }

    pub fn names(&self) -> &StateNames {
        &self.names
    }

    /// Whether tag names carry the session date (`{date}`, for recurring webinars).
    pub fn uses_date(&self) -> bool {
        self.parts.contains(&Part::Date)
    }

    /// The tag for one state of one webinar, without a session date.
    pub fn render(&self, tool: &str, webinar: &str, state: StateLabel) -> String {
        self.render_session(tool, webinar, None, state)
    }

    /// The tag for one state of one webinar session. Whitespace runs collapse so names compare
    /// reliably; an unknown date leaves `{date}` empty. A name over the length limit shortens
    /// the webinar name, never the state word, so the states of one webinar stay distinct.
    pub fn render_session(&self, tool: &str, webinar: &str, date: Option<NaiveDate>, state: StateLabel) -> String {
        self.render_word(tool, webinar, date, self.names.word(state))
    }

    /// The sticky tag of an engagement label (`[Zoom] [Demo] Clicked Offer`), the label in the
    /// place of the state word and translated through `BRIDGE_STATE_NAMES`.
    pub fn render_engagement(&self, tool: &str, webinar: &str, date: Option<NaiveDate>, label: &str) -> String {
        self.render_word(tool, webinar, date, self.names.engagement_word(label))
    }

    fn render_word(&self, tool: &str, webinar: &str, date: Option<NaiveDate>, word: &str) -> String {
        let date = date.map(|date| date.format("%Y-%m-%d").to_string()).unwrap_or_default();
        let mut webinar = collapse_whitespace(webinar);
        loop {
            let name = self.fill(tool, &webinar, &date, word);
            let excess = name.chars().count().saturating_sub(MAX_TAG_NAME_CHARS);
            if excess == 0 {
                return name;
            }
            let keep = webinar.chars().count().saturating_sub(excess);
            if keep == 0 {
                return name.chars().take(MAX_TAG_NAME_CHARS).collect();
            }
            webinar = webinar.chars().take(keep).collect::<String>().trim_end().to_owned();
        }
    }

    /// One pass over the template, so a placeholder inside a webinar name stays text.
    fn fill(&self, tool: &str, webinar: &str, date: &str, word: &str) -> String {
        let mut name = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => name.push_str(text),
                Part::Tool => name.push_str(tool.trim()),
                Part::Webinar => name.push_str(webinar),
                Part::State => name.push_str(word),
                // An unknown date takes the space before it along: `[Q&A {date}]` -> `[Q&A]`.
                Part::Date if date.is_empty() => name.truncate(name.trim_end().len()),
                Part::Date => name.push_str(date),
            }
        }
        collapse_whitespace(&name)
    }
}

impl Default for TagTemplate {
    fn default() -> Self {
        // DEFAULT_TAG_TEMPLATE, parsed (a unit test checks that the two agree).
        let text = |text: &str| Part::Text(text.to_owned());
        Self {
            parts: vec![text("["), Part::Tool, text("] ["), Part::Webinar, text("] "), Part::State],
            names: StateNames::default(),
        }
    }
}

/// Every state's tag for one webinar, distinct by construction; `check-config` shows them.
pub fn preview(template: &TagTemplate, tool: &str, webinar: &str, date: Option<NaiveDate>) -> Vec<String> {
    StateLabel::ALL.iter().map(|label| template.render_session(tool, webinar, date, *label)).collect()
}

/// Whether the names of the states of one webinar are pairwise distinct, ignoring case.
pub fn all_distinct(names: &[String]) -> bool {
    names.iter().map(|name| name.to_lowercase()).collect::<BTreeSet<_>>().len() == names.len()
}

/// The session date in the webinar's time zone: `start` is RFC 3339, `timezone` an IANA name
/// (`Europe/Berlin`) or an offset as platforms write it (`GMT+2`, `UTC-05:00`). Without a
/// known zone the date is the UTC date.
pub fn session_date(start: Option<&str>, timezone: Option<&str>) -> Option<NaiveDate> {
    let start = DateTime::parse_from_rfc3339(start?.trim()).ok()?.with_timezone(&Utc);
    let Some(timezone) = timezone.map(str::trim).filter(|zone| !zone.is_empty()) else {
        return Some(start.date_naive());
    };
    if let Ok(zone) = timezone.parse::<chrono_tz::Tz>() {
        return Some(start.with_timezone(&zone).date_naive());
    }
    match utc_offset(timezone) {
        Some(offset) => Some(start.with_timezone(&offset).date_naive()),
        None => Some(start.date_naive()),
    }
}

/// `GMT+2`, `UTC-05:00`, `GMT+5:30`, `+0200`, `UTC` as a fixed offset.
pub(crate) fn utc_offset(raw: &str) -> Option<FixedOffset> {
    let upper = raw.trim().to_ascii_uppercase();
    let rest = upper.strip_prefix("GMT").or_else(|| upper.strip_prefix("UTC")).unwrap_or(&upper).trim();
    if rest.is_empty() || rest == "Z" {
        return FixedOffset::east_opt(0);
    }
    let sign = match rest.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits = rest[1..].trim();
    let (hours, minutes) = match digits.split_once(':') {
        Some((hours, minutes)) => (hours.parse::<i32>().ok()?, minutes.parse::<i32>().ok()?),
        None if digits.len() == 4 => (digits[..2].parse::<i32>().ok()?, digits[2..].parse::<i32>().ok()?),
        None => (digits.parse::<i32>().ok()?, 0),
    };
    if hours > 14 || minutes > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overrides(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn default_template_matches_the_design_example() {
        let name = TagTemplate::default().render("Zoom", "Demo Webinar", StateLabel::Attended);
        assert_eq!(name, "[Zoom] [Demo Webinar] Attended");
        assert_eq!(
            TagTemplate::default().render("WebinarJam", "Masterclass", StateLabel::DidNotAttend),
            "[WebinarJam] [Masterclass] Did Not Attend"
        );
    }

    #[test]
    fn the_default_is_the_parsed_default_text() {
        assert_eq!(TagTemplate::parse(DEFAULT_TAG_TEMPLATE), Ok(TagTemplate::default()));
    }

    #[test]
    fn custom_templates_are_validated() {
        assert!(TagTemplate::parse("{webinar} - {state}").is_ok());
        assert!(TagTemplate::parse("{webinar} {date} {state}").is_ok());
        assert_eq!(TagTemplate::parse("{webinar}"), Err(TagTemplateError::MissingState));
        assert_eq!(TagTemplate::parse("{tool} {state}"), Err(TagTemplateError::MissingWebinar));
        assert!(matches!(TagTemplate::parse("{webinar} {state} {time}"), Err(TagTemplateError::UnknownPlaceholder(_))));
        assert!(matches!(TagTemplate::parse("{webinar} {state"), Err(TagTemplateError::UnknownPlaceholder(_))));
        let long = format!("{} {{webinar}} {{state}}", "x".repeat(120));
        assert!(matches!(TagTemplate::parse(&long), Err(TagTemplateError::TooLong(_))));
    }

    #[test]
    fn whitespace_in_names_is_collapsed() {
        let name = TagTemplate::default().render(" Zoom ", "Demo   Webinar\n", StateLabel::Buyer);
        assert_eq!(name, "[Zoom] [Demo Webinar] Buyer");
    }

    #[test]
    fn german_names_follow_the_design_table() {
        let names = StateNames::new(Language::De, &BTreeMap::new()).expect("built-in words are distinct");
        let template = TagTemplate::default().with_names(names);
        let tags = preview(&template, "Zoom", "Demo Webinar", None);
        assert_eq!(
            tags,
            [
                "[Zoom] [Demo Webinar] Angemeldet",
                "[Zoom] [Demo Webinar] Abgemeldet",
                "[Zoom] [Demo Webinar] Nicht teilgenommen",
                "[Zoom] [Demo Webinar] Teilgenommen",
                "[Zoom] [Demo Webinar] Komplett teilgenommen",
                "[Zoom] [Demo Webinar] Aufzeichnung angesehen",
                "[Zoom] [Demo Webinar] Käufer",
            ]
        );
        assert!(all_distinct(&tags));
    }

    #[test]
    fn overrides_replace_single_words_over_either_language() {
        let english = StateNames::new(Language::En, &overrides(&[("Buyer", "Customer")])).expect("valid");
        assert_eq!(english.word(StateLabel::Buyer), "Customer");
        assert_eq!(english.word(StateLabel::Registered), "Registered");
        let german =
            StateNames::new(Language::De, &overrides(&[("fully attended", "  Bis zum   Ende ")])).expect("valid");
        assert_eq!(german.word(StateLabel::FullyAttended), "Bis zum Ende");
        assert_eq!(german.word(StateLabel::Attended), "Teilgenommen");
    }

    #[test]
    fn bad_overrides_are_refused() {
        assert_eq!(
            StateNames::new(Language::En, &overrides(&[("Bought]", "Kunde")])),
            Err(StateNamesError::UnknownState("Bought]".to_owned()))
        );
        assert_eq!(
            StateNames::new(Language::En, &overrides(&[("Clicked Offer", "")])),
            Err(StateNamesError::UnknownState("Clicked Offer".to_owned()))
        );
        assert_eq!(
            StateNames::new(Language::En, &overrides(&[("Buyer", "  ")])),
            Err(StateNamesError::EmptyWord("Buyer".to_owned()))
        );
        assert!(matches!(
            StateNames::new(Language::En, &overrides(&[("Buyer", &"x".repeat(61))])),
            Err(StateNamesError::TooLong(_))
        ));
        let unknown = StateNamesError::UnknownState("Bought".to_owned()).to_string();
        assert!(unknown.contains("\"Did Not Attend\""), "{unknown}");
    }

    #[test]
    fn other_keys_translate_engagement_labels() {
        let names =
            StateNames::new(Language::De, &overrides(&[("clicked  offer", "Angebot geklickt")])).expect("valid");
        let template = TagTemplate::default().with_names(names);
        assert_eq!(template.render_engagement("Zoom", "Demo", None, "Clicked Offer"), "[Zoom] [Demo] Angebot geklickt");
        assert_eq!(template.render_engagement("Zoom", "Demo", None, "Asked Question"), "[Zoom] [Demo] Asked Question");
        assert_eq!(template.render("Zoom", "Demo", StateLabel::Registered), "[Zoom] [Demo] Angemeldet");
    }

    #[test]
    fn two_states_with_one_word_are_refused() {
        let same = StateNames::new(Language::En, &overrides(&[("Fully Attended", "attended")]));
        assert_eq!(
            same,
            Err(StateNamesError::Collision {
                first: "Attended".to_owned(),
                second: "Fully Attended".to_owned(),
                word: "attended".to_owned(),
            })
        );
        let german = StateNames::new(Language::De, &overrides(&[("Cancelled", "Angemeldet")]));
        assert!(matches!(german, Err(StateNamesError::Collision { .. })));
    }

    #[test]
    fn the_date_placeholder_is_the_session_date_in_the_webinar_zone() {
        let template = TagTemplate::parse("[{tool}] [{webinar} {date}] {state}").expect("valid");
        assert!(template.uses_date());
        // 23:30 UTC on 1 March is already 2 March in Berlin and still 1 March in New York.
        let start = Some("2026-03-01T23:30:00Z");
        let berlin = session_date(start, Some("Europe/Berlin"));
        assert_eq!(
            template.render_session("Zoom", "Weekly Q&A", berlin, StateLabel::Attended),
            "[Zoom] [Weekly Q&A 2026-03-02] Attended"
        );
        assert_eq!(session_date(start, Some("America/New_York")), NaiveDate::from_ymd_opt(2026, 3, 1));
        assert_eq!(session_date(start, Some("GMT+2")), NaiveDate::from_ymd_opt(2026, 3, 2));
        assert_eq!(session_date(start, Some("UTC-05:00")), NaiveDate::from_ymd_opt(2026, 3, 1));
        assert_eq!(session_date(start, Some("+0530")), NaiveDate::from_ymd_opt(2026, 3, 2));
        assert_eq!(session_date(start, None), NaiveDate::from_ymd_opt(2026, 3, 1));
        assert_eq!(session_date(start, Some("Mars/Olympus")), NaiveDate::from_ymd_opt(2026, 3, 1));
        assert_eq!(session_date(None, Some("Europe/Berlin")), None);
        assert_eq!(session_date(Some("next week"), None), None);
        // No start known: the date is left out and the spaces around it collapse.
        assert_eq!(
            template.render_session("Zoom", "Weekly Q&A", None, StateLabel::Attended),
            "[Zoom] [Weekly Q&A] Attended"
        );
        let spaced = TagTemplate::parse("{webinar} {date} {state}").expect("valid");
        assert_eq!(spaced.render("Zoom", "Q&A", StateLabel::Buyer), "Q&A Buyer");
        assert!(!TagTemplate::default().uses_date());
    }

    #[test]
    fn placeholders_inside_a_webinar_name_stay_text() {
        let name = TagTemplate::default().render("Zoom", "How to use {state}", StateLabel::Buyer);
        assert_eq!(name, "[Zoom] [How to use {state}] Buyer");
    }

    #[test]
    fn a_long_webinar_name_is_shortened_and_the_states_stay_distinct() {
        let webinar = "Very long webinar title ".repeat(20);
        let template = TagTemplate::default()
            .with_names(StateNames::new(Language::De, &BTreeMap::new()).expect("built-in words are distinct"));
        let tags = preview(&template, "EverWebinar", &webinar, None);
        for tag in &tags {
            assert!(tag.chars().count() <= MAX_TAG_NAME_CHARS, "{tag}");
            assert!(tag.starts_with("[EverWebinar] [Very long webinar title"), "{tag}");
        }
        assert!(tags[6].ends_with("] Käufer"), "{}", tags[6]);
        assert!(all_distinct(&tags));
    }
}
