//! When a patient may see a result: the release policy and the rule that applies it.
//!
//! Release is never stored as a flag that a background job flips: it follows, at every read, from what the
//! result carries (its verification, review, a doctor's hold and when a hold was lifted) and from the policy
//! in force. So a time-based release needs no scheduler, a hold is honoured the moment it is written, and
//! every patient-facing view (JSON, FHIR, the observation series, the report) applies the one function
//! [`release`].

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use super::timefmt;

/// Longest delay `on-final-after:<hours>` accepts: 30 days.
pub const MAX_RELEASE_DELAY_HOURS: u32 = 720;

/// When a verified result is released to the patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReleasePolicy {
    /// As soon as it is verified (final): the 21st Century Cures Act's default in the US.
    #[default]
    OnFinal,
    /// Once a doctor has reviewed it: common outside the US.
    OnReview,
    /// When it is final and `hours` have passed since verification, or a doctor reviewed it, whichever is first.
    OnFinalAfter {
        /// Hours after verification.
        hours: u32,
    },
}

impl fmt::Display for ReleasePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OnFinal => f.write_str("on-final"),
            Self::OnReview => f.write_str("on-review"),
            Self::OnFinalAfter { hours } => write!(f, "on-final-after:{hours}"),
        }
    }
}

/// A release policy that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be on-final, on-review or on-final-after:<hours> (1 to {MAX_RELEASE_DELAY_HOURS}), not `{0}`")]
pub struct BadReleasePolicy(pub String);

impl FromStr for ReleasePolicy {
    type Err = BadReleasePolicy;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "on-final" => Ok(Self::OnFinal),
            "on-review" => Ok(Self::OnReview),
            _ => text
                .strip_prefix("on-final-after:")
                .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|h| h.parse().ok())
                .filter(|h| (1..=MAX_RELEASE_DELAY_HOURS).contains(h))
                .map(|hours| Self::OnFinalAfter { hours })
                .ok_or_else(|| BadReleasePolicy(text.to_owned())),
        }
    }
}

impl Serialize for ReleasePolicy {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ReleasePolicy {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a result is not (yet) released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Withheld {
    /// Not verified by a second lab user yet.
    NotVerified,
    /// A doctor holds it from the patient.
    Held,
    /// The policy waits for a doctor's review.
    AwaitingReview,
    /// The policy releases it later (see `due`).
    Scheduled,
}

/// The release state of a result at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Released since `at`.
    Released {
        /// When it was (or became) released.
        at: OffsetDateTime,
    },
    /// Not released.
    Withheld {
        /// Why.
        why: Withheld,
        /// When the policy releases it without anything else happening (`Scheduled` only).
        due: Option<OffsetDateTime>,
    },
}

impl Release {
    /// Whether the patient may see the result now.
    pub fn is_released(self) -> bool {
        matches!(self, Self::Released { .. })
    }
}

/// What a result's release depends on, as a result carries it and each of its observations keeps a copy.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseFacts {
    /// When it was verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<String>,
    /// When a doctor reviewed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewed_at: Option<String>,
    /// Whether a doctor holds it.
    #[serde(default)]
    pub held: bool,
    /// When the last hold was lifted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_lifted_at: Option<String>,
    /// The test type's own rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<ReleasePolicy>,
}

/// The release state at `now` under `default` (which the test type's own rule, `facts.release`,
/// overrides). A hold withholds whatever the policy says; once it is lifted, the result is released from the
/// later of the policy's moment and the lift.
pub fn release(facts: &ReleaseFacts, default: ReleasePolicy, now: OffsetDateTime) -> Release {
    let withheld = |why, due| Release::Withheld { why, due };
    let Some(verified_at) = facts.verified_at.as_deref().and_then(timefmt::parse_instant) else {
        return withheld(Withheld::NotVerified, None);
    };
    if facts.held {
        return withheld(Withheld::Held, None);
    }
    let reviewed_at = facts.reviewed_at.as_deref().and_then(timefmt::parse_instant);
    let from = match facts.release.unwrap_or(default) {
        ReleasePolicy::OnFinal => verified_at,
        ReleasePolicy::OnReview => match reviewed_at {
            Some(at) => at.max(verified_at),
            None => return withheld(Withheld::AwaitingReview, None),
        },
        ReleasePolicy::OnFinalAfter { hours } => {
            let due = verified_at + Duration::hours(i64::from(hours));
            match reviewed_at {
                Some(at) if at < due => at.max(verified_at),
                _ if now >= due => due,
                _ => return withheld(Withheld::Scheduled, Some(due)),
            }
        }
    };
    let lifted = facts.hold_lifted_at.as_deref().and_then(timefmt::parse_instant);
    Release::Released {
        at: lifted.map_or(from, |l| l.max(from)),
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::domain::booking::{LabResult, ReleaseHold, ResultStatus, Review, Verification};

    fn result() -> LabResult {
        LabResult {
            status: ResultStatus::Preliminary,
            revision: 1,
            version: 1,
            values: Vec::new(),
            critical: false,
            delta_flag: false,
            performed_at: "2026-12-01T08:00:00Z".into(),
            collected_at: None,
            comment: None,
            recorded_at: "2026-12-01T09:00:00.000Z".into(),
            recorded_by: "lab-1".into(),
            verification: None,
            review: None,
            hold: None,
            hold_lifted_at: None,
            release: None,
            corrects: None,
        }
    }

    fn verified(at: &str) -> LabResult {
        LabResult {
            status: ResultStatus::Final,
            verification: Some(Verification {
                verifier_id: "lab-2".into(),
                verified_at: at.into(),
                legacy: false,
            }),
            ..result()
        }
    }

    fn reviewed(mut r: LabResult, at: &str) -> LabResult {
        r.review = Some(Review {
            reviewer_id: "doctor-1".into(),
            reviewed_at: at.into(),
            conclusion: "ok".into(),
        });
        r
    }

    const NOW: OffsetDateTime = datetime!(2026-12-02 12:00 UTC);

    #[test]
    fn the_policy_parses_and_prints_as_configured() {
        for text in ["on-final", "on-review", "on-final-after:48", "on-final-after:720"] {
            assert_eq!(text.parse::<ReleasePolicy>().unwrap().to_string(), text);
        }
        for bad in [
            "",
            "on-final-after:",
            "on-final-after:0",
            "on-final-after:721",
            "on-final-after:+4",
            "final",
        ] {
            assert!(bad.parse::<ReleasePolicy>().is_err(), "{bad}");
        }
    }

    #[test]
    fn nothing_unverified_is_released_under_any_policy() {
        for policy in [
            ReleasePolicy::OnFinal,
            ReleasePolicy::OnReview,
            ReleasePolicy::OnFinalAfter { hours: 1 },
        ] {
            let r = reviewed(result(), "2026-12-01T10:00:00Z");
            assert_eq!(
                release(&r.release_facts(), policy, NOW),
                Release::Withheld {
                    why: Withheld::NotVerified,
                    due: None
                }
            );
        }
    }

    #[test]
    fn on_final_releases_at_verification_and_on_review_at_the_review() {
        let r = verified("2026-12-01T10:00:00Z");
        assert_eq!(
            release(&r.release_facts(), ReleasePolicy::OnFinal, NOW),
            Release::Released {
                at: datetime!(2026-12-01 10:00 UTC)
            }
        );
        assert!(!release(&r.release_facts(), ReleasePolicy::OnReview, NOW).is_released());
        let r = reviewed(r, "2026-12-01T11:00:00Z");
        assert_eq!(
            release(&r.release_facts(), ReleasePolicy::OnReview, NOW),
            Release::Released {
                at: datetime!(2026-12-01 11:00 UTC)
            }
        );
    }

    #[test]
    fn on_final_after_releases_at_the_earlier_of_the_delay_and_the_review() {
        let policy = ReleasePolicy::OnFinalAfter { hours: 48 };
        let r = verified("2026-12-01T10:00:00Z");
        assert_eq!(
            release(&r.release_facts(), policy, NOW),
            Release::Withheld {
                why: Withheld::Scheduled,
                due: Some(datetime!(2026-12-03 10:00 UTC))
            }
        );
        assert_eq!(
            release(&r.release_facts(), policy, datetime!(2026-12-03 10:00 UTC)),
            Release::Released {
                at: datetime!(2026-12-03 10:00 UTC)
            }
        );
        let r = reviewed(r, "2026-12-01T12:00:00Z");
        assert_eq!(
            release(&r.release_facts(), policy, NOW),
            Release::Released {
                at: datetime!(2026-12-01 12:00 UTC)
            }
        );
    }

    #[test]
    fn a_hold_withholds_under_every_policy_and_its_lift_dates_the_release() {
        let mut r = reviewed(verified("2026-12-01T10:00:00Z"), "2026-12-01T11:00:00Z");
        r.hold = Some(ReleaseHold {
            doctor_id: "doctor-1".into(),
            held_at: "2026-12-01T10:30:00Z".into(),
            reason: "discuss in person".into(),
        });
        for policy in [ReleasePolicy::OnFinal, ReleasePolicy::OnReview] {
            assert_eq!(
                release(&r.release_facts(), policy, NOW),
                Release::Withheld {
                    why: Withheld::Held,
                    due: None
                }
            );
        }
        r.hold = None;
        r.hold_lifted_at = Some("2026-12-02T09:00:00Z".into());
        assert_eq!(
            release(&r.release_facts(), ReleasePolicy::OnFinal, NOW),
            Release::Released {
                at: datetime!(2026-12-02 09:00 UTC)
            }
        );
    }

    #[test]
    fn the_test_types_own_rule_overrides_the_default() {
        let mut r = verified("2026-12-01T10:00:00Z");
        r.release = Some(ReleasePolicy::OnReview);
        assert!(!release(&r.release_facts(), ReleasePolicy::OnFinal, NOW).is_released());
    }
}
