//! Sign-in identities and the patients they are: resolving a link on each request (cached), self-registration,
//! and staff linking an identity to an existing patient.
//!
//! A link is read with one strongly consistent GetItem and then kept in this replica's memory for the link cache's lifetime
//! (`MEDBOOK_IDENTITY_CACHE_S`, default 300 s), so a signed-in patient's requests cost no extra call while it is
//! cached; "no link" is kept for at most [`NEGATIVE_TTL`], so a registration made through another replica is
//! seen within seconds. An unlinked identity stops working at once on the replica that unlinked it (which keeps
//! "no link" from then on; a lookup that began before cannot put the old answer back) and on the others within the
//! cache's lifetime.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use uuid::Uuid;

use super::ServiceError;
use crate::{
    domain::{
        audit::AuditDraft,
        event::{DomainEvent, EventType},
        patient::{LinkedIdentity, NewPatient, Patient},
        timefmt,
    },
    store::{
        Store,
        identities::{LinkOutcome, RegisterOutcome, UnlinkOutcome},
    },
};

/// Longest time "this identity has no patient" is believed without asking again.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(5);
/// Entries the cache holds at most; past it, expired entries go, and if none had, all.
const MAX_ENTRIES: usize = 100_000;

fn identity_linked() -> ServiceError {
    ServiceError::conflict(
        "identity-linked",
        "this sign-in identity is linked to a patient already (an identity is one patient)",
    )
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    patient: Option<Uuid>,
    until: Instant,
    /// When this answer was known: a lookup that started before it (and may have read the table before a link
    /// changed) does not replace it.
    known_at: Instant,
}

/// Identity use cases.
#[derive(Debug, Clone)]
pub struct Identities {
    store: Store,
    ttl: Duration,
    cache: Arc<Mutex<HashMap<(String, String), Entry>>>,
}

impl Identities {
    /// Identities over `store`, caching links for `ttl` (zero: not at all).
    pub fn new(store: Store, ttl: Duration) -> Self {
        Self {
            store,
            ttl,
            cache: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The patient `issuer`/`sub` is linked to, if any: from the cache, else one GetItem.
    ///
    /// # Errors
    /// Engine failures.
    pub async fn patient_of(&self, issuer: &str, sub: &str) -> Result<Option<Uuid>, ServiceError> {
        let key = (issuer.to_owned(), sub.to_owned());
        if let Some(entry) = self.lock().get(&key)
            && entry.until > Instant::now()
        {
            return Ok(entry.patient);
        }
        let started = Instant::now();
        // Strongly consistent: right after an unlink (or a link) on any replica, the table's answer is the new one.
        let patient = self.store.identity_patient(issuer, sub).await?;
        self.remember(key, patient, started);
        Ok(patient)
    }

    /// Registers a new patient for the signed-in identity `issuer`/`sub` and links the identity to it, in one
    /// transaction.
    ///
    /// # Errors
    /// 409 `identity-linked` when the identity is a patient already, 409 `email-taken`; engine failures.
    pub async fn register(
        &self,
        issuer: &str,
        sub: &str,
        new: NewPatient,
        audit: &AuditDraft,
    ) -> Result<Patient, ServiceError> {
        if !new.identifiers.is_empty() {
            return Err(ServiceError::Invalid(vec![super::FieldError::new(
                "identifiers",
                "identifiers are recorded by the lab, not by the patient",
            )]));
        }
        let patient = Patient::create(new, &timefmt::now());
        // The new patient acts as themself: their own trail shows the registration as theirs.
        let mut event = audit.event(patient.id);
        event.actor.sub = patient.id.to_string();
        let created = DomainEvent::new(EventType::PatientCreated, patient.id, &patient.created_at).with("by", "self");
        match self
            .store
            .register_patient(&patient, issuer, sub, &event, &[created])
            .await?
        {
            RegisterOutcome::Registered => {
                self.remember((issuer.to_owned(), sub.to_owned()), Some(patient.id), Instant::now());
                Ok(patient)
            }
            RegisterOutcome::IdentityLinked => Err(identity_linked()),
            RegisterOutcome::EmailTaken => Err(super::patients::email_taken()),
            RegisterOutcome::IdTaken => Err(ServiceError::Internal("patient id taken".into())),
        }
    }

    /// Links `issuer`/`sub` to the existing patient `patient_id`, by staff member `by`.
    ///
    /// # Errors
    /// 404 when there is no such patient, 409 `identity-linked` when the identity is linked already; engine
    /// failures.
    pub async fn link(
        &self,
        patient_id: Uuid,
        issuer: &str,
        sub: &str,
        by: &str,
        audit: &AuditDraft,
    ) -> Result<(), ServiceError> {
        let link = LinkedIdentity {
            issuer: issuer.to_owned(),
            sub: sub.to_owned(),
            linked_at: timefmt::now(),
            linked_by: by.to_owned(),
        };
        match self
            .store
            .link_identity(patient_id, &link, &audit.event(patient_id))
            .await?
        {
            LinkOutcome::Linked => {
                self.remember((issuer.to_owned(), sub.to_owned()), Some(patient_id), Instant::now());
                Ok(())
            }
            LinkOutcome::NoPatient => Err(ServiceError::NotFound("patient")),
            LinkOutcome::IdentityLinked => Err(identity_linked()),
        }
    }

    /// The identities linked to `patient_id` (one Query).
    ///
    /// # Errors
    /// Engine failures.
    pub async fn of_patient(&self, patient_id: Uuid) -> Result<Vec<LinkedIdentity>, ServiceError> {
        Ok(self.store.patient_identities(patient_id).await?)
    }

    /// Removes the link of `issuer`/`sub` to `patient_id`. This replica forgets it at once; the others within
    /// their cache's lifetime.
    ///
    /// # Errors
    /// 404 when the identity is not linked to this patient; engine failures.
    pub async fn unlink(
        &self,
        patient_id: Uuid,
        issuer: &str,
        sub: &str,
        audit: &AuditDraft,
    ) -> Result<(), ServiceError> {
        match self
            .store
            .unlink_identity(patient_id, issuer, sub, &audit.event(patient_id))
            .await?
        {
            UnlinkOutcome::Unlinked => {
                // "No link" from now on; a lookup still in flight from before cannot put the old answer back.
                self.remember((issuer.to_owned(), sub.to_owned()), None, Instant::now());
                Ok(())
            }
            UnlinkOutcome::NotLinked => Err(ServiceError::NotFound("identity link")),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Entry>> {
        self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps `patient` as the answer for `key`, known since `known_at`, unless the cache holds a newer one.
    fn remember(&self, key: (String, String), patient: Option<Uuid>, known_at: Instant) {
        let ttl = if patient.is_some() {
            self.ttl
        } else {
            self.ttl.min(NEGATIVE_TTL)
        };
        let now = Instant::now();
        let mut cache = self.lock();
        if cache.get(&key).is_some_and(|e| e.known_at > known_at) {
            return;
        }
        if ttl.is_zero() {
            cache.remove(&key);
            return;
        }
        if cache.len() >= MAX_ENTRIES {
            cache.retain(|_, e| e.until > now);
            if cache.len() >= MAX_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(
            key,
            Entry {
                patient,
                until: now + ttl,
                known_at,
            },
        );
    }
}
