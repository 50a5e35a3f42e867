//! Helpers shared by the source parsers: lenient reading of bodies that follow no published
//! schema (JSON or form, flat or nested, field-name aliases), loose values (dates, UTC offsets,
//! durations) and the small request readers every parser needs.
//!
//! Nothing here ever puts request content into an error message.

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};
use serde_json::Value;
use serde_json::error::Category;

use super::{RawRequest, Rejection, RejectionKind, decode};

/// A loosely shaped body, flattened to scalar values and resolved against an alias table.
///
/// Every scalar is keyed by its path (`{"webinar":{"id":1}}`, `webinar[id]=1` and
/// `webinar.id=1` all give `webinar`/`id`). A path belongs to at most one field: first its last
/// two segments joined (`webinar`+`id` = `webinar_id`) are looked up, then its last segment
/// alone. That is what lets `webinar.name` be the webinar's name while `registrant.name` is
/// the person's. (No `Debug`: the values include e-mail addresses.)
pub(super) struct LooseBody<F> {
    values: Vec<ResolvedValue<F>>,
}

struct ResolvedValue<F> {
    field: F,
    /// Position of the matching alias in the field's list: earlier aliases win.
    alias_rank: usize,
    /// Number of path segments: a shallower value wins over a deeper one of the same alias,
    /// so the registrant's top-level e-mail beats one buried in a sub-object.
    depth: usize,
    value: String,
}

/// One alias table row: a field and the key names that mean it, most specific first.
pub(super) type AliasRow<F> = (F, &'static [&'static str]);

/// Key names a person added per field (`BRIDGE_FIELD_ALIASES`). They are tried before the
/// built-in table and win over it, so a marketer can teach the bridge a new body shape.
pub(super) type ExtraAliases<F> = [(F, Vec<String>)];

/// Most names one field may get from configuration; built-in aliases rank after them.
pub(super) const MAX_EXTRA_ALIASES: usize = 32;

impl<F: Copy + PartialEq> LooseBody<F> {
    /// Reads a JSON object body. Anything but an object is malformed.
    #[cfg(test)]
    pub(super) fn from_json(body: &[u8], aliases: &[AliasRow<F>]) -> Result<Self, Rejection> {
        Self::from_json_with(body, &[], aliases)
    }

    /// [`LooseBody::from_json`] with configured aliases tried first.
    pub(super) fn from_json_with(
        body: &[u8],
        extra: &ExtraAliases<F>,
        aliases: &[AliasRow<F>],
    ) -> Result<Self, Rejection> {
        let document = decode::json(body)?;
        let Value::Object(object) = document else {
            return Err(Rejection::malformed(
                "The body must be a JSON object with the registrant's fields (for example {\"email\": ...}).",
            ));
        };
        let mut scalars = Vec::new();
        flatten_json_object(&object, &mut Vec::new(), &mut scalars);
        Ok(Self::resolve(scalars, extra, aliases))
    }

    /// Reads an `application/x-www-form-urlencoded` body, strictly (see `decode`): invalid
    /// UTF-8 and conflicting duplicate keys are refused, naming the field.
    /// Configured aliases are tried first.
    pub(super) fn from_form_with(
        body: &[u8],
        extra: &ExtraAliases<F>,
        aliases: &[AliasRow<F>],
    ) -> Result<Self, Rejection> {
        let pairs = decode::form_pairs(body, decode::FormPlace::Body)?;
        let scalars = pairs
            .into_iter()
            .filter_map(|(key, value)| {
                let path = split_key(&key)?;
                Some((path, value))
            })
            .collect();
        Ok(Self::resolve(scalars, extra, aliases))
    }

    /// The best value for `field`, trimmed and never empty.
    pub(super) fn get(&self, field: F) -> Option<&str> {
        self.values
            .iter()
            .filter(|resolved| resolved.field == field)
            .min_by_key(|resolved| (resolved.alias_rank, resolved.depth))
            .map(|resolved| resolved.value.as_str())
    }

    fn resolve(scalars: Vec<(Vec<String>, String)>, extra: &ExtraAliases<F>, aliases: &[AliasRow<F>]) -> Self {
        let values = scalars
            .into_iter()
            .filter_map(|(path, value)| {
                let value = value.trim();
                // An empty value means "not provided": it must neither win nor erase anything.
                if value.is_empty() {
                    return None;
                }
                let (field, alias_rank) = resolve_path(&path, extra, aliases)?;
                Some(ResolvedValue { field, alias_rank, depth: path.len(), value: value.to_owned() })
            })
            .collect();
        Self { values }
    }
}

/// The field a path means, with the rank of the alias that matched.
fn resolve_path<F: Copy>(path: &[String], extra: &ExtraAliases<F>, aliases: &[AliasRow<F>]) -> Option<(F, usize)> {
    let last = path.last()?;
    let joined = path.len().checked_sub(2).and_then(|parent| path.get(parent)).map(|parent| format!("{parent}{last}"));
    let candidates = || joined.iter().chain(std::iter::once(last));
    // A configured alias matches the whole key path too (`Email Address` or `contact.mail`).
    let whole: String = path.concat();
    std::iter::once(&whole).chain(candidates()).find_map(|candidate| lookup_extra(candidate, extra)).or_else(|| {
        candidates()
            .find_map(|candidate| lookup_alias(candidate, aliases))
            .map(|(field, rank)| (field, rank + MAX_EXTRA_ALIASES))
    })
}

fn lookup_extra<F: Copy>(normalized_key: &str, extra: &ExtraAliases<F>) -> Option<(F, usize)> {
    extra.iter().find_map(|(field, names)| {
        names.iter().position(|name| key_matches(normalized_key, name)).map(|rank| (*field, rank))
    })
}

fn lookup_alias<F: Copy>(normalized_key: &str, aliases: &[AliasRow<F>]) -> Option<(F, usize)> {
    aliases.iter().find_map(|(field, names)| {
        names.iter().position(|name| key_matches(normalized_key, name)).map(|rank| (*field, rank))
    })
}

/// Key names compare by their letters and digits only, case-insensitively, so `first_name`,
/// `firstName`, `First Name` and `first-name` are the same key.
pub(super) fn normalize_key(raw: &str) -> String {
    raw.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

/// Whether a normalized key is `name` once that is normalized too, without allocating (this
/// runs for every key against every alias).
pub(super) fn key_matches(normalized_key: &str, name: &str) -> bool {
    normalized_key.chars().eq(name.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase))
}

/// Splits `registrant[email]`, `webinar.name` or `a[b].c` into normalized segments. `None` for
/// keys inside a list (`items[0][email]`): lists carry presenters or custom answers, never the
/// registrant, and taking a value from one would pick the wrong person.
fn split_key(key: &str) -> Option<Vec<String>> {
    let segments: Vec<String> =
        key.split(['[', ']', '.']).filter(|segment| !segment.trim().is_empty()).map(normalize_key).collect();
    let inside_list = segments.iter().any(|segment| segment.chars().all(|c| c.is_ascii_digit()));
    (!segments.is_empty() && !inside_list).then_some(segments)
}

fn flatten_json_object(
    object: &serde_json::Map<String, Value>,
    prefix: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, String)>,
) {
    for (key, value) in object {
        let Some(key_segments) = split_key(key) else { continue };
        let depth_before = prefix.len();
        prefix.extend(key_segments);
        match value {
            // serde_json limits nesting to 128 levels, so this recursion is bounded.
            Value::Object(inner) => flatten_json_object(inner, prefix, out),
            // See `split_key` for why lists are skipped.
            Value::Array(_) | Value::Null => {}
            scalar => {
                if let Some(text) = scalar_text(scalar) {
                    out.push((prefix.clone(), text));
                }
            }
        }
        prefix.truncate(depth_before);
    }
}

/// A JSON scalar as text: platforms send numbers as strings and strings as numbers.
pub(super) fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number_text(number)),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// Integers print as integers (ids such as 85012345678 must not become `8.5e10`).
pub(super) fn number_text(number: &serde_json::Number) -> String {
    if let Some(unsigned) = number.as_u64() {
        unsigned.to_string()
    } else if let Some(signed) = number.as_i64() {
        signed.to_string()
    } else {
        number.to_string()
    }
}

/// A 400 for a body that is not JSON, with where it broke but none of its content.
pub(super) fn json_syntax_rejection(error: &serde_json::Error) -> Rejection {
    let problem = match error.classify() {
        Category::Eof => "it ends before the JSON is complete",
        Category::Syntax => "it has a syntax error",
        Category::Data | Category::Io => "it could not be read as JSON",
    };
    Rejection::new(
        RejectionKind::MalformedBody,
        "malformed_json",
        format!(
            "The body is not valid JSON: {problem} at line {}, column {}. Send UTF-8 JSON exactly as the schema describes.",
            error.line(),
            error.column()
        ),
    )
}

/// Some tools prefix UTF-8 JSON with a byte-order mark, which serde_json refuses.
pub(super) fn strip_utf8_bom(body: &[u8]) -> &[u8] {
    body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body)
}

/// A 415 unless the body is declared as JSON (parameters such as `charset` are fine).
pub(super) fn require_json_content_type(request: &RawRequest) -> Result<(), Rejection> {
    if request.media_type().as_deref() == Some("application/json") {
        return Ok(());
    }
    Err(Rejection::new(
        RejectionKind::UnsupportedMediaType,
        "unsupported_media_type",
        "Send the body as JSON with the header Content-Type: application/json.",
    ))
}

/// The token of `Authorization: Bearer <token>`. A bare `Authorization: <token>` is accepted
/// too, because some tools put the token there without the scheme.
pub(super) fn bearer_token(request: &RawRequest) -> Option<&str> {
    let value = request.header("authorization")?.trim();
    let token = match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => value,
    };
    (!token.is_empty()).then_some(token)
}

/// Whether a unix-seconds timestamp header is within `tolerance_seconds` of `now`, either way.
pub(super) fn timestamp_is_fresh(unix_seconds: i64, now: DateTime<Utc>, tolerance_seconds: u64) -> bool {
    now.timestamp().abs_diff(unix_seconds) <= tolerance_seconds
}

/// A unix-seconds header value: ASCII digits only (no sign, no fraction).
pub(super) fn parse_unix_seconds(raw: &str) -> Option<i64> {
    let trimmed = raw.trim();
    if trimmed.is_empty() || !trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    trimmed.parse().ok()
}

/// Parses the date formats webinar tools send: RFC 3339, or a local `2026-02-10 19:00`,
/// `2026-02-10 9:00`, `2026-02-10 19:00:00`, `2026-02-10 7:00 PM` (also with `T`), read in
/// `timezone` when that is a UTC offset.
///
/// IANA names such as `Europe/Berlin` would need a timezone database, which the bridge does
/// not ship (no extra dependency); they are treated as unknown and the time is read as UTC.
pub(super) fn parse_loose_datetime(raw: &str, timezone: Option<&str>) -> Option<DateTime<Utc>> {
    const LOCAL_FORMATS: [&str; 8] = [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %I:%M %p",
        "%Y-%m-%d %I:%M%p",
        "%Y-%m-%d %I:%M:%S %p",
        "%Y-%m-%d %H:%M:%S%.f",
    ];
    let trimmed = raw.trim();
    if let Ok(with_offset) = DateTime::parse_from_rfc3339(trimmed) {
        return Some(with_offset.with_timezone(&Utc));
    }
    let local = LOCAL_FORMATS.iter().find_map(|format| NaiveDateTime::parse_from_str(trimmed, format).ok())?;
    // Offsets first: `GMT+2` means UTC+2 as platforms write it, while the IANA name `Etc/GMT+2`
    // means the opposite. An IANA zone (`Europe/Berlin`) brings its daylight-saving rules.
    // Unknown or missing zones fall back to UTC.
    if let Some(offset) = timezone.and_then(parse_utc_offset) {
        return offset.from_local_datetime(&local).single().map(|time| time.with_timezone(&Utc));
    }
    match timezone.and_then(|name| name.trim().parse::<chrono_tz::Tz>().ok()) {
        // In the autumn overlap the earlier instant is the one the session was scheduled for.
        Some(zone) => zone.from_local_datetime(&local).earliest().map(|time| time.with_timezone(&Utc)),
        None => Some(local.and_utc()),
    }
}

/// `GMT+2`, `UTC-05:00`, `GMT+5:30`, `+0200`, `UTC`, `Z` as a fixed offset. `None` for anything
/// else, including IANA names (handled by the caller).
pub(super) fn parse_utc_offset(raw: &str) -> Option<FixedOffset> {
    let trimmed = raw.trim();
    let upper = trimmed.to_ascii_uppercase();
    let rest = upper.strip_prefix("GMT").or_else(|| upper.strip_prefix("UTC")).unwrap_or(&upper).trim();
    if rest.is_empty() || rest == "Z" {
        return FixedOffset::east_opt(0);
    }
    let (sign, magnitude) = match rest.as_bytes().first()? {
        b'+' => (1, &rest[1..]),
        b'-' => (-1, &rest[1..]),
        _ => return None,
    };
    let (hours, minutes) = split_hours_minutes(magnitude.trim())?;
    if hours > 14 || minutes > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

/// `2`, `02`, `2:30`, `02:30` or `0230` as (hours, minutes).
fn split_hours_minutes(raw: &str) -> Option<(i32, i32)> {
    let all_digits = |text: &str| !text.is_empty() && text.len() <= 2 && text.bytes().all(|b| b.is_ascii_digit());
    let (hours, minutes) = match raw.split_once(':') {
        Some((hours, minutes)) => (hours, minutes),
        None if raw.len() == 4 => raw.split_at(2),
        None => (raw, "0"),
    };
    if !all_digits(hours) || !all_digits(minutes) {
        return None;
    }
    Some((hours.parse().ok()?, minutes.parse().ok()?))
}

/// Minutes from `00:42:10` (h:m:s), `42:10` (m:s, as video players print it) or a plain
/// number of minutes (`42`, `"42.5"`). Seconds are dropped. `None` when it is not a duration.
pub(super) fn parse_minutes(raw: &str) -> Option<u32> {
    let trimmed = raw.trim();
    if trimmed.contains(':') {
        let parts: Vec<u64> = trimmed.split(':').map(|part| part.trim().parse::<u64>().ok()).collect::<Option<_>>()?;
        let minutes = match parts.as_slice() {
            [hours, minutes, _seconds] => hours.checked_mul(60)?.checked_add(*minutes)?,
            [minutes, _seconds] => *minutes,
            _ => return None,
        };
        return u32::try_from(minutes).ok();
    }
    let number: f64 = trimmed.parse().ok()?;
    (number.is_finite() && number >= 0.0 && number <= f64::from(u32::MAX)).then(|| number.floor() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Field {
        Email,
        FullName,
        WebinarId,
        WebinarName,
    }

    const ALIASES: &[AliasRow<Field>] = &[
        (Field::Email, &["email"]),
        (Field::FullName, &["name"]),
        (Field::WebinarId, &["webinar_id", "webinar_hash"]),
        (Field::WebinarName, &["webinar_name", "webinar"]),
    ];

    #[test]
    fn local_times_follow_their_zone_including_daylight_saving() {
        let at = |raw, zone| parse_loose_datetime(raw, Some(zone)).map(|t| t.to_rfc3339());
        assert_eq!(at("2026-02-10 19:00", "Europe/Berlin").as_deref(), Some("2026-02-10T18:00:00+00:00"));
        assert_eq!(at("2026-07-10 19:00", "Europe/Berlin").as_deref(), Some("2026-07-10T17:00:00+00:00"));
        assert_eq!(at("2026-07-10 9:00", "America/New_York").as_deref(), Some("2026-07-10T13:00:00+00:00"));
        assert_eq!(at("2026-07-10 19:00", "GMT+2").as_deref(), Some("2026-07-10T17:00:00+00:00"));
        assert_eq!(at("2026-07-10 19:00", "Mars/Olympus").as_deref(), Some("2026-07-10T19:00:00+00:00"));
        // The hour that does not exist when clocks go forward has no instant.
        assert_eq!(at("2026-03-29 02:30", "Europe/Berlin"), None);
    }

    #[test]
    fn nested_json_resolves_by_parent_and_key() {
        let body =
            br#"{"registrant":{"email":"a@example.com","name":"Erika Muster"},"webinar":{"id":7,"name":"Demo"}}"#;
        let loose = LooseBody::from_json(body, ALIASES).unwrap();
        assert_eq!(loose.get(Field::Email), Some("a@example.com"));
        assert_eq!(loose.get(Field::FullName), Some("Erika Muster"));
        assert_eq!(loose.get(Field::WebinarId), Some("7"));
        assert_eq!(loose.get(Field::WebinarName), Some("Demo"));
    }

    #[test]
    fn form_keys_in_brackets_and_dots_resolve_like_json() {
        let body = b"registrant%5Bemail%5D=a%40example.com&webinar.name=Demo&webinar%5Bid%5D=7&items%5B0%5D%5Bemail%5D=b%40x.de";
        let loose = LooseBody::from_form_with(body, &[], ALIASES).unwrap();
        assert_eq!(loose.get(Field::Email), Some("a@example.com"));
        assert_eq!(loose.get(Field::WebinarName), Some("Demo"));
        assert_eq!(loose.get(Field::WebinarId), Some("7"));
    }

    #[test]
    fn earlier_alias_then_shallower_path_wins_and_empty_values_do_not_count() {
        let body = br#"{"webinar_hash":"abc","webinar_id":"","x":{"webinar_id":9},"email":"top@example.com","y":{"email":"deep@example.com"}}"#;
        let loose = LooseBody::from_json(body, ALIASES).unwrap();
        assert_eq!(loose.get(Field::WebinarId), Some("9"));
        assert_eq!(loose.get(Field::Email), Some("top@example.com"));
    }

    #[test]
    fn lists_are_never_read() {
        let body = br#"{"presenters":[{"email":"host@example.com"}]}"#;
        assert_eq!(LooseBody::from_json(body, ALIASES).unwrap().get(Field::Email), None);
    }

    #[test]
    fn keys_compare_without_case_or_separators() {
        assert_eq!(normalize_key("First-Name"), normalize_key("first_name"));
        assert_eq!(normalize_key("firstName"), "firstname");
    }

    #[test]
    fn loose_dates_parse_in_an_offset_or_utc() {
        let expect = |raw: &str, tz: Option<&str>, utc: &str| {
            assert_eq!(parse_loose_datetime(raw, tz), Some(utc.parse().unwrap()), "{raw} {tz:?}");
        };
        expect("2026-02-10 19:00", None, "2026-02-10T19:00:00Z");
        expect("2026-02-10 9:00", Some("GMT+2"), "2026-02-10T07:00:00Z");
        expect("2026-02-10 19:00:00", Some("UTC-05:00"), "2026-02-11T00:00:00Z");
        expect("2026-02-10T19:00:00+01:00", Some("GMT+5"), "2026-02-10T18:00:00Z");
        expect("2026-02-10 7:00 PM", Some("GMT+5:30"), "2026-02-10T13:30:00Z");
        expect("2026-02-10 19:00", Some("Europe/Berlin"), "2026-02-10T18:00:00Z");
        expect("2026-02-10 19:00", Some("Not/AZone"), "2026-02-10T19:00:00Z");
        assert_eq!(parse_loose_datetime("next tuesday", None), None);
        assert_eq!(parse_loose_datetime("2026-02-10", None), None);
    }

    #[test]
    fn offsets_parse_in_common_spellings() {
        for (raw, seconds) in [("GMT+2", 7200), ("UTC-05:00", -18000), ("gmt+5:30", 19800), ("+0200", 7200), ("UTC", 0)]
        {
            assert_eq!(parse_utc_offset(raw).map(|o| o.local_minus_utc()), Some(seconds), "{raw}");
        }
        for raw in ["Europe/Berlin", "GMT+25", "+", "GMT+2:75", "EST"] {
            assert_eq!(parse_utc_offset(raw), None, "{raw}");
        }
    }

    #[test]
    fn minutes_parse_from_clock_strings_and_numbers() {
        for (raw, minutes) in [("00:42:10", 42), ("01:05:00", 65), ("42:10", 42), ("42", 42), ("42.9", 42)] {
            assert_eq!(parse_minutes(raw), Some(minutes), "{raw}");
        }
        for raw in ["", "-3", "abc", "1:2:3:4", "NaN", "99999999999"] {
            assert_eq!(parse_minutes(raw), None, "{raw}");
        }
    }

    #[test]
    fn unix_seconds_must_be_plain_digits() {
        assert_eq!(parse_unix_seconds(" 1767088800 "), Some(1_767_088_800));
        for raw in ["", "-1", "1e9", "12a", "99999999999999999999"] {
            assert_eq!(parse_unix_seconds(raw), None, "{raw}");
        }
    }
}
