//! What the e-mail channel remembers between mails: when a booking's last "results ready" mail went out
//! (`MAILED#<patientId>` / `RESULTS#<bookingId>`), so that tests released together send one mail.

use uuid::Uuid;

use super::{Store, StoreError, from_item, items::MailedItem, items::entity, keys, to_item};

impl Store {
    /// When the last "results ready" mail of `booking_id` went out, if one did (one strongly consistent
    /// GetItem: the mail before may have been noted a moment ago).
    ///
    /// # Errors
    /// Engine failures, a malformed item.
    pub async fn results_mailed_at(&self, patient_id: Uuid, booking_id: Uuid) -> Result<Option<String>, StoreError> {
        self.get_consistent(keys::mailed_pk(patient_id), keys::results_mailed_sk(booking_id))
            .await?
            .map(|item| from_item::<MailedItem>(item).map(|m| m.sent_at))
            .transpose()
    }

    /// Records that a "results ready" mail of `booking_id` went out at `sent_at` (an instant), kept a day
    /// (one PutItem).
    ///
    /// # Errors
    /// Engine failures.
    pub async fn note_results_mailed(
        &self,
        patient_id: Uuid,
        booking_id: Uuid,
        sent_at: &str,
        now_epoch: i64,
    ) -> Result<(), StoreError> {
        let item = to_item(&MailedItem {
            pk: keys::mailed_pk(patient_id),
            sk: keys::results_mailed_sk(booking_id),
            entity: entity::MAILED.to_owned(),
            sent_at: sent_at.to_owned(),
            expires_at: now_epoch + 86_400,
        })?;
        self.put(self.put_builder(item)).await
    }
}
