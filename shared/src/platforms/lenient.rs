//! Reading the platforms' loosely typed JSON: numbers as strings and strings as numbers,
//! `null` for absent, hours without a leading zero ("2021-03-25 9:00"), durations as
//! "0:42:10". Anything unreadable becomes `None`, never an error: one odd record must not stop
//! a pull.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A scalar as text: strings trimmed, numbers as written, booleans as `true`/`false`.
pub fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => {
            let trimmed = text.trim();
            (!trimmed.is_empty()).then(|| trimmed.to_owned())
        }
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// A whole number from a number or a numeric string (`1`, `"1"`, `"1.0"`, `true`).
pub fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => {
            number.as_i64().or_else(|| number.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
        }
        Value::String(text) => {
            let trimmed = text.trim();
            trimmed
                .parse::<i64>()
                .ok()
                .or_else(|| trimmed.parse::<f64>().ok().filter(|f| f.fract() == 0.0).map(|f| f as i64))
        }
        Value::Bool(flag) => Some(i64::from(*flag)),
        _ => None,
    }
}

/// serde: an optional string that may arrive as a number.
pub fn opt_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(text(&Value::deserialize(deserializer)?))
}

/// serde: a required id that may arrive as a number; missing or odd becomes empty.
pub fn id_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(text(&Value::deserialize(deserializer)?).unwrap_or_default())
}

/// serde: an optional whole number that may arrive as a string.
pub fn opt_integer<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    Ok(integer(&Value::deserialize(deserializer)?))
}

/// A length of time as whole seconds: "0:42:10" (hours unpadded or not), "42:10" (minutes and
/// seconds), or a plain number of minutes as the webhook fields send it ("42").
pub fn duration_seconds(raw: &str) -> Option<u64> {
    let trimmed = raw.trim();
    if trimmed.contains(':') {
        let parts: Vec<u64> = trimmed.split(':').map(|part| part.trim().parse::<u64>().ok()).collect::<Option<_>>()?;
        return match parts.as_slice() {
            [hours, minutes, seconds] => {
                hours.checked_mul(3600)?.checked_add(minutes.checked_mul(60)?)?.checked_add(*seconds)
            }
            [minutes, seconds] => minutes.checked_mul(60)?.checked_add(*seconds),
            _ => None,
        };
    }
    let minutes: f64 = trimmed.parse().ok()?;
    (0.0..1e9).contains(&minutes).then(|| (minutes * 60.0).round() as u64)
}

/// A local date and time as the Genesis API writes it: `YYYY-MM-DD H:MM[:SS]`, with or without a
/// zero before the hour, a `T`, or a date alone. RFC 3339 is accepted too.
pub fn naive_datetime(raw: &str) -> Option<NaiveDateTime> {
    let trimmed = raw.trim();
    if let Ok(moment) = DateTime::parse_from_rfc3339(trimmed) {
        return Some(moment.naive_utc());
    }
    let (date, time) = match trimmed.split_once([' ', 'T']) {
        Some((date, time)) => (date, Some(time.trim())),
        None => (trimmed, None),
    };
    let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    let time = match time {
        None | Some("") => NaiveTime::MIN,
        Some(time) => {
            let parts: Vec<u32> = time.split(':').map(|part| part.trim().parse::<u32>().ok()).collect::<Option<_>>()?;
            match parts.as_slice() {
                [hour, minute] => NaiveTime::from_hms_opt(*hour, *minute, 0)?,
                [hour, minute, second] => NaiveTime::from_hms_opt(*hour, *minute, *second)?,
                _ => return None,
            }
        }
    };
    Some(date.and_time(time))
}

/// A local time in `timezone` (IANA like `Europe/Berlin`, or `GMT+2`, `UTC-05:30`) as UTC. An
/// unknown or missing zone reads the time as UTC.
pub fn local_to_utc(raw: &str, timezone: Option<&str>) -> Option<DateTime<Utc>> {
    let trimmed = raw.trim();
    if let Ok(moment) = DateTime::parse_from_rfc3339(trimmed) {
        return Some(moment.with_timezone(&Utc));
    }
    let naive = naive_datetime(trimmed)?;
    let zone = timezone.map(str::trim).unwrap_or_default();
    if let Ok(tz) = zone.parse::<chrono_tz::Tz>() {
        return tz.from_local_datetime(&naive).earliest().map(|local| local.with_timezone(&Utc));
    }
    if let Some(offset) = utc_offset(zone) {
        return offset.from_local_datetime(&naive).earliest().map(|local| local.with_timezone(&Utc));
    }
    Some(Utc.from_utc_datetime(&naive))
}

/// `GMT+2`, `UTC-05:30`, `+0100`.
fn utc_offset(raw: &str) -> Option<FixedOffset> {
    let rest = raw.trim_start_matches("GMT").trim_start_matches("UTC").trim();
    let (sign, digits) = match rest.chars().next()? {
        '+' => (1, &rest[1..]),
        '-' => (-1, &rest[1..]),
        _ => return None,
    };
    let (hours, minutes) = match digits.split_once(':') {
        Some((hours, minutes)) => (hours.parse::<i32>().ok()?, minutes.parse::<i32>().ok()?),
        None if digits.len() == 4 => (digits[..2].parse().ok()?, digits[2..].parse().ok()?),
        None => (digits.parse().ok()?, 0),
    };
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_and_strings_are_interchangeable() {
        assert_eq!(text(&json!(45)), Some("45".into()));
        assert_eq!(text(&json!(" 45 ")), Some("45".into()));
        assert_eq!(text(&json!(null)), None);
        assert_eq!(text(&json!("")), None);
        assert_eq!(integer(&json!("1")), Some(1));
        assert_eq!(integer(&json!(4)), Some(4));
        assert_eq!(integer(&json!("2.0")), Some(2));
        assert_eq!(integer(&json!("x")), None);
    }

    #[test]
    fn durations_and_unpadded_hours_parse() {
        assert_eq!(duration_seconds("00:42:10"), Some(2530));
        assert_eq!(duration_seconds("0:42:10"), Some(2530));
        assert_eq!(duration_seconds("42:10"), Some(2530));
        assert_eq!(duration_seconds("42"), Some(2520));
        assert_eq!(duration_seconds("soon"), None);
        let expected = NaiveDate::from_ymd_opt(2021, 3, 25).unwrap().and_hms_opt(9, 0, 0).unwrap();
        assert_eq!(naive_datetime("2021-03-25 9:00"), Some(expected));
        assert_eq!(naive_datetime("2021-03-25 09:00:00"), Some(expected));
        assert_eq!(naive_datetime("2021-03-25T9:00"), Some(expected));
        assert_eq!(naive_datetime("25.03.2021"), None);
    }

    #[test]
    fn local_times_become_utc() {
        let berlin = local_to_utc("2026-02-10 19:00", Some("Europe/Berlin")).unwrap();
        assert_eq!(berlin.to_rfc3339(), "2026-02-10T18:00:00+00:00");
        let offset = local_to_utc("2026-02-10 19:00", Some("GMT+2")).unwrap();
        assert_eq!(offset.to_rfc3339(), "2026-02-10T17:00:00+00:00");
        let unknown = local_to_utc("2026-02-10 19:00", Some("Mars/Olympus")).unwrap();
        assert_eq!(unknown.to_rfc3339(), "2026-02-10T19:00:00+00:00");
    }
}
