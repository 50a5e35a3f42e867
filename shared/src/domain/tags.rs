//! Tag names from `BRIDGE_TAG_TEMPLATE` (DESIGN 4), default `[{tool}] [{webinar}] {state}`.

use super::state::StateLabel;

pub const DEFAULT_TAG_TEMPLATE: &str = "[{tool}] [{webinar}] {state}";

/// KlickTipp shows tag names in lists; longer names are truncated in its UI and are a sign of a
/// template or webinar name gone wrong.
const MAX_TAG_NAME_CHARS: usize = 250;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagTemplate(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagTemplateError {
    #[error("must contain {{state}}, otherwise every state of a webinar would get the same tag")]
    MissingState,
    #[error("must contain {{webinar}}, otherwise every webinar would share the same tags")]
    MissingWebinar,
    #[error("has an unknown placeholder {0:?}; the placeholders are {{tool}}, {{webinar}} and {{state}}")]
    UnknownPlaceholder(String),
}

impl TagTemplate {
    pub fn parse(raw: &str) -> Result<Self, TagTemplateError> {
        let mut rest = raw;
        while let Some(open) = rest.find('{') {
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| TagTemplateError::UnknownPlaceholder(after.chars().take(20).collect()))?;
            let name = &after[..close];
            if !matches!(name, "tool" | "webinar" | "state") {
                return Err(TagTemplateError::UnknownPlaceholder(name.chars().take(20).collect()));
            }
            rest = &after[close + 1..];
        }
        if !raw.contains("{state}") {
            return Err(TagTemplateError::MissingState);
        }
        if !raw.contains("{webinar}") {
            return Err(TagTemplateError::MissingWebinar);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The tag for one state of one webinar. Whitespace runs collapse so names compare reliably.
    pub fn render(&self, tool: &str, webinar: &str, state: StateLabel) -> String {
        let name = self
            .0
            .replace("{tool}", tool.trim())
            .replace("{webinar}", webinar.trim())
            .replace("{state}", state.as_str());
        let collapsed = name.split_whitespace().collect::<Vec<_>>().join(" ");
        collapsed.chars().take(MAX_TAG_NAME_CHARS).collect()
    }
}

impl Default for TagTemplate {
    fn default() -> Self {
        Self(DEFAULT_TAG_TEMPLATE.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn custom_templates_are_validated() {
        assert!(TagTemplate::parse("{webinar} - {state}").is_ok());
        assert_eq!(TagTemplate::parse("{webinar}"), Err(TagTemplateError::MissingState));
        assert_eq!(TagTemplate::parse("{tool} {state}"), Err(TagTemplateError::MissingWebinar));
        assert!(matches!(TagTemplate::parse("{webinar} {state} {date}"), Err(TagTemplateError::UnknownPlaceholder(_))));
        assert!(matches!(TagTemplate::parse("{webinar} {state"), Err(TagTemplateError::UnknownPlaceholder(_))));
    }

    #[test]
    fn whitespace_in_names_is_collapsed() {
        let name = TagTemplate::default().render(" Zoom ", "Demo   Webinar\n", StateLabel::Buyer);
        assert_eq!(name, "[Zoom] [Demo Webinar] Buyer");
    }
}
