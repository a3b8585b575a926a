//! Opaque, tamper-proof page cursors.
//!
//! A cursor is `base64url(nonce ‖ AES-256-GCM(payload, aad = scope))`: the payload is the service's opaque
//! cursor bytes, the scope names the list (path and every filter, see [`super::paging`]), the nonce is 12
//! random bytes. Clients see only opaque bytes (no key layout), and a cursor from another patient's list,
//! another endpoint, another filter, or edited by hand fails authentication: a 400. The key is derived from the
//! token secret, so every replica accepts every replica's cursors.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Secret;

type HmacSha256 = Hmac<Sha256>;

/// Longest cursor accepted.
pub const MAX_CURSOR_LEN: usize = 2048;

/// The key that seals cursors.
pub struct CursorKey(LessSafeKey);

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey([redacted])")
    }
}

impl CursorKey {
    /// Derives the cursor key from the token secret.
    pub fn new(secret: &Secret) -> Self {
        let mut mac = HmacSha256::new_from_slice(secret.expose()).expect("HMAC takes any key length");
        mac.update(b"medbook cursor key v2 (AES-256-GCM)");
        let bytes = mac.finalize().into_bytes();
        let key = UnboundKey::new(&AES_256_GCM, &bytes).expect("a 32-byte key");
        Self(LessSafeKey::new(key))
    }

    /// A cursor carrying `payload`, valid only on `scope`.
    pub fn seal(&self, scope: &str, payload: &[u8]) -> String {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let mut sealed = payload.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(scope.as_bytes()),
                &mut sealed,
            )
            .expect("sealing a short payload succeeds");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The payload of a cursor made by [`CursorKey::seal`] for `scope`; `None` when the cursor is malformed,
    /// forged, or made for another scope.
    pub fn open(&self, scope: &str, cursor: &str) -> Option<Vec<u8>> {
        if cursor.len() > MAX_CURSOR_LEN {
            return None;
        }
        let mut bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let mut sealed = bytes.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&bytes).ok()?;
        let payload = self
            .0
            .open_in_place(nonce, Aad::from(scope.as_bytes()), &mut sealed)
            .ok()?;
        Some(payload.to_vec())
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
        let mut raw = URL_SAFE_NO_PAD.decode(&cursor).unwrap();
        let last = raw.len() - 20;
        raw[last] ^= 1;
        let forged = URL_SAFE_NO_PAD.encode(&raw);
        assert!(
            keys.open("/v1/patients/1/bookings", &forged).is_none(),
            "edited payload"
        );
        let text = String::from_utf8_lossy(&raw).to_string();
        assert!(
            !text.contains("PATIENT#"),
            "the key layout is not readable in the cursor"
        );
        assert_ne!(
            keys.seal("/v1/patients/1/bookings", payload),
            cursor,
            "a fresh nonce each time"
        );
        assert!(keys.open("/v1/patients/1/bookings", "garbage").is_none());
        let other = CursorKey::new(&Secret::new(vec![2u8; 32]));
        assert!(
            other.open("/v1/patients/1/bookings", &cursor).is_none(),
            "another secret"
        );
    }
}
