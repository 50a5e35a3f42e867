//! Session cookies and Developer Key + Customer Key (partner) signatures.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;

use crate::config::PartnerAccount;

/// The `X-Ci` header value: `base64(HMAC_SHA256(hex_decode(developer_key), customer_key) || customer_key)`.
pub fn partner_ci(developer_key_hex: &str, customer_key: &str) -> anyhow::Result<String> {
    let key = hex::decode(developer_key_hex.trim()).map_err(|e| anyhow::anyhow!("developer key is not hex: {e}"))?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(&key).map_err(|e| anyhow::anyhow!("developer key unusable as HMAC key: {e}"))?;
    mac.update(customer_key.as_bytes());
    let mut signed = mac.finalize().into_bytes().to_vec();
    signed.extend_from_slice(customer_key.as_bytes());
    Ok(STANDARD.encode(signed))
}

/// Whether `X-Un` / `X-Ci` identify the configured partner account.
pub(crate) fn partner_headers_valid(partner: &PartnerAccount, x_un: &str, x_ci: &str) -> bool {
    x_un.trim() == partner.username
        && partner_ci(&partner.developer_key, &partner.customer_key).is_ok_and(|expected| expected == x_ci.trim())
}

/// The value of cookie `name` in a `Cookie` header.
pub(crate) fn cookie_value<'a>(cookie_header: &'a str, name: &str) -> Option<&'a str> {
    cookie_header.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key.trim() == name).then(|| value.trim())
    })
}

/// Drupal-style session cookie name: `SSESS` + 32 hex digits.
pub(crate) fn new_session_name() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill(&mut bytes);
    format!("SSESS{}", hex::encode(bytes))
}

/// 43 URL-safe characters, like a Drupal `sessid`.
pub(crate) fn new_session_id() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partner_test_vector_from_the_reference() {
        assert_eq!(
            partner_ci("0123456789abcdef", "customer-key").expect("valid hex"),
            "cZkWFoPs3rLacJ4OpaooJMMOcb/fLxbZpeeOzJFCGh1jdXN0b21lci1rZXk="
        );
    }

    #[test]
    fn cookie_lookup_and_session_shapes() {
        assert_eq!(cookie_value("a=1; SSESSab = xyz ;b=2", "SSESSab"), Some("xyz"));
        assert_eq!(cookie_value("a=1", "SSESSab"), None);
        let name = new_session_name();
        assert_eq!(name.len(), 37);
        assert!(name.starts_with("SSESS"));
        assert_eq!(new_session_id().len(), 43);
    }
}
