//! Configuration from the environment (DESIGN 8): the same names for the Lambdas, `serve` and
//! `simulate`. Invalid configuration fails at start with one line naming the variable.

use crate::Secret;
use crate::domain::{DEFAULT_FULL_ATTENDANCE_PERCENT, FieldMap, Language, Settings, StateNames, TagTemplate};
use crate::domain::{WebinarSetting, parse_seed};
use crate::klicktipp::{DEFAULT_BASE_URL, DEFAULT_RATE_PER_SECOND, KlickTippAuth, KlickTippConfig};
use crate::sources::SourceSecrets;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_RETENTION_DAYS: u32 = 30;
pub const DEFAULT_DB_PATH: &str = "./webinar-bridge.db";

/// A configuration problem, printed as `VARIABLE: what is wrong`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

fn problem(variable: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError { variable, problem: problem.into() }
}

/// How the bridge writes to KlickTipp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KlickTippMode {
    /// Management API: contacts, fields and all state tags.
    Management,
    /// Only a Listbuilding API key: registrations are signed in, other kinds are skipped.
    Listbuilding,
    /// No credentials at all: `serve` and `simulate` run the in-process simulator.
    Unconfigured,
}

#[derive(Debug, Clone)]
pub struct KlickTippSettings {
    pub base_url: String,
    pub auth: KlickTippAuth,
    /// Opt-in process for new contacts; `None` = the account's default double opt-in.
    pub listid: Option<u64>,
    pub listbuilding_apikey: Option<Secret>,
    /// The account-wide cap in calls per second.
    pub rps: f64,
}

impl KlickTippSettings {
    pub fn mode(&self) -> KlickTippMode {
        match (&self.auth, &self.listbuilding_apikey) {
            (KlickTippAuth::None, None) => KlickTippMode::Unconfigured,
            (KlickTippAuth::None, Some(_)) => KlickTippMode::Listbuilding,
            _ => KlickTippMode::Management,
        }
    }

    /// Client configuration for one process that owns `share` of the account's rate.
    pub fn client_config(&self, instances: u32) -> KlickTippConfig {
        let mut config = KlickTippConfig::new(self.base_url.clone(), self.auth.clone());
        config.listbuilding_apikey = self.listbuilding_apikey.clone();
        config.rate_per_second = self.rps / f64::from(instances.max(1));
        config
    }
}

#[derive(Debug, Clone)]
pub struct BridgeConfig {
    pub klicktipp: KlickTippSettings,
    pub settings: Settings,
    pub retention: Duration,
    pub secrets: SourceSecrets,
    pub events_queue_url: Option<String>,
    pub events_table: Option<String>,
    pub contacts_table: Option<String>,
    pub db_path: PathBuf,
    /// Consumer instances sharing the rate cap (`ScalingConfig.MaximumConcurrency`).
    pub consumer_concurrency: u32,
    /// The events queue's dead-letter queue: where the consumer puts messages it cannot read.
    pub dead_letter_queue_url: Option<String>,
    /// Per-webinar settings from `BRIDGE_WEBINAR_SETTINGS` (inline JSON or a file path), written
    /// to the settings store at start: each entry replaces the stored one of its key.
    pub webinar_settings_seed: Vec<WebinarSetting>,
    /// `BRIDGE_TAGS_AHEAD` (`on` default, `off`): create a webinar's state tags when it is first seen.
    pub tags_ahead: bool,
    /// Body key names a marketer added for WebinarJam/EverWebinar fields (`BRIDGE_FIELD_ALIASES`).
    pub field_aliases: crate::sources::FieldAliases,
    /// How many parked webhook bodies may be kept (`BRIDGE_PARKED_MAX_COUNT`, `BRIDGE_PARKED_MAX_BYTES`).
    pub parked_cap: crate::ports::ParkCap,
    /// The DynamoDB table of contact histories (DESIGN 12); unset, the AWS functions keep none.
    pub history_table: Option<String>,
}

/// The process environment as read by [`BridgeConfig::from_vars`]: empty values count as unset.
struct Vars<'a>(&'a HashMap<String, String>);

impl Vars<'_> {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()).map(str::to_owned)
    }

    fn secret(&self, name: &str) -> Option<Secret> {
        self.get(name).map(Secret::new)
    }

    /// `name` parsed by `parse`, `default` when unset, else the problem `hint` describes.
    fn parsed<T>(
        &self,
        name: &'static str,
        default: T,
        hint: &'static str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<T, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => parse(&raw).ok_or_else(|| problem(name, hint)),
        }
    }
}

impl BridgeConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(&std::env::vars().collect())
    }

    /// Reads the variables; empty values count as unset.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let vars = Vars(vars);
        Ok(Self {
            klicktipp: klicktipp_settings(&vars)?,
            settings: engine_settings(&vars)?,
            retention: retention(&vars)?,
            secrets: source_secrets(&vars)?,
            events_queue_url: vars.get("EVENTS_QUEUE_URL"),
            events_table: vars.get("EVENTS_TABLE"),
            contacts_table: vars.get("CONTACTS_TABLE"),
            db_path: PathBuf::from(vars.get("BRIDGE_DB").unwrap_or_else(|| DEFAULT_DB_PATH.to_owned())),
            consumer_concurrency: vars.parsed(
                "BRIDGE_CONSUMER_CONCURRENCY",
                2,
                "must be the consumer's maximum concurrency, a whole number from 1 to 1000",
                |raw| raw.parse::<u32>().ok().filter(|n| (1..=1000).contains(n)),
            )?,
            dead_letter_queue_url: vars.get("DEAD_LETTER_QUEUE_URL"),
            webinar_settings_seed: webinar_settings_seed(&vars)?,
            tags_ahead: vars.parsed("BRIDGE_TAGS_AHEAD", true, "must be on or off", |raw| {
                match raw.to_ascii_lowercase().as_str() {
                    "on" | "true" | "1" | "yes" => Some(true),
                    "off" | "false" | "0" | "no" => Some(false),
                    _ => None,
                }
            })?,
            field_aliases: field_aliases(&vars)?,
            parked_cap: parked_cap(&vars)?,
            history_table: vars.get("HISTORY_TABLE"),
        })
    }

    /// Names a variable the AWS functions need but did not get.
    pub fn require<'a>(value: &'a Option<String>, variable: &'static str) -> Result<&'a str, ConfigError> {
        value.as_deref().ok_or_else(|| problem(variable, "is required when running on AWS (the SAM template sets it)"))
    }
}

/// `BRIDGE_WEBINAR_SETTINGS`: the JSON itself (starting with `{` or `[`) or the path of a file
/// holding it; see [`crate::domain::parse_seed`] for the format.
fn webinar_settings_seed(vars: &Vars<'_>) -> Result<Vec<WebinarSetting>, ConfigError> {
    const VARIABLE: &str = "BRIDGE_WEBINAR_SETTINGS";
    let Some(raw) = vars.get(VARIABLE) else { return Ok(Vec::new()) };
    let json = if raw.starts_with('{') || raw.starts_with('[') {
        raw
    } else {
        std::fs::read_to_string(&raw).map_err(|error| {
            problem(VARIABLE, format!("cannot read the file {raw:?} ({error}); give a path or the JSON itself"))
        })?
    };
    parse_seed(&json).map_err(|error| problem(VARIABLE, error.to_string()))
}

/// `BRIDGE_LANGUAGE` (`en` default, `de`) and `BRIDGE_STATE_NAMES` (JSON: English state name ->
/// word, over either language): the state words in tag names (DESIGN 13).
pub fn state_names(vars: &HashMap<String, String>) -> Result<StateNames, ConfigError> {
    let get = |name: &str| vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let language = match get("BRIDGE_LANGUAGE") {
        None => Language::default(),
        Some(raw) => Language::parse(raw)
            .ok_or_else(|| problem("BRIDGE_LANGUAGE", format!("must be {}, not {raw:?}", Language::CODES)))?,
    };
    let overrides: BTreeMap<String, String> = match get("BRIDGE_STATE_NAMES") {
        None => BTreeMap::new(),
        Some(raw) => serde_json::from_str(raw).map_err(|_| {
            problem(
                "BRIDGE_STATE_NAMES",
                r#"must be a JSON object of English state name -> word, e.g. {"Buyer":"Kunde"}"#,
            )
        })?,
    };
    StateNames::new(language, &overrides).map_err(|error| problem("BRIDGE_STATE_NAMES", error.to_string()))
}

/// Where KlickTipp is, how to sign in, which opt-in process, and the account's rate.
fn klicktipp_settings(vars: &Vars<'_>) -> Result<KlickTippSettings, ConfigError> {
    let base_url = vars.get("KLICKTIPP_BASE_URL").unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
    if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
        return Err(problem("KLICKTIPP_BASE_URL", "must start with https:// (or http:// for a local simulator)"));
    }
    let auth = klicktipp_auth(vars)?;
    let listid = vars.parsed(
        "KLICKTIPP_LISTID",
        None,
        "must be the numeric id of an opt-in process (see `webinar-bridge klicktipp optins`)",
        |raw| raw.parse::<u64>().ok().map(Some),
    )?;
    let rps = vars.parsed(
        "BRIDGE_KLICKTIPP_RPS",
        DEFAULT_RATE_PER_SECOND,
        "must be a number of calls per second between 0 and 1000, e.g. 10",
        |raw| raw.parse::<f64>().ok().filter(|rps| rps.is_finite() && *rps > 0.0 && *rps <= 1000.0),
    )?;
    Ok(KlickTippSettings {
        base_url,
        auth,
        listid,
        listbuilding_apikey: vars.secret("KLICKTIPP_LISTBUILDING_APIKEY"),
        rps,
    })
}

/// Partner keys, a session login, or none; a half-given pair is a problem.
fn klicktipp_auth(vars: &Vars<'_>) -> Result<KlickTippAuth, ConfigError> {
    let auth = match (
        vars.get("KLICKTIPP_USERNAME"),
        vars.secret("KLICKTIPP_PASSWORD"),
        vars.secret("KLICKTIPP_DEVELOPER_KEY"),
        vars.secret("KLICKTIPP_CUSTOMER_KEY"),
    ) {
        (Some(username), _, Some(developer_key), Some(customer_key)) => {
            if hex::decode(developer_key.expose()).is_err() {
                return Err(problem(
                    "KLICKTIPP_DEVELOPER_KEY",
                    "must be the hexadecimal developer key KlickTipp issued",
                ));
            }
            KlickTippAuth::Partner { username, developer_key, customer_key }
        }
        (_, _, Some(_), None) => {
            return Err(problem("KLICKTIPP_CUSTOMER_KEY", "is required together with KLICKTIPP_DEVELOPER_KEY"));
        }
        (_, _, None, Some(_)) => {
            return Err(problem("KLICKTIPP_DEVELOPER_KEY", "is required together with KLICKTIPP_CUSTOMER_KEY"));
        }
        (None, _, Some(_), Some(_)) => {
            return Err(problem("KLICKTIPP_USERNAME", "is required for partner authentication (the X-Un header)"));
        }
        (Some(username), Some(password), None, None) => KlickTippAuth::Session { username, password },
        (Some(_), None, None, None) => {
            return Err(problem("KLICKTIPP_PASSWORD", "is required together with KLICKTIPP_USERNAME"));
        }
        (None, Some(_), None, None) => {
            return Err(problem("KLICKTIPP_USERNAME", "is required together with KLICKTIPP_PASSWORD"));
        }
        (None, None, None, None) => KlickTippAuth::None,
    };
    Ok(auth)
}

/// The user's choices that shape what KlickTipp shows: tag names, field map, attendance.
fn engine_settings(vars: &Vars<'_>) -> Result<Settings, ConfigError> {
    let tag_template = match vars.get("BRIDGE_TAG_TEMPLATE") {
        None => TagTemplate::default(),
        Some(raw) => TagTemplate::parse(&raw).map_err(|error| problem("BRIDGE_TAG_TEMPLATE", error.to_string()))?,
    };
    let tag_template = tag_template.with_names(state_names(vars.0)?);
    let field_map = match vars.get("BRIDGE_FIELD_MAP") {
        None => FieldMap::default(),
        Some(raw) => FieldMap::parse_json(&raw).map_err(|error| problem("BRIDGE_FIELD_MAP", error.to_string()))?,
    };
    let full_attendance_percent = vars.parsed(
        "BRIDGE_FULL_ATTENDANCE_PERCENT",
        DEFAULT_FULL_ATTENDANCE_PERCENT,
        "must be a whole percentage from 1 to 100, e.g. 80",
        |raw| raw.parse::<u8>().ok().filter(|percent| (1..=100).contains(percent)),
    )?;
    Ok(Settings { tag_template, field_map, full_attendance_percent })
}

/// `BRIDGE_FIELD_ALIASES`: field name -> extra body keys, checked at start.
fn field_aliases(vars: &Vars<'_>) -> Result<crate::sources::FieldAliases, ConfigError> {
    match vars.get("BRIDGE_FIELD_ALIASES") {
        None => Ok(crate::sources::FieldAliases::default()),
        Some(raw) => {
            crate::sources::FieldAliases::parse_json(&raw).map_err(|error| problem("BRIDGE_FIELD_ALIASES", error))
        }
    }
}

/// The parked store's cap: bodies and bytes.
fn parked_cap(vars: &Vars<'_>) -> Result<crate::ports::ParkCap, ConfigError> {
    let default = crate::ports::ParkCap::default();
    Ok(crate::ports::ParkCap {
        max_count: vars.parsed(
            "BRIDGE_PARKED_MAX_COUNT",
            default.max_count,
            "must be how many parked webhook bodies to keep, a whole number from 1 to 1000000",
            |raw| raw.parse::<usize>().ok().filter(|n| (1..=1_000_000).contains(n)),
        )?,
        max_bytes: vars.parsed(
            "BRIDGE_PARKED_MAX_BYTES",
            default.max_bytes,
            "must be how many bytes of parked webhook bodies to keep, from 262144 (one body) to 17179869184",
            |raw| raw.parse::<usize>().ok().filter(|n| (262_144..=17_179_869_184).contains(n)),
        )?,
    })
}

/// How long event records are kept.
fn retention(vars: &Vars<'_>) -> Result<Duration, ConfigError> {
    let days = vars.parsed(
        "BRIDGE_EVENT_RETENTION_DAYS",
        DEFAULT_RETENTION_DAYS,
        "must be a number of days from 1 to 3650, e.g. 30",
        |raw| raw.parse::<u32>().ok().filter(|days| (1..=3650).contains(days)),
    )?;
    Ok(Duration::from_secs(u64::from(days) * 86_400))
}

/// The webhook secrets of each source; a generic secret must be usable.
fn source_secrets(vars: &Vars<'_>) -> Result<SourceSecrets, ConfigError> {
    let generic = vars.secret("BRIDGE_GENERIC_SECRET");
    if let Some(generic) = &generic {
        validate_standard_webhooks_secret(generic)?;
    }
    Ok(SourceSecrets {
        webinarjam: vars.secret("BRIDGE_WEBINARJAM_SECRET"),
        everwebinar: vars.secret("BRIDGE_EVERWEBINAR_SECRET"),
        zoom: vars.secret("BRIDGE_ZOOM_SECRET_TOKEN"),
        generic,
    })
}

/// A `whsec_` secret must carry base64 key bytes; a plain secret is used as a bearer token and
/// as raw HMAC key bytes.
fn validate_standard_webhooks_secret(secret: &Secret) -> Result<(), ConfigError> {
    use base64::Engine;
    if let Some(encoded) = secret.expose().strip_prefix("whsec_") {
        let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).map_err(|_| {
            problem("BRIDGE_GENERIC_SECRET", "a whsec_ secret must be followed by base64 (Standard Webhooks)")
        })?;
        if decoded.len() < 24 || decoded.len() > 64 {
            return Err(problem(
                "BRIDGE_GENERIC_SECRET",
                "a whsec_ secret must decode to 24 to 64 bytes (Standard Webhooks)",
            ));
        }
    } else if secret.expose().len() < 16 {
        return Err(problem(
            "BRIDGE_GENERIC_SECRET",
            "must be at least 16 characters (or a whsec_ Standard Webhooks secret)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::StateLabel;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_without_any_variable() {
        let config = BridgeConfig::from_vars(&HashMap::new()).unwrap();
        assert_eq!(config.klicktipp.mode(), KlickTippMode::Unconfigured);
        assert_eq!(config.klicktipp.rps, 10.0);
        assert_eq!(config.settings.full_attendance_percent, 80);
        assert_eq!(config.retention, Duration::from_secs(30 * 86_400));
        assert_eq!(config.db_path, PathBuf::from("./webinar-bridge.db"));
        assert!(config.secrets.zoom.is_none());
    }

    #[test]
    fn session_partner_and_listbuilding_modes() {
        let session =
            BridgeConfig::from_vars(&vars(&[("KLICKTIPP_USERNAME", "u"), ("KLICKTIPP_PASSWORD", "p")])).unwrap();
        assert!(matches!(session.klicktipp.auth, KlickTippAuth::Session { .. }));
        let partner = BridgeConfig::from_vars(&vars(&[
            ("KLICKTIPP_USERNAME", "u"),
            ("KLICKTIPP_DEVELOPER_KEY", "0123456789abcdef"),
            ("KLICKTIPP_CUSTOMER_KEY", "customer-key"),
        ]))
        .unwrap();
        assert!(matches!(partner.klicktipp.auth, KlickTippAuth::Partner { .. }));
        let listbuilding = BridgeConfig::from_vars(&vars(&[("KLICKTIPP_LISTBUILDING_APIKEY", "k")])).unwrap();
        assert_eq!(listbuilding.klicktipp.mode(), KlickTippMode::Listbuilding);
    }

    #[test]
    fn every_invalid_value_names_its_variable() {
        let cases = [
            (vec![("KLICKTIPP_USERNAME", "u")], "KLICKTIPP_PASSWORD"),
            (vec![("KLICKTIPP_PASSWORD", "p")], "KLICKTIPP_USERNAME"),
            (vec![("KLICKTIPP_DEVELOPER_KEY", "0a")], "KLICKTIPP_CUSTOMER_KEY"),
            (vec![("KLICKTIPP_BASE_URL", "api.klicktipp.com")], "KLICKTIPP_BASE_URL"),
            (vec![("KLICKTIPP_LISTID", "abc")], "KLICKTIPP_LISTID"),
            (vec![("BRIDGE_KLICKTIPP_RPS", "-1")], "BRIDGE_KLICKTIPP_RPS"),
            (vec![("BRIDGE_TAG_TEMPLATE", "{webinar}")], "BRIDGE_TAG_TEMPLATE"),
            (vec![("BRIDGE_FIELD_MAP", "{\"x\":\"field1\"}")], "BRIDGE_FIELD_MAP"),
            (vec![("BRIDGE_FIELD_ALIASES", "{\"mail_address\":[\"x\"]}")], "BRIDGE_FIELD_ALIASES"),
            (vec![("BRIDGE_FIELD_ALIASES", "{\"email\":[]}")], "BRIDGE_FIELD_ALIASES"),
            (vec![("BRIDGE_FIELD_ALIASES", "[\"email\"]")], "BRIDGE_FIELD_ALIASES"),
            (vec![("BRIDGE_PARKED_MAX_COUNT", "0")], "BRIDGE_PARKED_MAX_COUNT"),
            (vec![("BRIDGE_PARKED_MAX_BYTES", "1024")], "BRIDGE_PARKED_MAX_BYTES"),
            (vec![("BRIDGE_FULL_ATTENDANCE_PERCENT", "120")], "BRIDGE_FULL_ATTENDANCE_PERCENT"),
            (vec![("BRIDGE_EVENT_RETENTION_DAYS", "0")], "BRIDGE_EVENT_RETENTION_DAYS"),
            (vec![("BRIDGE_GENERIC_SECRET", "whsec_!!")], "BRIDGE_GENERIC_SECRET"),
            (vec![("BRIDGE_GENERIC_SECRET", "short")], "BRIDGE_GENERIC_SECRET"),
            (vec![("BRIDGE_CONSUMER_CONCURRENCY", "0")], "BRIDGE_CONSUMER_CONCURRENCY"),
            (vec![("BRIDGE_TAGS_AHEAD", "sometimes")], "BRIDGE_TAGS_AHEAD"),
            (vec![("BRIDGE_WEBINAR_SETTINGS", "[{\"source\":\"zoom\"}]")], "BRIDGE_WEBINAR_SETTINGS"),
            (vec![("BRIDGE_WEBINAR_SETTINGS", "/nonexistent/settings.json")], "BRIDGE_WEBINAR_SETTINGS"),
            (vec![("BRIDGE_LANGUAGE", "fr")], "BRIDGE_LANGUAGE"),
            (vec![("BRIDGE_STATE_NAMES", "[\"Kunde\"]")], "BRIDGE_STATE_NAMES"),
            (vec![("BRIDGE_STATE_NAMES", "{\"Bought]\":\"Kunde\"}")], "BRIDGE_STATE_NAMES"),
            (vec![("BRIDGE_STATE_NAMES", "{\"Buyer\":\" \"}")], "BRIDGE_STATE_NAMES"),
            (vec![("BRIDGE_STATE_NAMES", "{\"Attended\":\"Fully Attended\"}")], "BRIDGE_STATE_NAMES"),
            (
                vec![("BRIDGE_LANGUAGE", "de"), ("BRIDGE_STATE_NAMES", "{\"Buyer\":\"teilgenommen\"}")],
                "BRIDGE_STATE_NAMES",
            ),
        ];
        for (pairs, variable) in cases {
            let error = BridgeConfig::from_vars(&vars(&pairs)).unwrap_err();
            assert_eq!(error.variable, variable, "{pairs:?}");
            assert!(error.to_string().starts_with(variable));
        }
    }

    #[test]
    fn secrets_never_appear_in_errors_or_debug() {
        let config = BridgeConfig::from_vars(&vars(&[
            ("KLICKTIPP_USERNAME", "u"),
            ("KLICKTIPP_PASSWORD", "very-secret-password"),
            ("BRIDGE_ZOOM_SECRET_TOKEN", "zoom-secret-token"),
        ]))
        .unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("very-secret-password") && !debug.contains("zoom-secret-token"));
    }

    #[test]
    fn german_state_names_with_a_single_override() {
        let config = BridgeConfig::from_vars(&vars(&[
            ("BRIDGE_LANGUAGE", "de"),
            ("BRIDGE_STATE_NAMES", r#"{"Buyer":"Kunde"}"#),
        ]))
        .unwrap();
        let template = &config.settings.tag_template;
        assert_eq!(template.render("Zoom", "Demo", StateLabel::Registered), "[Zoom] [Demo] Angemeldet");
        assert_eq!(template.render("Zoom", "Demo", StateLabel::Buyer), "[Zoom] [Demo] Kunde");
        let english = BridgeConfig::from_vars(&vars(&[("BRIDGE_STATE_NAMES", r#"{"Buyer":"Customer"}"#)])).unwrap();
        assert_eq!(
            english.settings.tag_template.render("Zoom", "Demo", StateLabel::Attended),
            "[Zoom] [Demo] Attended"
        );
        assert_eq!(english.settings.tag_template.render("Zoom", "Demo", StateLabel::Buyer), "[Zoom] [Demo] Customer");
    }

    #[test]
    fn the_rate_is_split_across_consumer_instances() {
        let config = BridgeConfig::from_vars(&vars(&[("BRIDGE_KLICKTIPP_RPS", "20")])).unwrap();
        assert_eq!(config.klicktipp.client_config(4).rate_per_second, 5.0);
    }

    #[test]
    fn webinar_settings_seed_inline_or_from_a_file_and_tags_ahead_default_on() {
        let config = BridgeConfig::from_vars(&vars(&[])).unwrap();
        assert!(config.tags_ahead);
        assert!(config.webinar_settings_seed.is_empty());
        let inline = r#"{"webinars":[{"source":"zoom","webinar":"811","listid":3}]}"#;
        let config =
            BridgeConfig::from_vars(&vars(&[("BRIDGE_WEBINAR_SETTINGS", inline), ("BRIDGE_TAGS_AHEAD", "off")]))
                .unwrap();
        assert!(!config.tags_ahead);
        assert_eq!(config.webinar_settings_seed.len(), 1);
        let dir = std::env::temp_dir().join(format!("wb-seed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("settings.json");
        std::fs::write(&file, r#"[{"source":"*","webinar":"*","include":false}]"#).unwrap();
        let path = file.to_string_lossy().into_owned();
        let config = BridgeConfig::from_vars(&vars(&[("BRIDGE_WEBINAR_SETTINGS", &path)])).unwrap();
        assert_eq!(config.webinar_settings_seed[0].include, Some(false));
        let _ = std::fs::remove_dir_all(&dir);
        let error = BridgeConfig::from_vars(&vars(&[(
            "BRIDGE_WEBINAR_SETTINGS",
            r#"[{"source":"zoom","webinar":"1","tags":{"Buyer":{"id":0,"name":"K"}}}]"#,
        )]))
        .unwrap_err()
        .to_string();
        assert_eq!(
            error,
            "BRIDGE_WEBINAR_SETTINGS: webinars[0].tags.Buyer.id: must be the id of an existing KlickTipp tag (see `webinar-bridge klicktipp tags`)"
        );
    }
}
