//! Webhooks: endpoints that receive domain events, signed by the Standard Webhooks convention
//! (<https://www.standardwebhooks.com>), retried with backoff, and refused where they would reach inside the
//! lab's own network.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use uuid::Uuid;

use super::event::{DomainEvent, EventType};

/// Webhooks a deployment may have: each event fans out to each subscribed one in the relay's transaction
/// (100 actions at most), so the number is bounded.
pub const MAX_WEBHOOKS: usize = 20;

/// The e-mail channel's id: e-mails to patients are queued, retried and logged as deliveries to a webhook
/// with this id (its outbox is `OUTBOX#00000000-0000-0000-0000-000000000000`), so one relay serves both.
pub const EMAIL_CHANNEL: Uuid = Uuid::nil();

/// Longest endpoint URL.
pub const MAX_URL_CHARS: usize = 2000;

/// An endpoint that receives events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Id.
    pub id: Uuid,
    /// Where events are POSTed.
    pub url: String,
    /// The types it receives; empty: all.
    pub types: Vec<EventType>,
    /// What it is for.
    pub description: String,
    /// Whether events are delivered to it (false: disabled by an admin, by a 410, or after failing too long).
    pub enabled: bool,
    /// Why it was disabled, when it was not by an admin's PUT.
    pub disabled_reason: Option<String>,
    /// When it was created; it receives the events that occurred from then on.
    pub created_at: String,
    /// Since when every attempt has failed (cleared by a 2xx).
    pub failing_since: Option<String>,
    /// The signing secret, `whsec_<base64>`.
    pub secret: String,
    /// Version, for conditional updates.
    pub version: u64,
}

impl Webhook {
    /// Whether `event` goes to this endpoint: enabled, subscribed to its type, and the event occurred after
    /// the endpoint was created.
    pub fn wants(&self, event: &DomainEvent) -> bool {
        self.enabled
            && (self.types.is_empty() || self.types.contains(&event.kind))
            && event.occurred_at >= self.created_at
    }
}

/// A fresh signing secret: `whsec_` and 32 random bytes in base64, as Standard Webhooks libraries read it.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("whsec_{}", STANDARD.encode(bytes))
}

/// The `webhook-signature` header of `body` sent as message `id` at `timestamp` (epoch seconds) with
/// `secret`: `v1,<base64 of HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`, the key being the secret's base64
/// after `whsec_`. `None` for a secret that is not of that form.
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = STANDARD.decode(secret.strip_prefix("whsec_")?).ok()?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).ok()?;
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    Some(format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())))
}

/// Which endpoints a deployment may call (`MEDBOOK_WEBHOOK_TARGETS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetPolicy {
    /// `https` only, and only public addresses (the default with Amazon DynamoDB: production).
    Public,
    /// As `Public`, and also `http` or `https` to this machine's loopback addresses (the default with the
    /// embedded engine: development).
    Loopback,
    /// Any `http(s)` URL, private networks included: for a lab whose receivers are on its own network
    /// (the documented override; it gives up the SSRF protection).
    Any,
}

impl TargetPolicy {
    /// Whether an address may be called.
    pub fn allows(self, ip: IpAddr) -> bool {
        match self {
            Self::Any => true,
            Self::Loopback => ip.is_loopback() || is_public(ip),
            Self::Public => is_public(ip),
        }
    }

    /// Whether `url` may be registered: `http(s)`, no credentials in it, `https` unless the policy allows
    /// http here, and a literal address only where allowed (a host name is checked each time it is resolved).
    ///
    /// # Errors
    /// What is wrong with it.
    pub fn check_url(self, url: &str) -> Result<url::Url, String> {
        if url.chars().count() > MAX_URL_CHARS {
            return Err(format!("must be at most {MAX_URL_CHARS} characters"));
        }
        let parsed = url::Url::parse(url).map_err(|e| format!("is not a URL: {e}"))?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err("must not carry credentials (the signature authenticates medbook)".into());
        }
        let host = parsed.host().ok_or("must have a host")?;
        let ip = match host {
            url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
            url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
            url::Host::Domain(name) if name.eq_ignore_ascii_case("localhost") => Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            url::Host::Domain(_) => None,
        };
        let loopback = ip.is_some_and(|ip| ip.is_loopback());
        match parsed.scheme() {
            "https" => {}
            "http" if self == Self::Any || (self == Self::Loopback && loopback) => {}
            "http" => {
                return Err(match self {
                    Self::Public => "must be https (MEDBOOK_WEBHOOK_TARGETS=any allows http)".into(),
                    _ => "must be https, or http to this machine (localhost, 127.0.0.1, [::1])".into(),
                });
            }
            other => return Err(format!("must be https, not {other}")),
        }
        if let Some(ip) = ip
            && !self.allows(ip)
        {
            return Err(format!(
                "is a private, loopback or link-local address ({ip}), which MEDBOOK_WEBHOOK_TARGETS={} refuses",
                self.name()
            ));
        }
        Ok(parsed)
    }

    /// The policy's name, as `MEDBOOK_WEBHOOK_TARGETS` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Loopback => "loopback",
            Self::Any => "any",
        }
    }
}

/// Whether `ip` is a public address: not loopback, private, link-local (the cloud metadata service among
/// them), shared (CGNAT), documentation, benchmarking, multicast, broadcast or unspecified.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || (first == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
                || v6 == Ipv6Addr::from_bits(1)
                || v6.segments()[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240)
}

/// The wait before retry `attempt` (1 after the first failure): `base` doubled per attempt up to `cap`,
/// with full jitter between half of it and all of it (`jitter` in 0..1), so endpoints that fail together are
/// not retried together.
pub fn backoff(attempt: u32, base: Duration, cap: Duration, jitter: f64) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let wait = exp.min(cap);
    wait.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// How one delivery attempt ended, as the deliveries log shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AttemptOutcome {
    /// The endpoint answered 2xx: the event is delivered.
    Delivered,
    /// It failed; the event is tried again later.
    Retrying,
    /// It failed, and the event's retry period is over: no more attempts.
    GaveUp,
    /// The endpoint answered 410 Gone: it is disabled.
    Gone,
    /// Nothing to send (an e-mail to a patient without an address, or a "results ready" mail that went out
    /// for the same booking within the quiet period).
    Skipped,
}

/// One recorded delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Attempt id (UUID v7: ids sort by time).
    pub id: Uuid,
    /// The event (the `webhook-id` of the delivery).
    pub event_id: Uuid,
    /// Its type.
    pub event_type: EventType,
    /// Its patient, when it has one.
    pub patient_id: Option<Uuid>,
    /// When the event occurred.
    pub occurred_at: String,
    /// When the attempt was sent.
    pub attempted_at: String,
    /// The HTTP status, when the endpoint answered.
    pub status: Option<u16>,
    /// Time to the answer (or to the failure).
    pub latency_ms: u64,
    /// What went wrong, when something did.
    pub error: Option<String>,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// Which attempt at this event this was (1: the first).
    pub attempt: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_standard_webhooks_example() {
        // The worked example of the Standard Webhooks specification (spec/standard-webhooks.md, "Signature
        // scheme"), also the test vector of its reference libraries.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let sig = signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body).unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert_eq!(signature("not-a-secret", "m", 1, b""), None);
        assert!(new_secret().starts_with("whsec_"));
        assert_eq!(STANDARD.decode(&new_secret()[6..]).unwrap().len(), 32);
    }

    #[test]
    fn production_refuses_http_and_inner_addresses() {
        let p = TargetPolicy::Public;
        assert!(p.check_url("https://hooks.example.com/medbook").is_ok());
        for bad in [
            "http://hooks.example.com/x",
            "https://127.0.0.1/x",
            "https://localhost/x",
            "https://10.1.2.3/x",
            "https://192.168.0.1/x",
            "https://172.16.0.1/x",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/x",
            "https://[::1]/x",
            "https://[fe80::1]/x",
            "https://[fd00::1]/x",
            "https://[::ffff:10.0.0.1]/x",
            "https://0.0.0.0/x",
            "ftp://hooks.example.com/x",
            "https://user:pw@hooks.example.com/x",
            "not a url",
        ] {
            assert!(p.check_url(bad).is_err(), "{bad}");
        }
        assert!(is_public("8.8.8.8".parse().unwrap()));
        assert!(is_public("2606:4700::1111".parse().unwrap()));
    }

    #[test]
    fn development_allows_loopback_and_the_override_allows_all() {
        let d = TargetPolicy::Loopback;
        assert!(d.check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(d.check_url("http://localhost:9000/hook").is_ok());
        assert!(d.check_url("http://[::1]:9000/hook").is_ok());
        assert!(d.check_url("http://10.0.0.1/hook").is_err());
        assert!(d.check_url("https://169.254.169.254/").is_err());
        assert!(d.check_url("http://hooks.example.com/").is_err());
        let any = TargetPolicy::Any;
        assert!(any.check_url("http://10.0.0.1/hook").is_ok());
        assert!(any.allows("169.254.169.254".parse().unwrap()));
    }

    #[test]
    fn backoff_doubles_to_its_cap_with_jitter() {
        let (base, cap) = (Duration::from_secs(5), Duration::from_secs(3600));
        assert_eq!(backoff(1, base, cap, 1.0), Duration::from_secs(5));
        assert_eq!(backoff(2, base, cap, 1.0), Duration::from_secs(10));
        assert_eq!(backoff(3, base, cap, 0.0), Duration::from_secs(10));
        assert_eq!(backoff(40, base, cap, 1.0), cap);
        assert_eq!(backoff(40, base, cap, 0.0), cap / 2);
    }
}
