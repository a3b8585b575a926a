//! Bearer tokens and the roles they carry: medbook's own (HS256, minted by `medbook token`, for development
//! and tests) and an OpenID provider's ([`oidc`]); both may be accepted at once.
//!
//! For medbook's own tokens the algorithm is pinned (a token naming any other, `none` included, is rejected), `exp`, `iss`, `aud` and
//! `sub` are required, `iss` and `aud` must be `medbook`, `nbf` is honoured, a token may live at most
//! `MEDBOOK_JWT_MAX_TTL` (`exp` − `iat`, or `exp` − now without `iat`), and tokens over 8 KiB are refused
//! before parsing. `sub` is 1 to 128 visible ASCII characters; for the `patient` role, the patient's id.

use std::{fmt, sync::Arc, time::Duration};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::Secret;

pub mod oidc;

/// Issuer and audience of every medbook token.
pub const ISSUER: &str = "medbook";
/// Largest accepted token, in bytes.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Clock skew tolerated on `exp` and `nbf`.
pub(crate) const LEEWAY_SECONDS: u64 = 30;
/// Longest token lifetime accepted unless configured otherwise (`MEDBOOK_JWT_MAX_TTL`).
pub const DEFAULT_MAX_TTL: Duration = Duration::from_secs(24 * 3600);

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A patient: their own record, bookings and reviewed results.
    Patient,
    /// Lab staff: patients, bookings, results, schedule.
    Lab,
    /// A doctor: reads clinical data, writes notes and reviews.
    Doctor,
    /// An administrator: everything, including the catalog.
    Admin,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Patient => "patient",
            Self::Lab => "lab",
            Self::Doctor => "doctor",
            Self::Admin => "admin",
        })
    }
}

/// The claims of a medbook token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Subject: a user id; for patients, the patient id.
    pub sub: String,
    /// Role.
    pub role: Role,
    /// Issuer, `medbook`.
    pub iss: String,
    /// Audience, `medbook`.
    pub aud: String,
    /// Expiry, epoch seconds.
    pub exp: u64,
    /// Issued at, epoch seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Not before, epoch seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

/// Whose a verified token is: the issuer (`medbook` for medbook's own tokens), the issuer's subject, and the
/// medbook role.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    /// Issuer.
    pub issuer: String,
    /// The issuer's subject.
    pub sub: String,
    /// Role.
    pub role: Role,
    /// The e-mail address the issuer verified (`email` with `email_verified: true`), if the token carries one.
    pub verified_email: Option<String>,
}

impl Identity {
    /// Whether this is a medbook token (whose patient `sub` is the patient id itself).
    pub fn is_medbook(&self) -> bool {
        self.issuer == ISSUER
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Subject (as the token's issuer names it).
    pub sub: String,
    /// Role.
    pub role: Role,
    /// The token's issuer.
    pub issuer: String,
    /// For a patient: their patient id (a medbook token's `sub`, or the identity's link); `None` for a
    /// patient identity not linked to a record yet, and for staff.
    pub patient: Option<Uuid>,
    /// The e-mail address the token's issuer verified, if any.
    pub verified_email: Option<String>,
}

impl Caller {
    /// The caller `identity` is, linked to `patient` (a patient's record; ignored for staff).
    pub fn new(identity: Identity, patient: Option<Uuid>) -> Self {
        Self {
            patient: patient.filter(|_| identity.role == Role::Patient),
            sub: identity.sub,
            role: identity.role,
            issuer: identity.issuer,
            verified_email: identity.verified_email,
        }
    }

    /// Whether this caller may give a patient record the address `email`: staff and medbook's own tokens
    /// always; a provider's patient identity only the address its provider verified, so nobody claims
    /// another person's address.
    pub fn may_claim_email(&self, email: &str) -> bool {
        self.role != Role::Patient
            || self.issuer == ISSUER
            || self
                .verified_email
                .as_deref()
                .is_some_and(|v| v.trim().eq_ignore_ascii_case(email.trim()))
    }

    /// Who acts, as audit events and records name them: a linked patient by their patient id, anyone else by
    /// their subject.
    pub fn actor_id(&self) -> String {
        self.patient.map_or_else(|| self.sub.clone(), |p| p.to_string())
    }
}

/// Why a token was refused. Deliberately coarse: the client learns only that it is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Longer than [`MAX_TOKEN_BYTES`].
    #[error("token too long")]
    TooLong,
    /// Bad signature, algorithm, claims, or expired.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// A good token whose roles map to no medbook role (403).
    #[error("the token carries no role medbook maps")]
    NoRole,
}

/// A caller may not do this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// Their role does not allow it (403).
    Forbidden,
    /// It concerns another patient, whose existence is not revealed (404).
    Hidden,
}

impl Caller {
    /// Allowed when the caller's role is in `roles`.
    ///
    /// # Errors
    /// [`Denied::Forbidden`] otherwise.
    pub fn require(&self, roles: &[Role]) -> Result<(), Denied> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(Denied::Forbidden)
        }
    }

    /// Allowed on patient `patient_id`'s data when the role is in `roles` and, for a patient, it is their own.
    ///
    /// # Errors
    /// [`Denied::Hidden`] for a patient on another patient's data, [`Denied::Forbidden`] for a role not in
    /// `roles`.
    pub fn require_patient_access(&self, patient_id: Uuid, roles: &[Role]) -> Result<(), Denied> {
        if self.role == Role::Patient && self.patient != Some(patient_id) {
            return Err(Denied::Hidden);
        }
        self.require(roles)
    }
}

/// Signing and verification keys.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    max_ttl: Duration,
}

impl fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKeys([redacted])")
    }
}

impl TokenKeys {
    /// Keys from the shared secret.
    pub fn new(secret: &Secret) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        Self {
            encoding: EncodingKey::from_secret(secret.expose()),
            decoding: DecodingKey::from_secret(secret.expose()),
            validation,
            max_ttl: DEFAULT_MAX_TTL,
        }
    }

    /// These keys, accepting tokens that live at most `max_ttl`.
    pub fn with_max_ttl(mut self, max_ttl: Duration) -> Self {
        self.max_ttl = max_ttl;
        self
    }

    /// Signs a token for `sub` with `role`, valid for `ttl`.
    ///
    /// # Errors
    /// When a patient's `sub` is not a UUID, `ttl` is over the longest lifetime accepted, or signing fails.
    pub fn issue(&self, role: Role, sub: &str, ttl: Duration) -> Result<String, TokenError> {
        check_subject(role, sub)?;
        if ttl > self.max_ttl {
            return Err(TokenError::Invalid(format!(
                "a token may live at most {} s (MEDBOOK_JWT_MAX_TTL)",
                self.max_ttl.as_secs()
            )));
        }
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: sub.to_owned(),
            role,
            iss: ISSUER.to_owned(),
            aud: ISSUER.to_owned(),
            exp: now + ttl.as_secs(),
            iat: Some(now),
            nbf: None,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }

    /// Verifies a token and returns whose it is.
    ///
    /// # Errors
    /// [`TokenError`] when the token is too long, forged, expired, or its claims are wrong.
    pub fn verify(&self, token: &str) -> Result<Identity, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLong);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| TokenError::Invalid(e.to_string()))?;
        check_subject(data.claims.role, &data.claims.sub)?;
        let now = jsonwebtoken::get_current_timestamp();
        // From when it was issued, or from now: an `iat` in the future does not make a long token short.
        let lifetime = data.claims.exp.saturating_sub(data.claims.iat.unwrap_or(now).min(now));
        if lifetime > self.max_ttl.as_secs() + LEEWAY_SECONDS {
            return Err(TokenError::Invalid(format!(
                "the token lives {lifetime} s, longer than the {} s accepted",
                self.max_ttl.as_secs()
            )));
        }
        Ok(Identity {
            issuer: ISSUER.to_owned(),
            sub: data.claims.sub,
            role: data.claims.role,
            verified_email: None,
        })
    }
}

/// Every way a token is accepted: medbook's own HS256 tokens (when enabled) and an OpenID provider's (when
/// configured). The header's algorithm says which verifier a token goes to.
#[derive(Debug, Clone)]
pub struct Authenticator {
    medbook: Option<TokenKeys>,
    oidc: Option<Arc<oidc::OidcVerifier>>,
}

impl Authenticator {
    /// Accepting medbook tokens signed with `medbook` keys and/or the `oidc` provider's.
    pub fn new(medbook: Option<TokenKeys>, oidc: Option<oidc::OidcVerifier>) -> Self {
        Self {
            medbook,
            oidc: oidc.map(Arc::new),
        }
    }

    /// The OpenID verifier, if one is configured.
    pub fn oidc(&self) -> Option<&Arc<oidc::OidcVerifier>> {
        self.oidc.as_ref()
    }

    /// Verifies `token` with the verifier its algorithm belongs to.
    ///
    /// # Errors
    /// [`TokenError`] when no verifier takes it or the one that does refuses it.
    pub async fn identify(&self, token: &str) -> Result<Identity, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLong);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| TokenError::Invalid(e.to_string()))?;
        match (header.alg, &self.medbook, &self.oidc) {
            (Algorithm::HS256, Some(keys), _) => keys.verify(token),
            (Algorithm::HS256, None, _) => Err(TokenError::Invalid("medbook tokens are not accepted here".into())),
            (_, _, Some(oidc)) => oidc.verify(token).await,
            (alg, _, None) => Err(TokenError::Invalid(format!("algorithm {alg:?} is not accepted"))),
        }
    }
}

fn check_subject(role: Role, sub: &str) -> Result<(), TokenError> {
    if sub.is_empty() || sub.len() > 128 || !sub.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(TokenError::Invalid(
            "sub must be 1 to 128 visible ASCII characters".into(),
        ));
    }
    if role == Role::Patient && Uuid::parse_str(sub).is_err() {
        return Err(TokenError::Invalid("a patient's sub must be their patient id".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::new(&Secret::new(vec![7u8; 32]))
    }

    #[test]
    fn a_token_round_trips() {
        let k = keys();
        let id = Uuid::now_v7().to_string();
        let token = k.issue(Role::Patient, &id, Duration::from_secs(60)).unwrap();
        assert_eq!(
            k.verify(&token).unwrap(),
            Identity {
                issuer: ISSUER.into(),
                sub: id,
                role: Role::Patient,
                verified_email: None,
            }
        );
    }

    #[test]
    fn forged_alg_none_wrong_audience_and_oversized_tokens_are_rejected() {
        let k = keys();
        let token = k.issue(Role::Admin, "root", Duration::from_secs(60)).unwrap();
        let other = TokenKeys::new(&Secret::new(vec![8u8; 32]));
        assert!(other.verify(&token).is_err(), "another secret");

        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let payload = token.split('.').nth(1).unwrap();
        let none = format!("{}.{payload}.", b64.encode(r#"{"alg":"none","typ":"JWT"}"#));
        assert!(k.verify(&none).is_err(), "alg none");

        let now = jsonwebtoken::get_current_timestamp();
        let claims = serde_json::json!({"sub":"x","role":"admin","iss":"medbook","aud":"other","exp":now+60,"iat":now});
        let wrong_aud = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&[7u8; 32]),
        )
        .unwrap();
        assert!(k.verify(&wrong_aud).is_err(), "audience");

        let no_exp = serde_json::json!({"sub":"x","role":"admin","iss":"medbook","aud":"medbook"});
        let no_exp = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &no_exp,
            &EncodingKey::from_secret(&[7u8; 32]),
        )
        .unwrap();
        assert!(k.verify(&no_exp).is_err(), "exp required");

        assert_eq!(k.verify(&"a".repeat(MAX_TOKEN_BYTES + 1)), Err(TokenError::TooLong));
    }

    #[test]
    fn a_token_naming_another_algorithm_is_rejected_even_when_signed_with_the_secret() {
        use hmac::{Hmac, Mac};
        let k = keys();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let now = jsonwebtoken::get_current_timestamp();
        let payload = b64.encode(
            serde_json::json!({"sub":"x","role":"admin","iss":"medbook","aud":"medbook","exp":now+60,"iat":now})
                .to_string(),
        );
        // Key confusion: an RS256 (or HS512) header, HMAC-signed with the shared secret as if it were a key.
        for alg in ["RS256", "HS512", "ES256"] {
            let header = b64.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&[7u8; 32]).unwrap();
            mac.update(format!("{header}.{payload}").as_bytes());
            let token = format!("{header}.{payload}.{}", b64.encode(mac.finalize().into_bytes()));
            assert!(k.verify(&token).is_err(), "{alg}");
        }
    }

    #[test]
    fn a_patient_token_must_name_a_patient_id() {
        assert!(
            keys()
                .issue(Role::Patient, "not-a-uuid", Duration::from_secs(60))
                .is_err()
        );
    }

    #[test]
    fn patients_see_only_themselves_and_roles_are_checked() {
        let id = Uuid::now_v7();
        let me = Caller::new(
            Identity {
                issuer: ISSUER.into(),
                sub: id.to_string(),
                role: Role::Patient,
                verified_email: None,
            },
            Some(id),
        );
        assert_eq!(me.require_patient_access(id, &[Role::Patient, Role::Lab]), Ok(()));
        assert_eq!(
            me.require_patient_access(Uuid::now_v7(), &[Role::Patient]),
            Err(Denied::Hidden)
        );
        assert_eq!(me.require_patient_access(id, &[Role::Lab]), Err(Denied::Forbidden));
        let doctor = Caller::new(
            Identity {
                issuer: ISSUER.into(),
                sub: "d".into(),
                role: Role::Doctor,
                verified_email: None,
            },
            Some(id),
        );
        assert_eq!(doctor.patient, None, "staff are no patient");
        let unlinked = Caller::new(
            Identity {
                issuer: "https://id.example".into(),
                sub: "x".into(),
                role: Role::Patient,
                verified_email: Some("x@example.org".into()),
            },
            None,
        );
        assert!(unlinked.may_claim_email(" X@Example.org"));
        assert!(
            !unlinked.may_claim_email("someone@example.org"),
            "only the verified address"
        );
        assert!(
            me.may_claim_email("any@example.org"),
            "medbook's own tokens (development)"
        );
        assert_eq!(
            unlinked.require_patient_access(id, &[Role::Patient]),
            Err(Denied::Hidden),
            "a patient identity with no record sees no patient's data"
        );
        assert_eq!(doctor.require_patient_access(id, &[Role::Lab]), Err(Denied::Forbidden));
    }

    fn signed(claims: serde_json::Value) -> String {
        let key = EncodingKey::from_secret(&[7u8; 32]);
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap()
    }

    fn claims(exp: u64, iat: Option<u64>, nbf: Option<u64>) -> serde_json::Value {
        let mut claims = serde_json::json!({"sub": "lab-1", "role": "lab", "iss": ISSUER, "aud": ISSUER, "exp": exp});
        if let Some(iat) = iat {
            claims["iat"] = iat.into();
        }
        if let Some(nbf) = nbf {
            claims["nbf"] = nbf.into();
        }
        claims
    }

    #[test]
    fn a_token_not_valid_yet_or_living_too_long_is_refused() {
        let k = keys();
        let now = jsonwebtoken::get_current_timestamp();
        let hour = 3600;
        assert!(k.verify(&signed(claims(now + hour, Some(now), None))).is_ok());
        assert!(
            k.verify(&signed(claims(now + hour, Some(now), Some(now + 10)))).is_ok(),
            "within the leeway"
        );
        assert!(
            k.verify(&signed(claims(now + 2 * 86_400, Some(now), Some(now + 86_400))))
                .is_err(),
            "valid from tomorrow"
        );
        assert!(
            k.verify(&signed(claims(now + 25 * hour, Some(now), None))).is_err(),
            "25 h lifetime"
        );
        assert!(
            k.verify(&signed(claims(now + 10 * 365 * 86_400, None, None))).is_err(),
            "ten years, no iat"
        );
        assert!(
            k.verify(&signed(claims(
                now + 3650 * 86_400,
                Some(now + 3650 * 86_400 - hour),
                None
            )))
            .is_err(),
            "an iat in the future does not shorten the lifetime"
        );
        let short = keys().with_max_ttl(Duration::from_secs(600));
        assert!(short.verify(&signed(claims(now + hour, Some(now), None))).is_err());
        assert!(short.issue(Role::Lab, "lab-1", Duration::from_secs(3600)).is_err());
    }

    #[test]
    fn a_subject_is_visible_ascii() {
        let k = keys();
        let now = jsonwebtoken::get_current_timestamp();
        for sub in ["lab 1", "lab#\u{7}", "läb"] {
            let mut c = claims(now + 60, Some(now), None);
            c["sub"] = sub.into();
            assert!(k.verify(&signed(c)).is_err(), "{sub:?}");
        }
    }
}
