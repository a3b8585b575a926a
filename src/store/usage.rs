//! What the DynamoDB calls of one request cost: calls, read and write capacity units.
//!
//! The HTTP layer runs each request inside [`measure`]; every store call records into the request's meter
//! through a task-local, so no handler has to thread a counter through. Calls made outside a measured scope
//! (bootstrap, migrations) are not counted anywhere.

use std::{
    future::Future,
    sync::{Arc, Mutex},
};

use aws_sdk_dynamodb::types::ConsumedCapacity;

/// Totals of one request's DynamoDB calls.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Number of DynamoDB requests sent (failed ones included).
    pub calls: u32,
    /// Read capacity units consumed.
    pub rcu: f64,
    /// Write capacity units consumed.
    pub wcu: f64,
}

impl Usage {
    /// The `Dynamodb-Usage` header value, e.g. `calls=1, rcu=0.5, wcu=0`.
    pub fn header_value(&self) -> String {
        format!("calls={}, rcu={}, wcu={}", self.calls, round(self.rcu), round(self.wcu))
    }
}

fn round(units: f64) -> f64 {
    (units * 100.0).round() / 100.0
}

tokio::task_local! {
    static METER: Arc<Mutex<Usage>>;
}

/// Runs `fut` and returns its output with the usage of every store call it made.
pub async fn measure<F: Future>(fut: F) -> (F::Output, Usage) {
    let meter = Arc::new(Mutex::new(Usage::default()));
    let output = METER.scope(meter.clone(), fut).await;
    let usage = *meter.lock().unwrap_or_else(|e| e.into_inner());
    (output, usage)
}

/// Whether an operation reads or writes: decides which units its consumed capacity counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Read,
    Write,
}

/// Records one call.
pub(crate) fn call() {
    let _ = METER.try_with(|m| m.lock().unwrap_or_else(|e| e.into_inner()).calls += 1);
}

/// Records the capacity one call consumed.
pub(crate) fn consumed<'a>(kind: Kind, capacity: impl IntoIterator<Item = &'a ConsumedCapacity>) {
    let mut units = 0.0;
    for c in capacity {
        units += c.capacity_units().unwrap_or_else(|| {
            c.read_capacity_units().unwrap_or_default() + c.write_capacity_units().unwrap_or_default()
        });
    }
    let _ = METER.try_with(|m| {
        let mut usage = m.lock().unwrap_or_else(|e| e.into_inner());
        match kind {
            Kind::Read => usage.rcu += units,
            Kind::Write => usage.wcu += units,
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_inside_a_measured_scope_are_summed_and_outside_ignored() {
        call();
        let capacity = ConsumedCapacity::builder().capacity_units(0.5).build();
        let ((), usage) = measure(async {
            call();
            consumed(Kind::Read, [&capacity]);
            call();
            consumed(Kind::Write, [&capacity, &capacity]);
        })
        .await;
        assert_eq!(
            usage,
            Usage {
                calls: 2,
                rcu: 0.5,
                wcu: 1.0
            }
        );
        assert_eq!(usage.header_value(), "calls=2, rcu=0.5, wcu=1");
    }
}
