//! Human-readable texts in the account language. Clients must never key on
//! them; the German variants exist to make sure they don't.

use crate::knobs::Language;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Msg {
    AccessDenied,
    WrongCredentials,
    AlreadyLoggedIn,
    NotLoggedIn,
    MustBeString(&'static str),
    MissingArgument(&'static str),
    NoSuchContact,
    ContactDoesNotExist,
    NoSuchTag,
    NoSuchOptIn,
    NoSuchField,
    TagNotCreated,
    TagNotUpdated,
    TagNameTaken,
    TooManyRequests,
    InvalidApiKey,
    UnreadableBody,
    InvalidFilter(&'static str),
}

pub(crate) fn text(msg: Msg, language: Language) -> String {
    let de = language == Language::De;
    let pick = |en: &str, german: &str| if de { german } else { en }.to_owned();
    match msg {
        Msg::AccessDenied => pick("API access denied.", "API Zugriff verweigert"),
        Msg::WrongCredentials => pick("Wrong username or password.", "Falscher Benutzername oder Passwort."),
        Msg::AlreadyLoggedIn => pick("You are already logged in.", "Sie sind bereits eingeloggt."),
        Msg::NotLoggedIn => pick("User is not logged in.", "Benutzer nicht eingeloggt."),
        Msg::MustBeString(key) => {
            if de {
                format!("Der Schlüssel \"{key}\" muss ein String sein.")
            } else {
                format!("The key \"{key}\" must be a string.")
            }
        }
        // Seen only in English, whatever the account language.
        Msg::MissingArgument(name) => format!("Missing required argument {name}"),
        Msg::NoSuchContact => pick("There is no such entity.", "Diesen Kontakt gibt es nicht."),
        Msg::ContactDoesNotExist => pick("The contact does not exist.", "Der Kontakt existiert nicht."),
        Msg::NoSuchTag => pick("There is no tag with this ID.", "Kein Tag mit dieser ID."),
        Msg::NoSuchOptIn => pick("There is no opt-in process with this ID.", "Kein Opt-In-Prozess mit dieser ID."),
        Msg::NoSuchField => pick("There is no field with this ID.", "Kein Feld mit dieser ID."),
        Msg::TagNotCreated => pick("Tag could not be created.", "Tag konnte nicht erstellt werden."),
        Msg::TagNotUpdated => pick("Tag could not be updated.", "Tag konnte nicht aktualisiert werden."),
        Msg::TagNameTaken => {
            pick("A tag with this name already exists.", "Ein Tag mit diesem Namen existiert bereits.")
        }
        Msg::TooManyRequests => pick("Too many requests.", "Zu viele Anfragen."),
        Msg::InvalidApiKey => pick("Invalid API key.", "Ungültiger API-Key."),
        Msg::InvalidFilter(name) => {
            if de {
                format!("Ungültiger Wert für \"{name}\".")
            } else {
                format!("Invalid value for \"{name}\".")
            }
        }
        Msg::UnreadableBody => {
            pick("The request body could not be parsed.", "Der Inhalt der Anfrage konnte nicht gelesen werden.")
        }
    }
}

/// Field validation reasons (`reason` of error 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    SingleLine,
    Email,
    Numeric,
    Decimal,
    Url,
    Timestamp,
    TimeOfDay,
    UnknownField,
    NotScalar,
}

pub(crate) fn reason_text(reason: Reason, language: Language) -> &'static str {
    let de = language == Language::De;
    match (reason, de) {
        (Reason::SingleLine, false) => "must be a single line",
        (Reason::SingleLine, true) => "darf nur eine Zeile enthalten",
        (Reason::Email, false) => "must be a valid email address",
        (Reason::Email, true) => "muss eine gültige E-Mail-Adresse sein",
        (Reason::Numeric, false) => "must be a numeric value",
        (Reason::Numeric, true) => "muss ein numerischer Wert sein",
        (Reason::Decimal, false) => "must be an integer (the value multiplied by 100)",
        (Reason::Decimal, true) => "muss eine ganze Zahl sein (der Wert mal 100)",
        (Reason::Url, false) => "must start with http:// or https://",
        (Reason::Url, true) => "muss mit http:// oder https:// beginnen",
        (Reason::Timestamp, false) => "must be a Unix timestamp in seconds",
        (Reason::Timestamp, true) => "muss ein Unix-Zeitstempel in Sekunden sein",
        (Reason::TimeOfDay, false) => "must be the seconds since midnight (0-86399)",
        (Reason::TimeOfDay, true) => "muss die Sekunden seit Mitternacht angeben (0-86399)",
        (Reason::UnknownField, false) => "unknown field",
        (Reason::UnknownField, true) => "unbekanntes Feld",
        (Reason::NotScalar, false) => "must be a string or a number",
        (Reason::NotScalar, true) => "muss ein Text oder eine Zahl sein",
    }
}
