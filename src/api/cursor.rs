//! Opaque, tamper-proof page cursors.
//!
//! A cursor is `base64url(payload) "." base64url(HMAC-SHA256(scope "\n" payload))`, where the payload is the
//! service's opaque cursor bytes and the scope names the list (path and every filter, see
//! [`super::paging`]): a cursor from another patient's list, another endpoint, another filter, or edited by
//! hand fails the HMAC and is a 400. The HMAC key is derived from the token secret, so every replica accepts
//! every replica's cursors.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Secret;

type HmacSha256 = Hmac<Sha256>;

/// Longest cursor accepted.
pub const MAX_CURSOR_LEN: usize = 2048;

/// The key that signs cursors.
#[derive(Clone)]
pub struct CursorKey([u8; 32]);

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey([redacted])")
    }
}

impl CursorKey {
    /// Derives the cursor key from the token secret.
    pub fn new(secret: &Secret) -> Self {
        let mut mac = HmacSha256::new_from_slice(secret.expose()).expect("HMAC takes any key length");
        mac.update(b"medbook cursor key v1");
        Self(mac.finalize().into_bytes().into())
    }

    fn mac(&self, scope: &str, payload: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(scope.as_bytes());
        mac.update(b"\n");
        mac.update(payload);
        mac
    }

    /// A cursor carrying `payload`, valid only on `scope`.
    pub fn seal(&self, scope: &str, payload: &[u8]) -> String {
        let tag = self.mac(scope, payload).finalize().into_bytes();
        format!("{}.{}", URL_SAFE_NO_PAD.encode(payload), URL_SAFE_NO_PAD.encode(tag))
    }

    /// The payload of a cursor made by [`CursorKey::seal`] for `scope`; `None` when the cursor is malformed,
    /// forged, or made for another scope.
    pub fn open(&self, scope: &str, cursor: &str) -> Option<Vec<u8>> {
        if cursor.len() > MAX_CURSOR_LEN {
            return None;
        }
        let (payload, tag) = cursor.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        self.mac(scope, &payload).verify_slice(&tag).ok()?;
        Some(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_only_on_its_own_scope_and_unchanged() {
        let keys = CursorKey::new(&Secret::new(vec![1u8; 32]));
        let payload = br#"{"k":{"PK":"PATIENT#1"}}"#;
        let cursor = keys.seal("/v1/patients/1/bookings", payload);
        assert_eq!(keys.open("/v1/patients/1/bookings", &cursor).unwrap(), payload);
        assert!(keys.open("/v1/patients/2/bookings", &cursor).is_none(), "foreign scope");
        let forged = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(br#"{"k":{"PK":"PATIENT#2"}}"#),
            cursor.split_once('.').unwrap().1
        );
        assert!(
            keys.open("/v1/patients/1/bookings", &forged).is_none(),
            "edited payload"
        );
        assert!(keys.open("/v1/patients/1/bookings", "garbage").is_none());
        let other = CursorKey::new(&Secret::new(vec![2u8; 32]));
        assert!(
            other.open("/v1/patients/1/bookings", &cursor).is_none(),
            "another secret"
        );
    }
}
