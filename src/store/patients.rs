//! Patient profiles.

use std::collections::HashMap;

use aws_sdk_dynamodb::{
    operation::update_item::UpdateItemError,
    types::{AttributeValue, ReturnConsumedCapacity, ReturnValue, ReturnValuesOnConditionCheckFailure},
};
use uuid::Uuid;

use super::{
    Store, StoreError, from_item,
    items::PatientItem,
    key, keys, n, s, to_item,
    usage::{self, Kind},
};
use crate::domain::patient::{Patient, PatientPatch};

impl Store {
    /// Stores a new patient; fails with [`StoreError::ConditionFailed`] if the id is taken.
    ///
    /// # Errors
    /// As above, or when the engine fails.
    pub async fn create_patient(&self, patient: &Patient) -> Result<(), StoreError> {
        let item = to_item(&PatientItem::from(patient))?;
        self.put(self.put_builder(item).condition_expression("attribute_not_exists(PK)"))
            .await
    }

    /// A patient's profile (GetItem).
    ///
    /// # Errors
    /// When the engine fails or the item is malformed.
    pub async fn get_patient(&self, id: Uuid) -> Result<Option<Patient>, StoreError> {
        self.get(keys::patient_pk(id), keys::PATIENT_PROFILE_SK.to_owned())
            .await?
            .map(|item| from_item::<PatientItem>(item).and_then(Patient::try_from))
            .transpose()
    }
}

/// What a conditional patient update found.
#[derive(Debug)]
pub enum PatchOutcome {
    /// Applied; the patient as stored now.
    Updated(Patient),
    /// The stored version is not the expected one.
    Stale,
    /// No such patient.
    Missing,
}

impl Store {
    /// Applies `patch` in one UpdateItem conditioned on the stored version being `expected`; bumps the version.
    /// A failed condition returns the old item, which tells a stale version from a missing patient without
    /// another read.
    ///
    /// # Errors
    /// When the engine fails or the item is malformed.
    pub async fn patch_patient(
        &self,
        id: Uuid,
        expected: u64,
        patch: &PatientPatch,
        now: &str,
    ) -> Result<PatchOutcome, StoreError> {
        let mut sets = vec!["#version = #version + :one".to_owned(), "#updatedAt = :now".to_owned()];
        let mut removes = Vec::new();
        let mut names = HashMap::from([
            ("#version".to_owned(), "version".to_owned()),
            ("#updatedAt".to_owned(), "updatedAt".to_owned()),
        ]);
        let mut values = HashMap::from([
            (":one".to_owned(), n(1)),
            (":now".to_owned(), s(now)),
            (":expected".to_owned(), n(expected)),
        ]);
        // (attribute, Some(new value) to set, None to remove)
        let mut changes: Vec<(&str, Option<AttributeValue>)> = Vec::new();
        if let Some(v) = &patch.given_name {
            changes.push(("givenName", Some(s(v))));
        }
        if let Some(v) = &patch.family_name {
            changes.push(("familyName", Some(s(v))));
        }
        if let Some(v) = patch.birth_date {
            changes.push(("birthDate", Some(s(PatientItem::format_date(v)))));
        }
        if let Some(v) = patch.sex {
            let value = serde_dynamo::to_attribute_value(v).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            changes.push(("sex", Some(value)));
        }
        for (attr, change) in [("email", &patch.email), ("phone", &patch.phone)] {
            if let Some(value) = change {
                changes.push((attr, value.as_ref().map(s)));
            }
        }
        for (attr, value) in changes {
            names.insert(format!("#{attr}"), attr.to_owned());
            match value {
                Some(value) => {
                    sets.push(format!("#{attr} = :{attr}"));
                    values.insert(format!(":{attr}"), value);
                }
                None => removes.push(format!("#{attr}")),
            }
        }
        let mut expression = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        usage::call();
        let result = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(key(keys::patient_pk(id), keys::PATIENT_PROFILE_SK)))
            .update_expression(expression)
            .condition_expression("attribute_exists(PK) AND #version = :expected")
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match result {
            Ok(out) => {
                usage::consumed(Kind::Write, out.consumed_capacity());
                let item = out
                    .attributes
                    .ok_or_else(|| StoreError::Corrupt("UpdateItem returned no item".into()))?;
                Ok(PatchOutcome::Updated(Patient::try_from(from_item::<PatientItem>(
                    item,
                )?)?))
            }
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => Ok(if failed.item().is_some() {
                    PatchOutcome::Stale
                } else {
                    PatchOutcome::Missing
                }),
                _ => Err(StoreError::from_sdk(e)),
            },
        }
    }
}
