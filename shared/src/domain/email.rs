//! A contact's e-mail address: the one identity every platform and KlickTipp agree on.

use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// A syntactically valid, trimmed, lower-cased e-mail address.
///
/// Construction is the only validation point, so every `Email` in the system is usable as a
/// KlickTipp contact key and as part of a contact key.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("the e-mail address is empty")]
    Empty,
    #[error("the e-mail address is longer than 254 characters")]
    TooLong,
    #[error("the e-mail address needs exactly one '@' between a name and a domain")]
    MissingAt,
    #[error("the part before '@' is empty, too long or has characters an address cannot have")]
    InvalidLocalPart,
    #[error("the domain after '@' is not a valid domain name with a dot (like example.com)")]
    InvalidDomain,
}

impl Email {
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        let normalized = raw.trim().to_lowercase();
        if normalized.is_empty() {
            return Err(EmailError::Empty);
        }
        if normalized.len() > 254 {
            return Err(EmailError::TooLong);
        }
        let (local, domain) = normalized.split_once('@').ok_or(EmailError::MissingAt)?;
        if domain.contains('@') {
            return Err(EmailError::MissingAt);
        }
        if !valid_local_part(local) {
            return Err(EmailError::InvalidLocalPart);
        }
        // One spelling per mailbox: an internationalized domain becomes its ASCII (punycode)
        // form, so `bücher.de` and `xn--bcher-kva.de` are one contact, and KlickTipp gets the
        // form every mail system accepts.
        let domain = ascii_domain(domain).ok_or(EmailError::InvalidDomain)?;
        if !valid_domain(&domain) {
            return Err(EmailError::InvalidDomain);
        }
        let address = format!("{local}@{domain}");
        if address.len() > 254 {
            return Err(EmailError::TooLong);
        }
        Ok(Self(address))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// First 12 hex characters of SHA-256 of the address: enough to follow one contact through
    /// logs without ever writing the address itself.
    pub fn short_hash(&self) -> String {
        let digest = Sha256::digest(self.0.as_bytes());
        hex::encode(&digest[..6])
    }

    /// Full SHA-256 hex of the address, used as the FIFO message group of a contact.
    pub fn group_hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }
}

fn valid_local_part(local: &str) -> bool {
    const SPECIALS: &str = "!#$%&'*+/=?^_`{|}~-.";
    !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || SPECIALS.contains(c) || (!c.is_ascii() && c.is_alphanumeric()))
}

/// The domain in IDNA (UTS #46) ASCII form: Unicode labels become `xn--` punycode, full-width
/// and other compatibility characters are mapped, and an ASCII domain is returned as it is
/// (lower-cased). `None` when the domain cannot be a valid IDN.
fn ascii_domain(domain: &str) -> Option<String> {
    if domain.is_ascii() && !domain.split('.').any(|label| label.starts_with("xn--")) {
        return Some(domain.to_owned());
    }
    idna::domain_to_ascii_strict(domain).ok().filter(|ascii| !ascii.is_empty())
}

fn valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    domain.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || (!c.is_ascii() && c.is_alphanumeric()))
        })
        && labels.last().is_some_and(|tld| tld.len() >= 2 && !tld.chars().all(|c| c.is_ascii_digit()))
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Debug never prints the address, so a stray `{:?}` cannot leak it into logs.
impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email(#{})", self.short_hash())
    }
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Email::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_case_and_whitespace() {
        let email = Email::parse("  Erika.Muster@Example.COM ").unwrap();
        assert_eq!(email.as_str(), "erika.muster@example.com");
    }

    #[test]
    fn accepts_plus_addressing_and_subdomains() {
        assert!(Email::parse("a+webinar@mail.example.co.uk").is_ok());
    }

    #[test]
    fn rejects_malformed_addresses() {
        for raw in [
            "",
            "   ",
            "erika",
            "erika@",
            "@example.com",
            "a@b",
            "a@@b.com",
            "a b@example.com",
            "a..b@example.com",
            ".a@example.com",
            "a@-example.com",
            "a@example.123",
            "a@exa mple.com",
        ] {
            assert!(Email::parse(raw).is_err(), "{raw:?} should be rejected");
        }
    }

    #[test]
    fn internationalized_domains_have_one_spelling() {
        let unicode = Email::parse("idn@bücher.de").unwrap();
        let punycode = Email::parse("IDN@xn--BCHER-kva.de").unwrap();
        assert_eq!(unicode, punycode);
        assert_eq!(unicode.as_str(), "idn@xn--bcher-kva.de");
        assert_eq!(Email::parse("a@BÜCHER.de").unwrap().as_str(), "a@xn--bcher-kva.de");
        // Full-width letters map to ASCII (UTS #46), so they are the same contact too.
        assert_eq!(Email::parse("a@ｅｘａｍｐｌｅ.com").unwrap().as_str(), "a@example.com");
        // Unicode local parts stay as they are (SMTPUTF8).
        assert_eq!(Email::parse("jörg@example.com").unwrap().as_str(), "jörg@example.com");
        for raw in ["a@xn--zz.de", "a@bü cher.de", "a@-bücher.de", "a@bücher..de"] {
            assert!(Email::parse(raw).is_err(), "{raw:?} should be rejected");
        }
    }

    #[test]
    fn debug_hides_the_address() {
        let email = Email::parse("erika@example.com").unwrap();
        assert!(!format!("{email:?}").contains("erika"));
        assert_eq!(email.short_hash().len(), 12);
    }
}
