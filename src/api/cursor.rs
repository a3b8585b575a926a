//! Opaque, tamper-proof page cursors.
//!
//! A cursor is `base64url(json(page key)) "." base64url(HMAC-SHA256(scope "\n" json))`, where the scope is the
//! request path: a cursor from another patient's list, another endpoint, or edited by hand fails the HMAC and
//! is a 400. The HMAC key is derived from the token secret, so every replica accepts every replica's cursors.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::error::ApiError;
use crate::{config::Secret, store::PageKey};

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

    /// A cursor for `key`, valid only on `scope`.
    pub fn encode(&self, scope: &str, key: &PageKey) -> String {
        let payload = serde_json::to_vec(key).expect("a page key serialises");
        let tag = self.mac(scope, &payload).finalize().into_bytes();
        format!("{}.{}", URL_SAFE_NO_PAD.encode(&payload), URL_SAFE_NO_PAD.encode(tag))
    }

    /// The page key of a cursor made by [`CursorKey::encode`] for `scope`.
    ///
    /// # Errors
    /// 400 when the cursor is malformed, forged, or made for another scope.
    pub fn decode(&self, scope: &str, cursor: &str) -> Result<PageKey, ApiError> {
        let invalid = || ApiError::BadRequest("cursor: not a cursor of this list; start again without it".into());
        if cursor.len() > MAX_CURSOR_LEN {
            return Err(invalid());
        }
        let (payload, tag) = cursor.split_once('.').ok_or_else(invalid)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| invalid())?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| invalid())?;
        self.mac(scope, &payload).verify_slice(&tag).map_err(|_| invalid())?;
        serde_json::from_slice(&payload).map_err(|_| invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> PageKey {
        PageKey(
            [
                ("PK".to_owned(), "PATIENT#1".to_owned()),
                ("SK".to_owned(), "BOOKING#2".to_owned()),
            ]
            .into(),
        )
    }

    #[test]
    fn a_cursor_round_trips_only_on_its_own_scope_and_unchanged() {
        let keys = CursorKey::new(&Secret::new(vec![1u8; 32]));
        let cursor = keys.encode("/v1/patients/1/bookings", &key());
        assert_eq!(keys.decode("/v1/patients/1/bookings", &cursor).unwrap(), key());
        assert!(
            keys.decode("/v1/patients/2/bookings", &cursor).is_err(),
            "foreign scope"
        );
        let forged = PageKey([("PK".to_owned(), "PATIENT#2".to_owned())].into());
        let forged = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap()),
            cursor.split_once('.').unwrap().1
        );
        assert!(
            keys.decode("/v1/patients/1/bookings", &forged).is_err(),
            "edited payload"
        );
        assert!(keys.decode("/v1/patients/1/bookings", "garbage").is_err());
        let other = CursorKey::new(&Secret::new(vec![2u8; 32]));
        assert!(
            other.decode("/v1/patients/1/bookings", &cursor).is_err(),
            "another secret"
        );
    }
}
