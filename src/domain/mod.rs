//! Pure domain types and rules: no I/O, no SDK, no HTTP.

pub mod audit;
pub mod booking;
pub mod event;
pub mod idempotency;
pub mod patient;
pub mod release;
pub mod site;
pub mod test_type;
pub mod text;
pub mod timefmt;
pub mod webhook;
