//! Black-box tests: the real application over HTTP on 127.0.0.1:0, against the real embedded engine through
//! aws-sdk-dynamodb, one fresh table per test, run in parallel.

mod auth;
mod bootstrap;
mod cli;
mod code_rules;
mod health;
mod helpers;
mod migrations;
mod openapi;
mod patients;
mod test_types;
