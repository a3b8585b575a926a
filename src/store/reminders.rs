//! Booking reminders: the due-time index `REMINDERS#<YYYY-MM-DDTHH>` / `<dueAt>#<bookingId>` (kept in each
//! booking's own transactions, see [`Store::put_events`]) and firing one, exactly once.

use uuid::Uuid;

use super::{
    Store, StoreError,
    expr::Expr,
    from_item,
    items::{ReminderItem, attr},
    key, keys, s,
    tx::{Sent, Tx},
};
use crate::domain::{booking::BookingStatus, event::DomainEvent};

/// A reminder that is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reminder {
    /// When it was due.
    pub due_at: String,
    /// Whose booking.
    pub patient_id: Uuid,
    /// The booking.
    pub booking_id: Uuid,
    /// Its site.
    pub site: String,
    /// Its slot.
    pub slot_start: String,
}

/// The actions of a firing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FireAction {
    /// The reminder, deleted.
    Reminder,
    /// The booking, checked: still booked for the reminder's slot.
    Booking,
    /// The `booking.reminder` event.
    Event,
}

impl Store {
    /// The reminders of the hour `hour` (`YYYY-MM-DDTHH`) due before `now` (an instant), up to 100, in due
    /// order: one strongly consistent Query of the hour's partition.
    ///
    /// # Errors
    /// Engine failures, malformed items.
    pub async fn due_reminders(&self, hour: &str, now: &str) -> Result<Vec<Reminder>, StoreError> {
        let out = self
            .query(
                self.query_builder()
                    .key_condition_expression("#pk = :pk AND #sk < :now")
                    .expression_attribute_names("#pk", keys::PK)
                    .expression_attribute_names("#sk", keys::SK)
                    .expression_attribute_values(":pk", s(keys::reminders_pk(hour)))
                    .expression_attribute_values(":now", s(now))
                    .consistent_read(true)
                    .limit(100),
            )
            .await?;
        out.items
            .unwrap_or_default()
            .into_iter()
            .map(|item| {
                from_item::<ReminderItem>(item).map(|r| Reminder {
                    due_at: r.due_at,
                    patient_id: r.patient_id,
                    booking_id: r.booking_id,
                    site: r.site,
                    slot_start: r.slot_start,
                })
            })
            .collect()
    }

    /// Fires `reminder`: deletes it where it is still there and writes `event`, in one transaction that also
    /// checks its booking is still booked for that slot. `false` when it is gone (fired by another replica,
    /// or its booking was cancelled or moved meanwhile), or its booking is no longer booked for that slot
    /// (then the reminder is deleted without an event).
    ///
    /// # Errors
    /// Engine failures.
    pub async fn fire_reminder(&self, reminder: &Reminder, event: &DomainEvent) -> Result<bool, StoreError> {
        let reminder_key = key(
            keys::reminders_pk(&reminder.due_at),
            keys::reminder_sk(&reminder.due_at, reminder.booking_id),
        );
        let mut tx = Tx::new(self);
        tx.delete(FireAction::Reminder, reminder_key.clone(), Expr::new().exists(keys::PK))?;
        // The booking's own transactions keep its reminder; this check also catches one they could not find
        // (made under another MEDBOOK_REMINDER_HOURS) and a booking checked in or marked no-show early.
        tx.check(
            FireAction::Booking,
            key(
                keys::patient_pk(reminder.patient_id),
                keys::booking_sk(reminder.booking_id),
            ),
            Expr::new()
                .eq(attr::STATUS, BookingStatus::Booked)
                .eq(attr::SLOT_START, &reminder.slot_start),
        )?;
        self.put_events(&mut tx, FireAction::Event, std::slice::from_ref(event))?;
        match self.send(tx).await? {
            Sent::Committed => Ok(true),
            Sent::Rejected(r) if r.has(FireAction::Reminder) => Ok(false),
            Sent::Rejected(r) if r.has(FireAction::Booking) => {
                // Nothing to remind of: the reminder goes, without an event.
                self.delete(self.client.delete_item().set_key(Some(reminder_key)))
                    .await?;
                Ok(false)
            }
            Sent::Rejected(r) => Err(r.unexpected()),
        }
    }
}
