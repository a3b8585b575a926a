//! Links from sign-in identities (an OpenID provider's issuer and subject) to patients.

use uuid::Uuid;

use super::{
    Store, StoreError,
    expr::Expr,
    from_item,
    items::IdentityLinkItem,
    key, keys,
    patients::PatientAction,
    to_item,
    tx::{Sent, Tx},
};
use crate::domain::{audit::AuditEvent, patient::Patient};

/// The actions of the identity writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkAction {
    /// The link is new.
    Link,
    /// The patient exists (linking to an existing patient).
    Patient,
    /// The patient write a self-registration carries: profile, e-mail guard, audit event.
    Registration(PatientAction),
    /// The audit event is new.
    Audit,
}

/// How [`Store::register_patient`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterOutcome {
    /// The patient and the link are written.
    Registered,
    /// The identity is linked to a patient already.
    IdentityLinked,
    /// Another patient has this e-mail address.
    EmailTaken,
    /// The fresh id is taken.
    IdTaken,
}

/// How [`Store::link_identity`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkOutcome {
    /// The link is written.
    Linked,
    /// The identity is linked to a patient already (this one or another).
    IdentityLinked,
    /// No such patient.
    NoPatient,
}

impl Store {
    /// The patient `issuer`/`sub` is linked to (one GetItem), if any.
    ///
    /// # Errors
    /// Engine failures, a malformed item.
    pub async fn identity_patient(&self, issuer: &str, sub: &str) -> Result<Option<Uuid>, StoreError> {
        self.get(keys::identity_pk(issuer, sub), keys::IDENTITY_SK.to_owned())
            .await?
            .map(|item| from_item::<IdentityLinkItem>(item).map(|link| link.patient_id))
            .transpose()
    }

    /// A self-registration: the new patient (with its e-mail guard), the link of `issuer`/`sub` to it and the
    /// audit event, in one transaction; the link must be new.
    ///
    /// # Errors
    /// Engine failures.
    pub async fn register_patient(
        &self,
        patient: &Patient,
        issuer: &str,
        sub: &str,
        audit: &AuditEvent,
    ) -> Result<RegisterOutcome, StoreError> {
        let mut tx = self
            .patient_tx(patient, Expr::new().not_exists(keys::PK), None, false, &[], audit)?
            .wrap_labels(LinkAction::Registration);
        tx.put(
            LinkAction::Link,
            to_item(&IdentityLinkItem::new(
                issuer,
                sub,
                patient.id,
                &patient.created_at,
                "self",
            ))?,
            Expr::new().not_exists(keys::PK),
        )?;
        match self.send(tx).await? {
            Sent::Committed => Ok(RegisterOutcome::Registered),
            Sent::Rejected(r) if r.has(LinkAction::Link) => Ok(RegisterOutcome::IdentityLinked),
            Sent::Rejected(r) if r.has(LinkAction::Registration(PatientAction::EmailGuard)) => {
                Ok(RegisterOutcome::EmailTaken)
            }
            Sent::Rejected(r) if r.has(LinkAction::Registration(PatientAction::Profile)) => {
                Ok(RegisterOutcome::IdTaken)
            }
            Sent::Rejected(r) => Err(r.unexpected()),
        }
    }

    /// Links `issuer`/`sub` to the existing patient `patient_id`, with its audit event, in one transaction:
    /// the patient must exist and the link be new.
    ///
    /// # Errors
    /// Engine failures.
    pub async fn link_identity(
        &self,
        patient_id: Uuid,
        issuer: &str,
        sub: &str,
        linked_at: &str,
        linked_by: &str,
        audit: &AuditEvent,
    ) -> Result<LinkOutcome, StoreError> {
        let mut tx = Tx::new(self);
        tx.check(
            LinkAction::Patient,
            key(keys::patient_pk(patient_id), keys::PATIENT_PROFILE_SK),
            Expr::new().exists(keys::PK),
        )?;
        tx.put(
            LinkAction::Link,
            to_item(&IdentityLinkItem::new(issuer, sub, patient_id, linked_at, linked_by))?,
            Expr::new().not_exists(keys::PK),
        )?;
        tx.put_new(LinkAction::Audit, self.audit_item(audit)?)?;
        match self.send(tx).await? {
            Sent::Committed => Ok(LinkOutcome::Linked),
            Sent::Rejected(r) if r.has(LinkAction::Patient) => Ok(LinkOutcome::NoPatient),
            Sent::Rejected(r) if r.has(LinkAction::Link) => Ok(LinkOutcome::IdentityLinked),
            Sent::Rejected(r) => Err(r.unexpected()),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_link_names_its_patient_under_the_identitys_key() {
        let id = uuid::Uuid::now_v7();
        let item = super::IdentityLinkItem::new("https://id.example", "abc#1", id, "2026-01-01T00:00:00Z", "self");
        assert_eq!(item.pk, "IDENTITY#https://id.example#abc#1");
        assert_eq!(item.sk, "IDENTITY");
        assert_eq!(item.patient_id, id);
    }
}
