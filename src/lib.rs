//! medbook: a medical test booking service on one DynamoDB table.
//!
//! Three layers that never skip each other: [`api`] (HTTP) → [`service`] (use cases and rules, over the pure
//! types of [`domain`]) → [`store`] (DynamoDB). [`startup`] wires them; `main.rs` only calls [`cli::run`].

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod domain;
pub mod examples;
pub mod service;
pub mod startup;
pub mod store;
pub mod telemetry;
