//! medbook: a medical test booking service on one DynamoDB table.
//!
//! Three layers that never skip each other: [`api`] (HTTP) → [`service`] (use cases and rules, over the pure
//! types of [`domain`]) → [`store`] (DynamoDB). [`startup`] wires them; `main.rs` only calls [`cli::run`]. `engine` (the
//! `embedded` feature) is the development engine: dynoxide behind a SigV4-checking loopback endpoint.

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod domain;
#[cfg(feature = "embedded")]
pub mod engine;
pub mod examples;
pub mod service;
pub mod startup;
pub mod store;
pub mod telemetry;
