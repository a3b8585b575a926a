//! The items that domain values are stored as, for loading many of them at once with BatchWriteItem (the
//! benchmark seeds 100 000 bookings this way). The request paths never use this module: they write through
//! the store's transactions, which also take slot places and write audit events. This is the whole surface the
//! benchmark needs of the store's persistence structs, which are otherwise private.

use super::{
    Item, StoreError,
    items::{BookingItem, PatientItem, ResultItem, ResultRevisionItem, TestItem},
    to_item,
};
use crate::domain::{
    booking::{Booking, LabResult, TestAddress},
    patient::Patient,
};

/// The profile item of `patient`.
///
/// # Errors
/// [`StoreError::Corrupt`] when it does not serialise.
pub fn patient(patient: &Patient) -> Result<Item, StoreError> {
    to_item(&PatientItem::from(patient))
}

/// The booking item of `booking` and one item per test (no place in a slot item).
///
/// # Errors
/// [`StoreError::Corrupt`] when one does not serialise.
pub fn booking(booking: &Booking) -> Result<Vec<Item>, StoreError> {
    let mut items = vec![to_item(&BookingItem::from(booking))?];
    for test in &booking.tests {
        items.push(to_item(&TestItem::new(booking, test))?);
    }
    Ok(items)
}

/// The current-result item of the test at `at` and the kept copy of its revision.
///
/// # Errors
/// [`StoreError::Corrupt`] when one does not serialise.
pub fn result(at: TestAddress, test_type_code: &str, result: &LabResult) -> Result<Vec<Item>, StoreError> {
    Ok(vec![
        to_item(&ResultItem::new(at, test_type_code, result))?,
        to_item(&ResultRevisionItem::new(at, result))?,
    ])
}
