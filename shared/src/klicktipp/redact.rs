//! Keeping contacts out of logs and error messages (DESIGN 6: a contact appears only as a hash).

use sha2::{Digest, Sha256};

/// First 12 hex characters of SHA-256 of the normalized (trimmed, lower-cased) address: the
/// same value as `domain::Email::short_hash`, so log lines of both layers can be correlated.
pub(crate) fn contact_hash(email: &str) -> String {
    let digest = Sha256::digest(email.trim().to_lowercase().as_bytes());
    hex::encode(&digest[..6])
}

/// KlickTipp's messages sometimes quote the address they refuse; replace every word with an
/// `@` in it before the text goes into an error message.
pub(crate) fn redact_emails(text: &str) -> String {
    if !text.contains('@') {
        return text.to_owned();
    }
    text.split(' ').map(|word| if word.contains('@') { "<email>" } else { word }).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_matches_the_domain_email_hash() {
        let email = crate::domain::Email::parse("Erika@Example.com").expect("valid address");
        assert_eq!(contact_hash(" Erika@Example.com "), email.short_hash());
        assert_eq!(contact_hash("erika@example.com").len(), 12);
    }

    #[test]
    fn removes_addresses_from_text() {
        assert_eq!(redact_emails("Die Adresse a@b.example ist ungültig."), "Die Adresse <email> ist ungültig.");
        assert_eq!(redact_emails("no address here"), "no address here");
    }
}
