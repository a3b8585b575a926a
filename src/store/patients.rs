//! Patient profiles, the e-mail guards that keep addresses unique, and the front desk's lookups.

use uuid::Uuid;

use super::{
    Page, PageKey, Store, StoreError,
    expr::Expr,
    from_item,
    items::{GuardItem, PatientItem, attr},
    key, keys, s, to_item,
    tx::{Sent, Tx},
};
use crate::domain::{
    audit::AuditEvent,
    event::DomainEvent,
    patient::{Identifier, Patient, normalise_email},
};

/// The actions of the patient writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PatientAction {
    /// The profile: new, or still at the version the caller read.
    Profile,
    /// The guard of the new e-mail address: absent, or this patient's already.
    EmailGuard,
    /// The guard of the address given up: this patient's (or absent).
    OldEmailGuard,
    /// The guard of the identifier at this index of the patient's list: absent, or this patient's already.
    IdentifierGuard(usize),
    /// The guard of an identifier given up: this patient's (or absent).
    OldIdentifierGuard,
    /// The audit event is new.
    Audit,
    /// A domain event is new.
    Event,
}

/// How [`Store::create_patient`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreatePatientOutcome {
    /// Written.
    Created,
    /// The id is taken.
    IdTaken,
    /// Another patient has this e-mail address.
    EmailTaken,
    /// Another patient has this identifier.
    IdentifierTaken(Identifier),
}

/// How [`Store::replace_patient`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplacePatientOutcome {
    /// Written.
    Replaced,
    /// The stored version moved on, or the patient is gone.
    VersionMoved,
    /// Another patient has the new e-mail address.
    EmailTaken,
    /// Another patient has a new identifier.
    IdentifierTaken(Identifier),
}

/// What a front-desk search asks: patients born on `birth_date` whose folded family name begins with
/// `family` (and given name with `given`, when set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientSearch {
    /// Birth date.
    pub birth_date: time::Date,
    /// Folded family-name prefix.
    pub family: String,
    /// Folded given-name prefix.
    pub given: Option<String>,
}

impl Store {
    /// The transaction of a patient write: the profile, the guard of its e-mail address when the address is
    /// new to it, the release of the guard of `given_up` (the address it had, normalised) when it changed,
    /// and the audit event. `release_old` is false on the retry of a patient whose old address was another
    /// patient's (data from before the guards).
    #[expect(
        clippy::too_many_arguments,
        reason = "one transaction's inputs, each named by its caller"
    )]
    pub(super) fn patient_tx(
        &self,
        patient: &Patient,
        profile: Expr,
        given_up: Option<&str>,
        release_old: bool,
        old_identifiers: &[Identifier],
        audit: &AuditEvent,
        events: &[DomainEvent],
    ) -> Result<Tx<PatientAction>, StoreError> {
        let mut tx = Tx::new(self);
        tx.put(PatientAction::Profile, to_item(&PatientItem::from(patient))?, profile)?;
        let email = patient.email.as_deref().map(normalise_email);
        if let Some(email) = &email
            && given_up != Some(email.as_str())
        {
            tx.put(
                PatientAction::EmailGuard,
                to_item(&GuardItem::email(email, patient.id))?,
                Expr::new().absent_or_eq(attr::PATIENT_ID, patient.id),
            )?;
        }
        if let Some(old) = given_up
            && email.as_deref() != Some(old)
            && release_old
        {
            tx.delete(
                PatientAction::OldEmailGuard,
                key(keys::email_guard_pk(old), keys::EMAIL_GUARD_SK),
                Expr::new().absent_or_eq(attr::PATIENT_ID, patient.id),
            )?;
        }
        for (i, identifier) in patient.identifiers.iter().enumerate() {
            if !old_identifiers.contains(identifier) {
                tx.put(
                    PatientAction::IdentifierGuard(i),
                    to_item(&GuardItem::identifier(identifier, patient.id))?,
                    Expr::new().absent_or_eq(attr::PATIENT_ID, patient.id),
                )?;
            }
        }
        for identifier in old_identifiers {
            if !patient.identifiers.contains(identifier) {
                tx.delete(
                    PatientAction::OldIdentifierGuard,
                    key(
                        keys::identifier_guard_pk(&identifier.system, &identifier.value),
                        keys::IDENTIFIER_GUARD_SK,
                    ),
                    Expr::new().absent_or_eq(attr::PATIENT_ID, patient.id),
                )?;
            }
        }
        tx.put_new(PatientAction::Audit, self.audit_item(audit)?)?;
        self.put_events(&mut tx, PatientAction::Event, events)?;
        Ok(tx)
    }

    /// The transaction of a new patient: its id must be free, and it gives up no address or identifier.
    pub(super) fn new_patient_tx(
        &self,
        patient: &Patient,
        audit: &AuditEvent,
        events: &[DomainEvent],
    ) -> Result<Tx<PatientAction>, StoreError> {
        self.patient_tx(
            patient,
            Expr::new().not_exists(keys::PK),
            None,
            false,
            &[],
            audit,
            events,
        )
    }

    /// The identifier whose guard refused `rejection`, if one did.
    pub(super) fn taken_identifier(patient: &Patient, has: impl Fn(PatientAction) -> bool) -> Option<Identifier> {
        (0..patient.identifiers.len())
            .find(|i| has(PatientAction::IdentifierGuard(*i)))
            .map(|i| patient.identifiers[i].clone())
    }

    /// Stores a new patient and its audit event in one transaction; the id must be free.
    ///
    /// # Errors
    /// Engine failures.
    pub async fn create_patient(
        &self,
        patient: &Patient,
        audit: &AuditEvent,
        events: &[DomainEvent],
    ) -> Result<CreatePatientOutcome, StoreError> {
        let tx = self.new_patient_tx(patient, audit, events)?;
        match self.send(tx).await? {
            Sent::Committed => Ok(CreatePatientOutcome::Created),
            Sent::Rejected(r) if r.has(PatientAction::Profile) => Ok(CreatePatientOutcome::IdTaken),
            Sent::Rejected(r) if r.has(PatientAction::EmailGuard) => Ok(CreatePatientOutcome::EmailTaken),
            Sent::Rejected(r) => match Self::taken_identifier(patient, |a| r.has(a)) {
                Some(identifier) => Ok(CreatePatientOutcome::IdentifierTaken(identifier)),
                None => Err(r.unexpected()),
            },
        }
    }

    /// A patient's profile (GetItem).
    ///
    /// # Errors
    /// When the engine fails or the item is malformed.
    pub async fn get_patient(&self, id: Uuid) -> Result<Option<Patient>, StoreError> {
        self.get(keys::patient_pk(id), keys::PATIENT_PROFILE_SK.to_owned())
            .await?
            .map(|item| from_item::<PatientItem>(item).and_then(Patient::try_from))
            .transpose()
    }

    /// Replaces `old` (whose stored version must still be `patient.version - 1`) with `patient` in one
    /// transaction with its audit event; a changed e-mail address moves its guard in the same transaction.
    ///
    /// # Errors
    /// Engine failures.
    pub async fn replace_patient(
        &self,
        old: &Patient,
        patient: &Patient,
        audit: &AuditEvent,
        events: &[DomainEvent],
    ) -> Result<ReplacePatientOutcome, StoreError> {
        let given_up = old.email.as_deref().map(normalise_email);
        let mut release_old = true;
        loop {
            let previous = Expr::new().eq(attr::VERSION, patient.version - 1);
            let tx = self.patient_tx(
                patient,
                previous,
                given_up.as_deref(),
                release_old,
                &old.identifiers,
                audit,
                events,
            )?;
            return match self.send(tx).await? {
                Sent::Committed => Ok(ReplacePatientOutcome::Replaced),
                Sent::Rejected(r) if r.has(PatientAction::Profile) => Ok(ReplacePatientOutcome::VersionMoved),
                Sent::Rejected(r) if r.has(PatientAction::EmailGuard) => Ok(ReplacePatientOutcome::EmailTaken),
                Sent::Rejected(r) if let Some(identifier) = Self::taken_identifier(patient, |a| r.has(a)) => {
                    Ok(ReplacePatientOutcome::IdentifierTaken(identifier))
                }
                // The old address's guard is another patient's (two patients shared it before guards
                // existed): it stays theirs; this patient just stops using the address.
                Sent::Rejected(r) if r.has(PatientAction::OldEmailGuard) && release_old => {
                    release_old = false;
                    continue;
                }
                Sent::Rejected(r) => Err(r.unexpected()),
            };
        }
    }

    /// The patient with e-mail address `normalised` (normalised already): GetItem of its guard, then of the
    /// profile. `None` when no patient has it.
    ///
    /// # Errors
    /// Engine failures, malformed items.
    pub async fn patient_by_email(&self, normalised: &str) -> Result<Option<Patient>, StoreError> {
        let Some(guard) = self
            .get(keys::email_guard_pk(normalised), keys::EMAIL_GUARD_SK.to_owned())
            .await?
        else {
            return Ok(None);
        };
        let guard: GuardItem = from_item(guard)?;
        // The guard and the profile change in one transaction; a profile read between that lags it is
        // checked, so a stale read never returns a patient under an address they no longer have.
        Ok(self
            .get_patient(guard.patient_id)
            .await?
            .filter(|p| p.email.as_deref().map(normalise_email).as_deref() == Some(normalised)))
    }

    /// The patient with `identifier`: GetItem of its guard, then of the profile (checked to still have it).
    ///
    /// # Errors
    /// Engine failures, malformed items.
    pub async fn patient_by_identifier(&self, identifier: &Identifier) -> Result<Option<Patient>, StoreError> {
        let Some(guard) = self
            .get(
                keys::identifier_guard_pk(&identifier.system, &identifier.value),
                keys::IDENTIFIER_GUARD_SK.to_owned(),
            )
            .await?
        else {
            return Ok(None);
        };
        let guard: GuardItem = from_item(guard)?;
        Ok(self
            .get_patient(guard.patient_id)
            .await?
            .filter(|p| p.identifiers.contains(identifier)))
    }

    /// A page of patients born on `search.birth_date` whose folded family name begins with `search.family`,
    /// in name order: one Query on the birth date's partition of the search index (the given name, when set,
    /// is a filter on that page).
    ///
    /// # Errors
    /// Engine failures, malformed items.
    pub async fn find_patients(
        &self,
        search: &PatientSearch,
        limit: i32,
        start: Option<&PageKey>,
    ) -> Result<Page<Patient>, StoreError> {
        let query = self
            .query_builder()
            .index_name(keys::GSI_PATIENTS_BY_NAME)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#pk", keys::GSI4_PK)
            .expression_attribute_names("#sk", keys::GSI4_SK)
            .expression_attribute_values(":pk", s(keys::patients_by_name_pk(search.birth_date)))
            .expression_attribute_values(":prefix", s(&search.family));
        let query = match &search.given {
            Some(given) => Self::filtered(query, Expr::new().begins_with(attr::SEARCH_GIVEN, given))?,
            None => query,
        };
        let key = [keys::PK, keys::SK, keys::GSI4_PK, keys::GSI4_SK];
        let page = self
            .query_page(query, limit, start, &key, |item: PatientItem| Patient::try_from(item))
            .await?;
        Ok(Page {
            items: page.items.into_iter().collect::<Result<_, _>>()?,
            next: page.next,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{domain::patient::Sex, store::tx::assert_names_in_targets};

    #[test]
    fn every_attribute_a_patient_write_names_exists_in_its_item() {
        let patient = Patient {
            id: Uuid::now_v7(),
            given_name: "Ada".into(),
            family_name: "Lovelace".into(),
            birth_date: time::macros::date!(1990 - 01 - 01),
            sex: Sex::Female,
            email: None,
            phone: None,
            identifiers: Vec::new(),
            version: 2,
            created_at: "t".into(),
            updated_at: "t".into(),
        };
        let audit = crate::store::tests::audit_event(patient.id);
        let store = crate::store::tests::offline_store();
        let old = GuardItem::email("old@example.org", patient.id);
        let stored = std::collections::HashMap::from([((old.pk.clone(), old.sk.clone()), to_item(&old).unwrap())]);
        for profile in [Expr::new().not_exists(keys::PK), Expr::new().eq(attr::VERSION, 1)] {
            let tx = store
                .patient_tx(&patient, profile, None, true, &[], &audit, &[])
                .unwrap();
            assert_names_in_targets(&tx, &stored);
        }
        let moved = Patient {
            email: Some("New@Example.org".into()),
            ..patient
        };
        let tx = store
            .patient_tx(&moved, Expr::new(), Some("old@example.org"), true, &[], &audit, &[])
            .unwrap();
        assert_names_in_targets(&tx, &stored);
        let mrn = |v: &str| Identifier {
            system: "urn:oid:1.2.3".into(),
            value: v.into(),
        };
        let given_up = GuardItem::identifier(&mrn("old"), moved.id);
        let mut stored = stored;
        stored.insert((given_up.pk.clone(), given_up.sk.clone()), to_item(&given_up).unwrap());
        let renumbered = Patient {
            identifiers: vec![mrn("new")],
            ..moved
        };
        let tx = store
            .patient_tx(&renumbered, Expr::new(), None, true, &[mrn("old")], &audit, &[])
            .unwrap();
        let labels: Vec<PatientAction> = tx.actions().map(|(label, _)| label).collect();
        assert!(labels.contains(&PatientAction::IdentifierGuard(0)));
        assert!(labels.contains(&PatientAction::OldIdentifierGuard));
        assert_names_in_targets(&tx, &stored);
    }
}
