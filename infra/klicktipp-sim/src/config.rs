//! The simulated account: credentials, keys, data fields and opt-in processes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::knobs::{Knobs, Language};

/// Everything the simulator starts from. `reset()` returns to exactly this.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub username: String,
    pub password: String,
    /// Developer Key + Customer Key access (`X-Un` / `X-Ci` headers).
    pub partner: Option<PartnerAccount>,
    pub listbuilding_keys: Vec<ListbuildingKey>,
    /// Custom fields (`field<id>`). The 16 global fields always exist; an entry
    /// with a global key (e.g. `fieldWebsite`) overrides that field's label and type.
    pub custom_fields: Vec<FieldSpec>,
    pub knobs: Knobs,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            username: "bridge".to_owned(),
            password: "sim-password".to_owned(),
            partner: None,
            listbuilding_keys: Vec::new(),
            custom_fields: Vec::new(),
            knobs: Knobs::default(),
        }
    }
}

impl SimConfig {
    /// Builder helper: adds one custom field.
    pub fn with_custom_field(
        mut self,
        key: impl Into<String>,
        label: impl Into<String>,
        field_type: FieldType,
    ) -> Self {
        self.custom_fields.push(FieldSpec::new(key, label, field_type));
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartnerAccount {
    /// Sent as `X-Un`.
    pub username: String,
    /// Hex string; its decoded bytes are the HMAC key.
    pub developer_key: String,
    pub customer_key: String,
}

/// A Listbuilding "entry via API key": bound to one opt-in process and one tag.
/// `tagid` 0 means "no tag"; a non-zero id that does not exist yet is created
/// as a manual tag named `Listbuilding <apikey>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListbuildingKey {
    pub apikey: String,
    pub listid: u64,
    pub tagid: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldSpec {
    /// `field12345` (a bare `12345` is prefixed with `field`).
    pub key: String,
    pub label: String,
    pub field_type: FieldType,
}

impl FieldSpec {
    pub fn new(key: impl Into<String>, label: impl Into<String>, field_type: FieldType) -> Self {
        Self { key: key.into(), label: label.into(), field_type }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FieldType {
    Line,
    Paragraph,
    Email,
    Number,
    Decimal,
    Url,
    Date,
    DateTime,
    Time,
    Html,
}

impl FromStr for FieldType {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let normalized: String =
            text.chars().filter(|c| !matches!(c, '-' | '_' | ' ' | '&')).collect::<String>().to_ascii_lowercase();
        Ok(match normalized.as_str() {
            "line" | "singleline" | "text" => Self::Line,
            "paragraph" => Self::Paragraph,
            "email" => Self::Email,
            "number" | "integer" => Self::Number,
            "decimal" | "decimalnumber" => Self::Decimal,
            "url" => Self::Url,
            "date" => Self::Date,
            "datetime" | "dateandtime" => Self::DateTime,
            "time" => Self::Time,
            "html" => Self::Html,
            _ => {
                return Err(format!(
                    "unknown field type {text:?} (expected line, paragraph, email, number, decimal, url, date, datetime, time or html)"
                ));
            }
        })
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Line => "line",
            Self::Paragraph => "paragraph",
            Self::Email => "email",
            Self::Number => "number",
            Self::Decimal => "decimal",
            Self::Url => "url",
            Self::Date => "date",
            Self::DateTime => "datetime",
            Self::Time => "time",
            Self::Html => "html",
        };
        f.write_str(name)
    }
}

/// Key, English label, German label, type. Labels follow the account language,
/// as KlickTipp's do. The types of the phone, website and lead value fields are
/// not documented; they are chosen on the strict side.
const GLOBAL_FIELDS: [(&str, &str, &str, FieldType); 16] = [
    ("fieldFirstName", "First name", "Vorname", FieldType::Line),
    ("fieldLastName", "Last name", "Nachname", FieldType::Line),
    ("fieldCompanyName", "Company", "Firma", FieldType::Line),
    ("fieldStreet1", "Street 1", "Straße 1", FieldType::Line),
    ("fieldStreet2", "Street 2", "Straße 2", FieldType::Line),
    ("fieldCity", "City", "Stadt", FieldType::Line),
    ("fieldState", "State", "Bundesland", FieldType::Line),
    ("fieldZip", "Zip code", "Postleitzahl", FieldType::Line),
    ("fieldCountry", "Country", "Land", FieldType::Line),
    ("fieldPrivatePhone", "Private phone", "Telefon (privat)", FieldType::Line),
    ("fieldMobilePhone", "Mobile phone", "Telefon (mobil)", FieldType::Line),
    ("fieldPhone", "Phone", "Telefon", FieldType::Line),
    ("fieldFax", "Fax", "Fax", FieldType::Line),
    ("fieldWebsite", "Website", "Webseite", FieldType::Url),
    ("fieldBirthday", "Birthday", "Geburtstag", FieldType::Date),
    ("fieldLeadValue", "Lead Value", "Lead Value", FieldType::Number),
];

/// The 16 global fields with their English labels.
pub fn global_fields() -> Vec<FieldSpec> {
    GLOBAL_FIELDS.iter().map(|(key, label, _, field_type)| FieldSpec::new(*key, *label, *field_type)).collect()
}

/// A data field as the simulator serves it.
#[derive(Debug, Clone)]
pub(crate) struct FieldDef {
    pub key: String,
    label_en: String,
    label_de: String,
    pub field_type: FieldType,
}

impl FieldDef {
    pub fn label(&self, language: Language) -> &str {
        match language {
            Language::En => &self.label_en,
            Language::De => &self.label_de,
        }
    }
}

/// Globals first (in KlickTipp's order), then customs; a custom entry with a
/// global key replaces that global.
pub(crate) fn field_defs(custom: &[FieldSpec]) -> Vec<FieldDef> {
    let mut defs: Vec<FieldDef> = GLOBAL_FIELDS
        .iter()
        .map(|(key, en, de, field_type)| FieldDef {
            key: (*key).to_owned(),
            label_en: (*en).to_owned(),
            label_de: (*de).to_owned(),
            field_type: *field_type,
        })
        .collect();
    for spec in custom {
        let key = if spec.key.starts_with("field") { spec.key.clone() } else { format!("field{}", spec.key) };
        let def =
            FieldDef { key, label_en: spec.label.clone(), label_de: spec.label.clone(), field_type: spec.field_type };
        match defs.iter_mut().find(|existing| existing.key == def.key) {
            Some(existing) => *existing = def,
            None => defs.push(def),
        }
    }
    defs
}

/// An opt-in process ("list"). The account always has the two below.
#[derive(Debug, Clone)]
pub(crate) struct OptInProcess {
    pub id: u64,
    /// Empty for the account's predefined double opt-in process.
    pub name: String,
    pub single_optin: bool,
}

pub const DEFAULT_DOUBLE_OPTIN_LISTID: u64 = 1;
pub const SINGLE_OPTIN_LISTID: u64 = 2;

pub(crate) fn optin_processes() -> Vec<OptInProcess> {
    vec![
        OptInProcess { id: DEFAULT_DOUBLE_OPTIN_LISTID, name: String::new(), single_optin: false },
        OptInProcess { id: SINGLE_OPTIN_LISTID, name: "Single opt-in".to_owned(), single_optin: true },
    ]
}

/// Where the simulated account's confirmation and thank-you pages live.
/// `.invalid` so nothing ever resolves it.
pub(crate) const PENDING_URL: &str = "https://klicktipp-sim.invalid/pending";
pub(crate) const THANKYOU_URL: &str = "https://klicktipp-sim.invalid/thankyou";
