//! Access tokens from an OpenID Connect provider (Keycloak, Auth0, Entra ID, Amazon Cognito, Google).
//!
//! The provider is found through its discovery document (`<issuer>/.well-known/openid-configuration`), its keys
//! through the document's `jwks_uri`. A token must name a key (`kid`) and one of RS256, PS256, ES256 or EdDSA;
//! the key's own type pins the algorithms it verifies (an RSA key: RS256 and PS256; a P-256 key: ES256; an
//! Ed25519 key: EdDSA; a key stating `alg`: that one only), so no key verifies a token of another kind.
//! `iss`, `aud` (or, for an access token without `aud`, Cognito's `client_id`), `exp`, `nbf` and `sub` are
//! checked, and ID tokens are refused (`token_use` other than `access`, or `typ: ID`).
//!
//! Keys are cached. An unknown `kid` refetches them, at most once per [`REFRESH_EVERY`] (configurable); keys older than
//! [`STALE_AFTER`] are refetched in the background. A failed fetch keeps the cached keys, so the provider being
//! down does not stop tokens signed with keys already known.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use jsonwebtoken::{
    Algorithm, DecodingKey, Validation,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse},
};
use serde::Deserialize;

use super::{Identity, LEEWAY_SECONDS, MAX_TOKEN_BYTES, Role, TokenError};

/// Least time between two fetches of the provider's keys, unless configured otherwise.
pub const REFRESH_EVERY: Duration = Duration::from_secs(60);
/// Age after which cached keys are refetched in the background (so a key the provider withdrew stops
/// verifying within about this long).
pub const STALE_AFTER: Duration = Duration::from_secs(3600);
/// Time one fetch from the provider may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest accepted `sub`.
const MAX_SUBJECT: usize = 255;

/// How medbook trusts one OpenID provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcSettings {
    /// The issuer URL, exactly as tokens carry it in `iss` (`MEDBOOK_OIDC_ISSUER`).
    pub issuer: String,
    /// The audience tokens must name (`MEDBOOK_OIDC_AUDIENCE`).
    pub audience: String,
    /// Where the roles are in a token: a dotted path (`MEDBOOK_OIDC_ROLES_CLAIM`).
    pub roles_claim: Vec<String>,
    /// The provider's role names and the medbook role each means (`MEDBOOK_OIDC_ROLE_MAP`).
    pub role_map: Vec<(String, Role)>,
    /// Least time between two fetches of the keys (`MEDBOOK_OIDC_REFRESH_S`, default [`REFRESH_EVERY`]).
    pub refresh_every: Duration,
}

/// Why an OpenID setting was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadOidcSetting(pub String);

impl OidcSettings {
    /// Settings from the four variables' values.
    ///
    /// # Errors
    /// An issuer that is not https (http only on a loopback address) or has a query, fragment or `#`; an empty
    /// audience or claim path; a role map entry that is not `<provider role>:<patient|lab|doctor|admin>`.
    pub fn new(issuer: &str, audience: &str, roles_claim: &str, role_map: &str) -> Result<Self, BadOidcSetting> {
        check_issuer(issuer)?;
        if audience.trim().is_empty() {
            return Err(BadOidcSetting("the audience must not be empty".into()));
        }
        let roles_claim: Vec<String> = roles_claim.split('.').map(str::to_owned).collect();
        if roles_claim.iter().any(String::is_empty) {
            return Err(BadOidcSetting(
                "the roles claim is a dotted path of claim names, e.g. realm_access.roles".into(),
            ));
        }
        let mut map = Vec::new();
        for entry in role_map.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (theirs, ours) = entry
                .rsplit_once(':')
                .ok_or_else(|| BadOidcSetting(format!("`{entry}` is not <provider role>:<medbook role>")))?;
            let role = match ours.trim() {
                "patient" => Role::Patient,
                "lab" => Role::Lab,
                "doctor" => Role::Doctor,
                "admin" => Role::Admin,
                other => {
                    return Err(BadOidcSetting(format!(
                        "`{other}` is no medbook role (patient, lab, doctor, admin)"
                    )));
                }
            };
            if theirs.trim().is_empty() {
                return Err(BadOidcSetting(format!("`{entry}` names no provider role")));
            }
            map.push((theirs.trim().to_owned(), role));
        }
        if map.is_empty() {
            return Err(BadOidcSetting(
                "map at least one provider role, e.g. lab-staff:lab,physician:doctor".into(),
            ));
        }
        Ok(Self {
            issuer: issuer.to_owned(),
            audience: audience.trim().to_owned(),
            roles_claim,
            role_map: map,
            refresh_every: REFRESH_EVERY,
        })
    }

    /// The medbook role of a token's claims: of the provider roles it maps, the first in the order admin,
    /// doctor, lab, patient.
    fn role_of(&self, claims: &serde_json::Value) -> Option<Role> {
        let mut value = claims;
        for name in &self.roles_claim {
            value = value.get(name)?;
        }
        let names: Vec<&str> = match value {
            serde_json::Value::String(s) => s.split_whitespace().collect(),
            serde_json::Value::Array(items) => items.iter().filter_map(serde_json::Value::as_str).collect(),
            _ => return None,
        };
        let mapped: Vec<Role> = self
            .role_map
            .iter()
            .filter(|(theirs, _)| names.contains(&theirs.as_str()))
            .map(|(_, ours)| *ours)
            .collect();
        [Role::Admin, Role::Doctor, Role::Lab, Role::Patient]
            .into_iter()
            .find(|r| mapped.contains(r))
    }
}

/// An issuer medbook may trust: https, or http on a loopback address; no query, fragment or `#` (keys use `#`
/// as a separator).
///
/// # Errors
/// Saying which of those it is not.
pub fn check_issuer(issuer: &str) -> Result<(), BadOidcSetting> {
    let bad = |why: &str| Err(BadOidcSetting(format!("`{issuer}`: {why}")));
    if issuer.len() > 256 || issuer.contains(['#', '?']) || issuer.chars().any(|c| !c.is_ascii_graphic()) {
        return bad("an issuer is a URL of at most 256 visible characters, without query or fragment");
    }
    if let Some(rest) = issuer.strip_prefix("https://") {
        return if rest.is_empty() || rest.starts_with('/') {
            bad("names no host")
        } else {
            Ok(())
        };
    }
    let Some(rest) = issuer.strip_prefix("http://") else {
        return bad("an issuer must be an https URL");
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        bad("an issuer must be https (http is allowed only on a loopback address)")
    }
}

/// A provider key and the algorithms it may verify.
struct Key {
    algorithms: Vec<Algorithm>,
    decoding: DecodingKey,
}

/// The keys as last fetched.
struct KeyCache {
    keys: HashMap<String, Arc<Key>>,
    fetched: Option<Instant>,
}

/// Verifies the provider's access tokens.
pub struct OidcVerifier {
    settings: OidcSettings,
    http: reqwest::Client,
    cache: RwLock<KeyCache>,
    /// Held while fetching; the time of the last attempt, successful or not.
    refresh: tokio::sync::Mutex<Option<Instant>>,
    /// A background refresh is queued or running (so a stale cache spawns one, not one per request).
    refreshing: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcVerifier")
            .field("issuer", &self.settings.issuer)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

impl OidcVerifier {
    /// A verifier for `settings`, with no keys yet (the first token, or [`OidcVerifier::refresh`], fetches them).
    ///
    /// # Panics
    /// When the HTTP client cannot be built (no TLS roots).
    pub fn new(settings: OidcSettings) -> Self {
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client with TLS");
        Self {
            settings,
            http,
            cache: RwLock::new(KeyCache {
                keys: HashMap::new(),
                fetched: None,
            }),
            refresh: tokio::sync::Mutex::new(None),
            refreshing: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Verifies `token` and returns whose it is.
    ///
    /// # Errors
    /// [`TokenError::TooLong`]; [`TokenError::NoRole`] for a good token whose roles map to no medbook role;
    /// [`TokenError::Invalid`] for anything else (algorithm, unknown key, signature, claims).
    pub async fn verify(self: &Arc<Self>, token: &str) -> Result<Identity, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLong);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| TokenError::Invalid(e.to_string()))?;
        if !matches!(
            header.alg,
            Algorithm::RS256 | Algorithm::PS256 | Algorithm::ES256 | Algorithm::EdDSA
        ) {
            return Err(TokenError::Invalid(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| TokenError::Invalid("the token names no key (kid)".into()))?;
        let key = match self.key(&kid) {
            Some(key) => key,
            None => {
                self.refresh_if_due().await;
                self.key(&kid)
                    .ok_or_else(|| TokenError::Invalid(format!("unknown key `{kid}`")))?
            }
        };
        self.refresh_in_background_if_stale();
        if !key.algorithms.contains(&header.alg) {
            return Err(TokenError::Invalid(format!(
                "key `{kid}` does not verify {:?} tokens",
                header.alg
            )));
        }
        let mut validation = Validation::new(header.alg);
        validation.algorithms = vec![header.alg];
        validation.set_issuer(&[&self.settings.issuer]);
        // Checked below: Cognito's access tokens carry `client_id` instead of `aud`.
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &key.decoding, &validation)
            .map_err(|e| TokenError::Invalid(e.to_string()))?;
        let claims = data.claims;
        // An ID token says who signed in to an app; it is no access token (Cognito's `token_use: id`, Keycloak's
        // `typ: ID`), even though its `aud` may be the app's client id.
        let token_use = claims.get("token_use").and_then(serde_json::Value::as_str);
        if token_use.is_some_and(|u| u != "access")
            || claims.get("typ").and_then(serde_json::Value::as_str) == Some("ID")
        {
            return Err(TokenError::Invalid("an ID token is not an access token".into()));
        }
        let audience = &self.settings.audience;
        let aud_ok = match claims.get("aud") {
            Some(serde_json::Value::String(a)) => a == audience,
            Some(serde_json::Value::Array(all)) => all.iter().any(|a| a.as_str() == Some(audience)),
            // Cognito's access tokens name their client in `client_id` and carry no `aud`.
            None => {
                token_use == Some("access")
                    && claims.get("client_id").and_then(serde_json::Value::as_str) == Some(audience)
            }
            Some(_) => false,
        };
        if !aud_ok {
            return Err(TokenError::Invalid("the token is for another audience".into()));
        }
        let sub = claims
            .get("sub")
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= MAX_SUBJECT && s.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| TokenError::Invalid(format!("sub must be 1 to {MAX_SUBJECT} visible ASCII characters")))?
            .to_owned();
        let role = self.settings.role_of(&claims).ok_or(TokenError::NoRole)?;
        let verified_email = (claims.get("email_verified") == Some(&serde_json::Value::Bool(true)))
            .then(|| claims.get("email").and_then(serde_json::Value::as_str))
            .flatten()
            .map(str::to_owned);
        Ok(Identity {
            issuer: self.settings.issuer.clone(),
            sub,
            role,
            verified_email,
        })
    }

    fn key(&self, kid: &str) -> Option<Arc<Key>> {
        self.cache
            .read()
            .expect("the key cache lock is never poisoned")
            .keys
            .get(kid)
            .cloned()
    }

    /// Fetches the keys unless a fetch was tried less than [`REFRESH_EVERY`] ago; concurrent callers wait for
    /// the one fetch. A failure is logged and keeps the cached keys.
    pub async fn refresh_if_due(&self) {
        let mut last = self.refresh.lock().await;
        if last.is_some_and(|at| at.elapsed() < self.settings.refresh_every) {
            return;
        }
        *last = Some(Instant::now());
        if let Err(e) = self.refresh().await {
            tracing::warn!(issuer = %self.settings.issuer, error = %e, "could not fetch the OpenID provider's keys; keeping those cached");
        }
    }

    fn refresh_in_background_if_stale(self: &Arc<Self>) {
        let stale = self
            .cache
            .read()
            .expect("the key cache lock is never poisoned")
            .fetched
            .is_none_or(|at| at.elapsed() > STALE_AFTER);
        if stale && !self.refreshing.swap(true, std::sync::atomic::Ordering::AcqRel) {
            let this = Arc::clone(self);
            tokio::spawn(async move {
                this.refresh_if_due().await;
                this.refreshing.store(false, std::sync::atomic::Ordering::Release);
            });
        }
    }

    /// Fetches the discovery document and the key set now, replacing the cached keys.
    ///
    /// # Errors
    /// When the provider cannot be reached, answers an error, or its discovery document names another issuer.
    pub async fn refresh(&self) -> Result<usize, String> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.settings.issuer.trim_end_matches('/')
        );
        let discovery: Discovery = self.get_json(&url).await?;
        if discovery.issuer != self.settings.issuer {
            return Err(format!(
                "the discovery document names issuer `{}`, not `{}`",
                discovery.issuer, self.settings.issuer
            ));
        }
        let set: JwkSet = self.get_json(&discovery.jwks_uri).await?;
        let keys: HashMap<String, Arc<Key>> = set
            .keys
            .iter()
            .filter_map(|jwk| Some((jwk.common.key_id.clone()?, Arc::new(key_of(jwk)?))))
            .collect();
        let count = keys.len();
        let mut cache = self.cache.write().expect("the key cache lock is never poisoned");
        cache.keys = keys;
        cache.fetched = Some(Instant::now());
        tracing::info!(issuer = %self.settings.issuer, keys = count, "fetched the OpenID provider's keys");
        Ok(count)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let response = self.http.get(url).send().await.map_err(|e| format!("{url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("{url}: {}", response.status()));
        }
        let body = response.bytes().await.map_err(|e| format!("{url}: {e}"))?;
        serde_json::from_slice(&body).map_err(|e| format!("{url}: {e}"))
    }
}

/// The key a JWK describes and the algorithms its type allows (and, when it states one, only that); `None`
/// for keys that do not sign (`use: enc`), shared secrets, and curves not accepted.
fn key_of(jwk: &Jwk) -> Option<Key> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let by_type = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![Algorithm::RS256, Algorithm::PS256],
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => vec![Algorithm::ES256],
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => vec![Algorithm::EdDSA],
        _ => return None,
    };
    let algorithms = match jwk.common.key_algorithm {
        None => by_type,
        Some(stated) => {
            let stated = match stated {
                KeyAlgorithm::RS256 => Algorithm::RS256,
                KeyAlgorithm::PS256 => Algorithm::PS256,
                KeyAlgorithm::ES256 => Algorithm::ES256,
                KeyAlgorithm::EdDSA => Algorithm::EdDSA,
                _ => return None,
            };
            by_type.into_iter().filter(|a| *a == stated).collect()
        }
    };
    if algorithms.is_empty() {
        return None;
    }
    Some(Key {
        algorithms,
        decoding: DecodingKey::from_jwk(jwk).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issuer_is_https_or_loopback_http() {
        for good in [
            "https://id.example.org/realms/lab",
            "http://127.0.0.1:8081",
            "http://localhost:9000/x",
            "http://[::1]:80",
        ] {
            assert_eq!(check_issuer(good), Ok(()), "{good}");
        }
        for bad in [
            "http://id.example.org",
            "http://10.0.0.1",
            "ftp://x",
            "https://",
            "https://a/#x",
            "https://a?b",
            "https://a b",
        ] {
            assert!(check_issuer(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn roles_come_from_a_dotted_path_and_the_highest_mapped_role_wins() {
        let s = OidcSettings::new(
            "https://id.example.org",
            "medbook",
            "realm_access.roles",
            "lab-staff:lab, physician:doctor,member:patient,boss:admin",
        )
        .unwrap();
        let claims = |roles: serde_json::Value| serde_json::json!({"realm_access": {"roles": roles}});
        assert_eq!(s.role_of(&claims(serde_json::json!(["lab-staff"]))), Some(Role::Lab));
        assert_eq!(
            s.role_of(&claims(serde_json::json!(["member", "physician", "lab-staff"]))),
            Some(Role::Doctor)
        );
        assert_eq!(s.role_of(&claims(serde_json::json!("member boss"))), Some(Role::Admin));
        assert_eq!(s.role_of(&claims(serde_json::json!(["offline_access"]))), None);
        assert_eq!(s.role_of(&serde_json::json!({"roles": ["lab-staff"]})), None);
        let cognito = OidcSettings::new("https://c.example", "app", "cognito:groups", "staff:lab").unwrap();
        assert_eq!(
            cognito.role_of(&serde_json::json!({"cognito:groups": ["staff"]})),
            Some(Role::Lab)
        );
    }

    #[test]
    fn bad_settings_name_what_is_wrong() {
        assert!(OidcSettings::new("https://a", "", "roles", "x:lab").is_err());
        assert!(OidcSettings::new("https://a", "m", "a..b", "x:lab").is_err());
        assert!(OidcSettings::new("https://a", "m", "roles", "x:root").is_err());
        assert!(OidcSettings::new("https://a", "m", "roles", "").is_err());
        assert!(OidcSettings::new("https://a", "m", "roles", ":lab").is_err());
    }

    #[test]
    fn a_key_verifies_only_the_algorithms_of_its_type_or_the_one_it_states() {
        let rsa: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "RSA", "kid": "r", "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw",
            "e": "AQAB"
        }))
        .unwrap();
        assert_eq!(
            key_of(&rsa).unwrap().algorithms,
            vec![Algorithm::RS256, Algorithm::PS256]
        );
        let mut stated = rsa.clone();
        stated.common.key_algorithm = Some(KeyAlgorithm::PS256);
        assert_eq!(key_of(&stated).unwrap().algorithms, vec![Algorithm::PS256]);
        stated.common.key_algorithm = Some(KeyAlgorithm::ES256);
        assert!(key_of(&stated).is_none(), "an RSA key stating ES256 verifies nothing");
        stated.common.key_algorithm = Some(KeyAlgorithm::HS256);
        assert!(key_of(&stated).is_none());
        let mut enc = rsa;
        enc.common.public_key_use = Some(PublicKeyUse::Encryption);
        assert!(key_of(&enc).is_none(), "an encryption key signs nothing");
        let secret: Jwk =
            serde_json::from_value(serde_json::json!({"kty": "oct", "kid": "s", "k": "c2VjcmV0"})).unwrap();
        assert!(
            key_of(&secret).is_none(),
            "a shared secret from the provider is never trusted"
        );
    }
}
