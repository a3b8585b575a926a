//! Transactions whose actions carry labels, so a cancellation is read by meaning, never by position.
//!
//! A store write builds a [`Tx`] with one label per action (an enum of its own: `BookAction::Slot`,
//! `BookAction::Patient`, ...), sends it with [`Store::send`], and turns the labels whose condition failed
//! into its own outcome type. DynamoDB evaluates every action of a cancelled transaction and gives a reason
//! for each, so one answer tells all the failed conditions apart without another read.

use std::sync::Arc;

use aws_sdk_dynamodb::{
    operation::transact_write_items::TransactWriteItemsError,
    types::{
        CancellationReason, ConditionCheck, Delete, Put, ReturnConsumedCapacity, ReturnValuesOnConditionCheckFailure,
        TransactWriteItem, Update,
    },
};
use tracing::Instrument;

use super::{
    Item, Store, StoreError,
    expr::Expr,
    usage::{Call, Kind},
};

/// A transaction under construction: its actions, each with the label of what its condition means.
#[derive(Debug)]
pub(crate) struct Tx<L> {
    table: Arc<str>,
    actions: Vec<TransactWriteItem>,
    labels: Vec<L>,
}

/// How a transaction ended, when the engine answered.
#[derive(Debug)]
pub(crate) enum TxResult<L> {
    /// Every action was applied.
    Committed,
    /// Nothing was applied: these actions' conditions failed.
    Rejected(Rejections<L>),
    /// Its ClientRequestToken was used within 10 minutes by a transaction with other parameters.
    TokenReused,
}

/// How a transaction sent without a ClientRequestToken ended, when the engine answered.
#[derive(Debug)]
pub(crate) enum Sent<L> {
    /// Every action was applied.
    Committed,
    /// Nothing was applied: these actions' conditions failed.
    Rejected(Rejections<L>),
}

/// The actions of a cancelled transaction whose conditions failed, with the item each found where the
/// action asked for it (`ReturnValuesOnConditionCheckFailure = ALL_OLD`).
#[derive(Debug)]
pub(crate) struct Rejections<L>(Vec<(L, Option<Item>)>);

impl<L: Copy + PartialEq> Rejections<L> {
    /// Whether the action labelled `label` failed its condition.
    pub(crate) fn has(&self, label: L) -> bool {
        self.0.iter().any(|(l, _)| *l == label)
    }

    /// Whether `label`'s action is the only one that failed.
    pub(crate) fn only(&self, label: L) -> bool {
        self.0.iter().all(|(l, _)| *l == label)
    }

    /// The item that the failed action labelled `label` found, if it asked for it.
    pub(crate) fn take_item(&mut self, label: L) -> Option<Item> {
        self.0
            .iter_mut()
            .find(|(l, _)| *l == label)
            .and_then(|(_, item)| item.take())
    }

    /// The error for rejections no outcome accounts for: a condition that cannot fail did (a defect, or
    /// data the code does not expect).
    pub(crate) fn unexpected(&self) -> StoreError
    where
        L: std::fmt::Debug,
    {
        let labels: Vec<L> = self.0.iter().map(|(l, _)| *l).collect();
        StoreError::Engine(format!("unexpected failed conditions: {labels:?}"))
    }
}

/// A Put or a ConditionCheck takes a condition only: update clauses there would be sent and refused.
fn only_condition(expr: &Expr) -> Result<(), StoreError> {
    if expr.has_update() {
        return Err(StoreError::Engine(
            "update clauses on an action that takes a condition only".into(),
        ));
    }
    Ok(())
}

impl<L: Copy + PartialEq + std::fmt::Debug> Tx<L> {
    /// An empty transaction on `store`'s table.
    pub(crate) fn new(store: &Store) -> Self {
        Self {
            table: store.table.clone(),
            actions: Vec::new(),
            labels: Vec::new(),
        }
    }

    fn push(&mut self, label: L, action: TransactWriteItem) {
        self.actions.push(action);
        self.labels.push(label);
    }

    /// This transaction with each label wrapped by `wrap`, so a write can add its own actions to another's.
    pub(crate) fn wrap_labels<M>(self, wrap: impl Fn(L) -> M) -> Tx<M> {
        Tx {
            table: self.table,
            actions: self.actions,
            labels: self.labels.into_iter().map(wrap).collect(),
        }
    }

    /// Puts `item` where `condition` holds (an empty [`Expr`]: unconditionally).
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when a condition value does not serialise.
    pub(crate) fn put(&mut self, label: L, item: Item, condition: Expr) -> Result<(), StoreError> {
        self.put_with(label, item, condition, ReturnValuesOnConditionCheckFailure::None)
    }

    /// Puts a new item: its key must be free (`attribute_not_exists(PK)`).
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when a condition value does not serialise.
    pub(crate) fn put_new(&mut self, label: L, item: Item) -> Result<(), StoreError> {
        self.put(label, item, Expr::new().not_exists(super::keys::PK))
    }

    /// Like [`Tx::put`]; when the condition fails, the rejection carries the item that was there.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when a condition value does not serialise.
    pub(crate) fn put_returning_old(&mut self, label: L, item: Item, condition: Expr) -> Result<(), StoreError> {
        self.put_with(label, item, condition, ReturnValuesOnConditionCheckFailure::AllOld)
    }

    fn put_with(
        &mut self,
        label: L,
        item: Item,
        condition: Expr,
        old: ReturnValuesOnConditionCheckFailure,
    ) -> Result<(), StoreError> {
        only_condition(&condition)?;
        let text = condition.condition();
        let (names, values) = condition.placeholders()?;
        let put = Put::builder()
            .table_name(self.table.as_ref())
            .set_item(Some(item))
            .set_condition_expression(text)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .return_values_on_condition_check_failure(old)
            .build()
            .expect("put action is complete");
        self.push(label, TransactWriteItem::builder().put(put).build());
        Ok(())
    }

    /// Updates the item at `key` with `expr`'s update where its condition holds.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when a value does not serialise.
    pub(crate) fn update(&mut self, label: L, key: Item, expr: Expr) -> Result<(), StoreError> {
        let (update, condition) = (expr.update(), expr.condition());
        let (names, values) = expr.placeholders()?;
        let update = Update::builder()
            .table_name(self.table.as_ref())
            .set_key(Some(key))
            .set_update_expression(update)
            .set_condition_expression(condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .build()
            .expect("update action is complete");
        self.push(label, TransactWriteItem::builder().update(update).build());
        Ok(())
    }

    /// Deletes the item at `key` where `condition` holds.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when a value does not serialise.
    pub(crate) fn delete(&mut self, label: L, key: Item, condition: Expr) -> Result<(), StoreError> {
        only_condition(&condition)?;
        let text = condition.condition();
        let (names, values) = condition.placeholders()?;
        let delete = Delete::builder()
            .table_name(self.table.as_ref())
            .set_key(Some(key))
            .set_condition_expression(text)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .build()
            .expect("delete action is complete");
        self.push(label, TransactWriteItem::builder().delete(delete).build());
        Ok(())
    }

    /// Checks `condition` on the item at `key` without writing it.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when a value does not serialise.
    pub(crate) fn check(&mut self, label: L, key: Item, condition: Expr) -> Result<(), StoreError> {
        self.check_with(label, key, condition, ReturnValuesOnConditionCheckFailure::None)
    }

    /// Like [`Tx::check`]; when the condition fails, the rejection carries the item that was there (none: it
    /// does not exist), so "absent" and "in the wrong state" are told apart without another read.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when a value does not serialise.
    pub(crate) fn check_returning_old(&mut self, label: L, key: Item, condition: Expr) -> Result<(), StoreError> {
        self.check_with(label, key, condition, ReturnValuesOnConditionCheckFailure::AllOld)
    }

    fn check_with(
        &mut self,
        label: L,
        key: Item,
        condition: Expr,
        old: ReturnValuesOnConditionCheckFailure,
    ) -> Result<(), StoreError> {
        only_condition(&condition)?;
        let text = condition.condition();
        let (names, values) = condition.placeholders()?;
        let check = ConditionCheck::builder()
            .table_name(self.table.as_ref())
            .set_key(Some(key))
            .set_condition_expression(text)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .return_values_on_condition_check_failure(old)
            .build()
            .expect("condition check is complete");
        self.push(label, TransactWriteItem::builder().condition_check(check).build());
        Ok(())
    }

    /// The actions built so far, with their labels (for tests of what a write sends).
    #[cfg(test)]
    pub(crate) fn actions(&self) -> impl Iterator<Item = (L, &TransactWriteItem)> {
        self.labels.iter().copied().zip(self.actions.iter())
    }
}

impl Store {
    /// Sends one TransactWriteItems without a ClientRequestToken (see [`Store::send_keyed`]).
    ///
    /// # Errors
    /// As [`Store::send_keyed`].
    pub(crate) async fn send<L: Copy + PartialEq + std::fmt::Debug>(&self, tx: Tx<L>) -> Result<Sent<L>, StoreError> {
        match self.send_keyed(tx, None).await? {
            TxResult::Committed => Ok(Sent::Committed),
            TxResult::Rejected(r) => Ok(Sent::Rejected(r)),
            TxResult::TokenReused => Err(StoreError::Engine("token reused without a token".into())),
        }
    }

    /// Sends one TransactWriteItems, all or nothing, and records its cost. `token` makes retries of the same
    /// logical request idempotent for 10 minutes (ClientRequestToken). A conflict with another transaction
    /// or throttling is not the caller's fault: it is [`StoreError::Unavailable`], never a rejection.
    ///
    /// # Errors
    /// Engine failures; [`StoreError::Engine`] when the engine's reasons do not match the actions.
    pub(crate) async fn send_keyed<L: Copy + PartialEq + std::fmt::Debug>(
        &self,
        tx: Tx<L>,
        token: Option<String>,
    ) -> Result<TxResult<L>, StoreError> {
        let call = Call::start("TransactWriteItems", &self.table, None);
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(tx.actions))
            .set_client_request_token(token)
            .return_consumed_capacity(ReturnConsumedCapacity::Indexes)
            .send()
            .instrument(call.span())
            .await;
        match result {
            Ok(out) => {
                call.finish(Kind::Write, out.consumed_capacity().iter().collect(), None);
                Ok(TxResult::Committed)
            }
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                    match rejections(&tx.labels, c.cancellation_reasons()) {
                        Ok(rejected) => {
                            call.finish_as(Kind::Write, Vec::new(), "transaction_canceled");
                            Ok(TxResult::Rejected(rejected))
                        }
                        Err(error) => {
                            call.finish(Kind::Write, Vec::new(), Some(&error));
                            Err(error)
                        }
                    }
                }
                Some(TransactWriteItemsError::IdempotentParameterMismatchException(_)) => {
                    call.finish_as(Kind::Write, Vec::new(), "token_reused");
                    Ok(TxResult::TokenReused)
                }
                _ => {
                    let error = StoreError::from_sdk(e);
                    call.finish(Kind::Write, Vec::new(), Some(&error));
                    Err(error)
                }
            },
        }
    }
}

/// The labels of the actions whose condition failed, from the cancellation reasons (one per action, in
/// order: the only place that reads them by position).
fn rejections<L: Copy + std::fmt::Debug>(
    labels: &[L],
    reasons: &[CancellationReason],
) -> Result<Rejections<L>, StoreError> {
    let codes: Vec<&str> = reasons.iter().map(|r| r.code().unwrap_or("None")).collect();
    for code in codes.iter().filter(|c| **c != "None") {
        metrics::counter!("medbook_dynamodb_transaction_cancellations_total", "reason" => (*code).to_owned())
            .increment(1);
    }
    if let Some(code) = codes.iter().find(|c| {
        matches!(
            **c,
            "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"
        )
    }) {
        return Err(StoreError::Unavailable(format!("transaction cancelled: {code}")));
    }
    if codes.len() != labels.len() {
        return Err(StoreError::Engine(format!(
            "{} cancellation reasons for {} actions",
            codes.len(),
            labels.len()
        )));
    }
    let mut failed = Vec::new();
    for ((label, code), reason) in labels.iter().zip(&codes).zip(reasons) {
        match *code {
            "None" => {}
            "ConditionalCheckFailed" => failed.push((*label, reason.item().cloned())),
            "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded" => {
                return Err(StoreError::Unavailable(format!(
                    "transaction cancelled: {code} at {label:?}"
                )));
            }
            other => {
                return Err(StoreError::Engine(format!(
                    "transaction cancelled: {other} at {label:?}"
                )));
            }
        }
    }
    if failed.is_empty() {
        return Err(StoreError::Engine(format!(
            "transaction cancelled without a reason: {codes:?}"
        )));
    }
    Ok(Rejections(failed))
}

/// Asserts that every attribute an action of `tx` names in its expressions exists in the item it targets: a
/// Put's own item, or for an Update or ConditionCheck the item of `stored` with its key.
#[cfg(test)]
pub(crate) fn assert_names_in_targets<L: Copy + PartialEq + std::fmt::Debug>(
    tx: &Tx<L>,
    stored: &std::collections::HashMap<(String, String), Item>,
) {
    use super::keys;
    let key_of = |key: &Item| {
        let part = |name: &str| key[name].as_s().unwrap().clone();
        (part(keys::PK), part(keys::SK))
    };
    for (label, action) in tx.actions() {
        let (target, names) = match action {
            TransactWriteItem { put: Some(put), .. } => (Some(put.item().clone()), put.expression_attribute_names()),
            TransactWriteItem {
                update: Some(update), ..
            } => (
                stored.get(&key_of(update.key())).cloned(),
                update.expression_attribute_names(),
            ),
            TransactWriteItem {
                condition_check: Some(check),
                ..
            } => (
                stored.get(&key_of(check.key())).cloned(),
                check.expression_attribute_names(),
            ),
            TransactWriteItem {
                delete: Some(delete), ..
            } => (
                stored.get(&key_of(delete.key())).cloned(),
                delete.expression_attribute_names(),
            ),
            other => panic!("{label:?}: unexpected action {other:?}"),
        };
        let target = target.unwrap_or_else(|| panic!("{label:?}: targets no item of this test"));
        for name in names.into_iter().flat_map(|n| n.values()) {
            // A name is an attribute of the item, or a field of one of its map attributes (a place's `until`).
            let nested = target.values().any(|v| v.as_m().is_ok_and(|m| m.contains_key(name)));
            assert!(
                target.contains_key(name) || nested,
                "{label:?} names `{name}`, which its item does not have: {:?}",
                target.keys().collect::<Vec<_>>()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Label {
        A,
        B,
    }

    fn reason(code: &str) -> CancellationReason {
        CancellationReason::builder().code(code).build()
    }

    #[test]
    fn reasons_become_labels_and_conflicts_are_retryable() {
        let labels = [Label::A, Label::B];
        let found = rejections(&labels, &[reason("None"), reason("ConditionalCheckFailed")]).unwrap();
        assert!(found.has(Label::B) && !found.has(Label::A));
        assert!(matches!(
            rejections(
                &labels,
                &[reason("TransactionConflict"), reason("ConditionalCheckFailed")]
            ),
            Err(StoreError::Unavailable(_))
        ));
        assert!(matches!(
            rejections(&labels, &[reason("None")]),
            Err(StoreError::Engine(_))
        ));
        assert!(matches!(
            rejections(&labels, &[reason("ValidationError"), reason("None")]),
            Err(StoreError::Engine(_))
        ));
    }
}
