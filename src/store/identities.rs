//! Links from sign-in identities (an OpenID provider's issuer and subject) to patients: the link
//! `IDENTITY#<issuer>#<sub>` (the lookup on every request) and its copy in the patient's partition
//! (`PATIENT#<id>` / `IDENTITY#<issuer>#<sub>`: the patient's list), always written and removed together.

use uuid::Uuid;

use super::{
    Store, StoreError,
    expr::Expr,
    from_item,
    items::{IdentityLinkItem, attr},
    key, keys,
    patients::PatientAction,
    s, to_item,
    tx::{Sent, Tx},
};
use crate::domain::{
    audit::AuditEvent,
    event::DomainEvent,
    patient::{LinkedIdentity, Patient},
};

/// The actions of the identity writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkAction {
    /// The link is new.
    Link,
    /// The link's copy in the patient's partition (their list of identities).
    Copy,
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

/// How [`Store::unlink_identity`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnlinkOutcome {
    /// The link and its copy are gone.
    Unlinked,
    /// The identity is not linked to this patient.
    NotLinked,
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
    /// The patient `issuer`/`sub` is linked to (one strongly consistent GetItem, so an unlink anywhere is seen
    /// at once), if any.
    ///
    /// # Errors
    /// Engine failures, a malformed item.
    pub async fn identity_patient(&self, issuer: &str, sub: &str) -> Result<Option<Uuid>, StoreError> {
        self.get_consistent(keys::identity_pk(issuer, sub), keys::IDENTITY_SK.to_owned())
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
        events: &[DomainEvent],
    ) -> Result<RegisterOutcome, StoreError> {
        let mut tx = self
            .new_patient_tx(patient, audit, events)?
            .wrap_labels(LinkAction::Registration);
        let link = IdentityLinkItem::new(
            &LinkedIdentity {
                issuer: issuer.to_owned(),
                sub: sub.to_owned(),
                linked_at: patient.created_at.clone(),
                linked_by: "self".to_owned(),
            },
            patient.id,
        );
        tx.put_new(LinkAction::Copy, to_item(&link.patient_copy())?)?;
        tx.put_new(LinkAction::Link, to_item(&link)?)?;
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
        link: &LinkedIdentity,
        audit: &AuditEvent,
    ) -> Result<LinkOutcome, StoreError> {
        let mut tx = Tx::new(self);
        tx.check(
            LinkAction::Patient,
            key(keys::patient_pk(patient_id), keys::PATIENT_PROFILE_SK),
            Expr::new().exists(keys::PK),
        )?;
        let link = IdentityLinkItem::new(link, patient_id);
        tx.put_new(LinkAction::Link, to_item(&link)?)?;
        tx.put_new(LinkAction::Copy, to_item(&link.patient_copy())?)?;
        tx.put_new(LinkAction::Audit, self.audit_item(audit)?)?;
        match self.send(tx).await? {
            Sent::Committed => Ok(LinkOutcome::Linked),
            Sent::Rejected(r) if r.has(LinkAction::Patient) => Ok(LinkOutcome::NoPatient),
            Sent::Rejected(r) if r.has(LinkAction::Link) => Ok(LinkOutcome::IdentityLinked),
            Sent::Rejected(r) => Err(r.unexpected()),
        }
    }
}

impl Store {
    /// The identities linked to `patient_id`: one Query of the copies in the patient's partition.
    ///
    /// # Errors
    /// Engine failures, malformed items.
    pub async fn patient_identities(&self, patient_id: Uuid) -> Result<Vec<LinkedIdentity>, StoreError> {
        let items = self
            .query_all(
                self.query_builder()
                    .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                    .expression_attribute_names("#pk", keys::PK)
                    .expression_attribute_names("#sk", keys::SK)
                    .expression_attribute_values(":pk", s(keys::patient_pk(patient_id)))
                    .expression_attribute_values(":prefix", s(keys::PATIENT_IDENTITY_PREFIX.to_owned())),
            )
            .await?;
        items
            .into_iter()
            .map(|item| from_item::<IdentityLinkItem>(item).map(LinkedIdentity::from))
            .collect()
    }

    /// Removes the link of `issuer`/`sub` to `patient_id` and its copy, with the audit event, in one
    /// transaction: the link must be this patient's.
    ///
    /// # Errors
    /// Engine failures.
    pub async fn unlink_identity(
        &self,
        patient_id: Uuid,
        issuer: &str,
        sub: &str,
        audit: &AuditEvent,
    ) -> Result<UnlinkOutcome, StoreError> {
        let mut tx = Tx::new(self);
        tx.delete(
            LinkAction::Link,
            key(keys::identity_pk(issuer, sub), keys::IDENTITY_SK),
            Expr::new().eq(attr::PATIENT_ID, patient_id),
        )?;
        tx.delete(
            LinkAction::Copy,
            key(keys::patient_pk(patient_id), keys::patient_identity_sk(issuer, sub)),
            Expr::new(),
        )?;
        tx.put_new(LinkAction::Audit, self.audit_item(audit)?)?;
        match self.send(tx).await? {
            Sent::Committed => Ok(UnlinkOutcome::Unlinked),
            Sent::Rejected(r) if r.has(LinkAction::Link) => Ok(UnlinkOutcome::NotLinked),
            Sent::Rejected(r) => Err(r.unexpected()),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_link_names_its_patient_under_the_identitys_key() {
        let id = uuid::Uuid::now_v7();
        let link = super::LinkedIdentity {
            issuer: "https://id.example".into(),
            sub: "abc#1".into(),
            linked_at: "2026-01-01T00:00:00Z".into(),
            linked_by: "self".into(),
        };
        let item = super::IdentityLinkItem::new(&link, id);
        assert_eq!(item.pk, "IDENTITY#https://id.example#abc#1");
        assert_eq!(item.sk, "IDENTITY");
        assert_eq!(item.patient_id, id);
        let copy = item.patient_copy();
        assert_eq!(copy.pk, format!("PATIENT#{id}"));
        assert_eq!(copy.sk, "IDENTITY#https://id.example#abc#1");
        assert_eq!(super::LinkedIdentity::from(copy), link);
    }
}
