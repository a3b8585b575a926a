//! Black-box tests: the real application over HTTP on 127.0.0.1:0, against the real embedded engine through
//! aws-sdk-dynamodb, one fresh table per test, run in parallel.

mod auth;
mod bookings;
mod bootstrap;
mod cli;
mod code_rules;
mod health;
mod helpers;
mod lab;
mod migrations;
mod openapi;
mod patients;
mod results;
mod test_types;
mod usage;
