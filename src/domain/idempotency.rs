//! Idempotency keys: a client's promise that two requests with the same key are the same request.

use sha2::{Digest, Sha256};

use super::booking::Booking;

/// A request's idempotency key and fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// The caller that sent it (keys are per caller).
    pub caller: String,
    /// The key.
    pub key: String,
    /// SHA-256 of what the request asked for; another request with the same key is refused.
    pub request_hash: String,
}

impl IdempotencyKey {
    /// A key for `caller`, fingerprinting the request by its `parts` (method, path, body).
    pub fn new(caller: &str, key: &str, parts: &[&[u8]]) -> Self {
        let mut hash = Sha256::new();
        for part in parts {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
        Self {
            caller: caller.to_owned(),
            key: key.to_owned(),
            request_hash: hex(&hash.finalize()),
        }
    }

    /// The ClientRequestToken of the transaction (at most 36 characters), derived from caller and key, so a
    /// retried transaction is recognised by DynamoDB itself for 10 minutes.
    pub fn token(&self) -> String {
        let digest = Sha256::digest(format!("{}\n{}", self.caller, self.key));
        hex(&digest)[..36].to_owned()
    }

    /// Whether `record` was written by this very request (same fingerprint), not another one with this key.
    pub fn matches(&self, record: &IdempotencyRecord) -> bool {
        record.request_hash == self.request_hash
    }
}

/// What the first request with a key produced, kept to answer its repeats.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotencyRecord {
    /// Fingerprint of that request.
    pub request_hash: String,
    /// The booking as that request left it.
    pub booking: Booking,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_fingerprint_and_token_depend_on_caller_key_and_request() {
        let a = IdempotencyKey::new("u1", "k1", &[b"POST", b"/x", b"{}"]);
        assert_eq!(a, IdempotencyKey::new("u1", "k1", &[b"POST", b"/x", b"{}"]));
        assert_ne!(
            a.request_hash,
            IdempotencyKey::new("u1", "k1", &[b"POST", b"/x", b"{ }"]).request_hash
        );
        assert_ne!(
            a.request_hash,
            IdempotencyKey::new("u1", "k1", &[b"POST/", b"x", b"{}"]).request_hash
        );
        assert_eq!(a.token().len(), 36);
        assert_ne!(a.token(), IdempotencyKey::new("u2", "k1", &[]).token());
    }
}
