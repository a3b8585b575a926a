//! What the DynamoDB calls of one request cost: calls, read and write capacity units.
//!
//! The HTTP layer runs each request inside [`measure`]; every store call records into the request's meter
//! through a task-local, so no handler has to thread a counter through. Calls made outside a measured scope
//! (bootstrap, migrations) are not counted anywhere.

use std::{
    future::Future,
    sync::{Arc, Mutex},
    time::Instant,
};

use aws_sdk_dynamodb::types::ConsumedCapacity;
use tracing::{Span, field::Empty};

use super::StoreError;

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
    let units = capacity.into_iter().fold(0.0, |sum, c| sum + total_units(c));
    let _ = METER.try_with(|m| {
        let mut usage = m.lock().unwrap_or_else(|e| e.into_inner());
        match kind {
            Kind::Read => usage.rcu += units,
            Kind::Write => usage.wcu += units,
        }
    });
}

/// One DynamoDB call in flight. It counts toward the request's [`Usage`] and the process metrics
/// (`medbook_dynamodb_requests_total{operation,outcome}`, `medbook_dynamodb_request_duration_seconds`,
/// `medbook_dynamodb_consumed_capacity_units{table,index,kind}`, whose `_sum` is the total), and carries a `dynamodb` tracing span
/// that nests under the request's span.
pub(crate) struct Call {
    operation: &'static str,
    table: String,
    started: Instant,
    span: Span,
}

impl Call {
    /// Starts timing `operation` on `table` (and `index`, for a Query on one).
    pub(crate) fn start(operation: &'static str, table: &str, index: Option<&str>) -> Self {
        call();
        let span = tracing::info_span!(
            "dynamodb",
            operation,
            table,
            index = index.unwrap_or(""),
            rcu = Empty,
            wcu = Empty,
            outcome = Empty,
        );
        Self {
            operation,
            table: table.to_owned(),
            started: Instant::now(),
            span,
        }
    }

    /// The span to run the call in.
    pub(crate) fn span(&self) -> Span {
        self.span.clone()
    }

    /// Records the call's outcome and, when it succeeded, the capacity it consumed.
    pub(crate) fn finish(self, kind: Kind, capacity: Vec<&ConsumedCapacity>, error: Option<&StoreError>) {
        let outcome = match error {
            None => "ok",
            Some(StoreError::ConditionFailed) => "condition_failed",
            Some(StoreError::Unavailable(m)) if m.contains("Throttl") || m.contains("ProvisionedThroughput") => {
                "throttled"
            }
            Some(StoreError::Unavailable(_)) => "unavailable",
            Some(StoreError::Corrupt(_)) => "corrupt",
            Some(StoreError::ForeignKey) => "foreign_key",
            Some(StoreError::TableMissing) => "table_missing",
            Some(StoreError::Engine(_)) => "error",
        };
        self.finish_as(kind, capacity, outcome);
    }

    /// Records the call with an `outcome` label of the caller's (`transaction_canceled`, `token_reused`).
    pub(crate) fn finish_as(self, kind: Kind, capacity: Vec<&ConsumedCapacity>, outcome: &'static str) {
        consumed(kind, capacity.iter().copied());
        let units = capacity.iter().fold(0.0, |sum, c| sum + total_units(c));
        self.span.record(if kind == Kind::Read { "rcu" } else { "wcu" }, units);
        self.span.record("outcome", outcome);
        let elapsed = self.started.elapsed();
        tracing::debug!(parent: &self.span, outcome, units, elapsed_ms = elapsed.as_secs_f64() * 1000.0, "dynamodb call");
        metrics::counter!("medbook_dynamodb_requests_total", "operation" => self.operation, "outcome" => outcome)
            .increment(1);
        metrics::histogram!("medbook_dynamodb_request_duration_seconds", "operation" => self.operation)
            .record(elapsed.as_secs_f64());
        let kind_label = if kind == Kind::Read { "read" } else { "write" };
        for c in capacity {
            let table = c.table_name().unwrap_or(&self.table).to_owned();
            let mut by_index: Vec<(String, f64)> = Vec::new();
            if let Some(t) = c.table().and_then(|t| t.capacity_units()) {
                by_index.push((String::new(), t));
            }
            for (name, cap) in c
                .global_secondary_indexes()
                .into_iter()
                .flatten()
                .chain(c.local_secondary_indexes().into_iter().flatten())
            {
                if let Some(units) = cap.capacity_units() {
                    by_index.push((name.clone(), units));
                }
            }
            if by_index.is_empty() {
                by_index.push((String::new(), total_units(c)));
            }
            for (index, units) in by_index {
                // A histogram: its `_sum` is the total consumed (float units), its `_count` the calls.
                metrics::histogram!(
                    "medbook_dynamodb_consumed_capacity_units",
                    "table" => table.clone(),
                    "index" => index,
                    "kind" => kind_label
                )
                .record(units);
            }
        }
    }
}

fn total_units(c: &ConsumedCapacity) -> f64 {
    c.capacity_units()
        .unwrap_or_else(|| c.read_capacity_units().unwrap_or_default() + c.write_capacity_units().unwrap_or_default())
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
