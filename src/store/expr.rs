//! Condition and update expressions, built from attribute-name constants and serde values.
//!
//! Business code never types an attribute name or a stored enum value into an expression: it names the
//! attribute by the constant next to its item struct ([`super::items::attr`]) and passes the domain value,
//! which serde_dynamo turns into exactly what the item struct stores. A serde rename then changes the
//! expressions with it instead of turning every conditional write into a failed condition at run time.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;

use super::StoreError;

/// Expression attribute names and values, as the SDK's builders take them (`None` when there are none).
pub(crate) type Placeholders = (Option<HashMap<String, String>>, Option<HashMap<String, AttributeValue>>);

/// A condition expression and, optionally, an update expression over the same placeholders.
#[derive(Debug, Clone, Default)]
pub(crate) struct Expr {
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
    conditions: Vec<String>,
    set: Vec<String>,
    remove: Vec<String>,
    error: Option<String>,
}

impl Expr {
    /// An empty expression.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The placeholder of `attribute`: `#n<i>`, one per attribute however often it is named (never one of
    /// the `#pk`/`#sk` a Query's key condition uses).
    fn name(&mut self, attribute: &str) -> String {
        if let Some((placeholder, _)) = self.names.iter().find(|(_, a)| a.as_str() == attribute) {
            return placeholder.clone();
        }
        let placeholder = format!("#n{}", self.names.len());
        self.names.insert(placeholder.clone(), attribute.to_owned());
        placeholder
    }

    fn value(&mut self, value: impl Serialize) -> String {
        let placeholder = format!(":v{}", self.values.len());
        match serde_dynamo::to_attribute_value(value) {
            Ok(v) => {
                self.values.insert(placeholder.clone(), v);
            }
            Err(e) => self.error = Some(e.to_string()),
        }
        placeholder
    }

    fn compare(mut self, attribute: &str, operator: &str, value: impl Serialize) -> Self {
        let (name, value) = (self.name(attribute), self.value(value));
        self.conditions.push(format!("{name} {operator} {value}"));
        self
    }

    /// Condition: the item exists (it has `attribute`, one of its key attributes).
    pub(crate) fn exists(mut self, attribute: &str) -> Self {
        let name = self.name(attribute);
        self.conditions.push(format!("attribute_exists({name})"));
        self
    }

    /// Condition: the item does not exist (it has no `attribute`, one of its key attributes).
    pub(crate) fn not_exists(mut self, attribute: &str) -> Self {
        let name = self.name(attribute);
        self.conditions.push(format!("attribute_not_exists({name})"));
        self
    }

    /// Condition: `attribute` equals `value`.
    pub(crate) fn eq(self, attribute: &str, value: impl Serialize) -> Self {
        self.compare(attribute, "=", value)
    }

    /// Condition: `attribute` differs from `value`.
    pub(crate) fn ne(self, attribute: &str, value: impl Serialize) -> Self {
        self.compare(attribute, "<>", value)
    }

    /// Condition: the item has no unexpired `expiresAt` (none at all, or one in the past: TTL deletes late).
    pub(crate) fn absent_or_expired(self) -> Self {
        self.absent_or_lt(
            super::keys::EXPIRES_AT,
            time::OffsetDateTime::now_utc().unix_timestamp(),
        )
    }

    /// Condition: `attribute` is absent or less than `value` (a counter below its limit).
    pub(crate) fn absent_or_lt(mut self, attribute: &str, value: impl Serialize) -> Self {
        let (name, value) = (self.name(attribute), self.value(value));
        self.conditions
            .push(format!("(attribute_not_exists({name}) OR {name} < {value})"));
        self
    }

    /// Condition: the string `attribute` begins with `prefix`.
    pub(crate) fn begins_with(mut self, attribute: &str, prefix: &str) -> Self {
        let (name, value) = (self.name(attribute), self.value(prefix));
        self.conditions.push(format!("begins_with({name}, {value})"));
        self
    }

    /// Condition: `attribute` is absent (so is the item) or equals `value`.
    pub(crate) fn absent_or_eq(mut self, attribute: &str, value: impl Serialize) -> Self {
        let (name, value) = (self.name(attribute), self.value(value));
        self.conditions
            .push(format!("(attribute_not_exists({name}) OR {name} = {value})"));
        self
    }

    /// Condition: place `attribute` of a slot is free at `now` (epoch seconds): absent, or held by a hold whose
    /// `until_field` passed. A booking's place has no `until`, so it is never free.
    pub(crate) fn place_free(mut self, attribute: &str, until_field: &str, now: i64) -> Self {
        let (name, field, now) = (self.name(attribute), self.name(until_field), self.value(now));
        self.conditions
            .push(format!("(attribute_not_exists({name}) OR {name}.{field} < {now})"));
        self
    }

    /// Condition: field `field` of map attribute `attribute` equals `value`.
    pub(crate) fn field_eq(mut self, attribute: &str, field: &str, value: impl Serialize) -> Self {
        let (name, field, value) = (self.name(attribute), self.name(field), self.value(value));
        self.conditions.push(format!("{name}.{field} = {value}"));
        self
    }

    /// Condition: field `field` of map attribute `attribute` is at least `value`.
    pub(crate) fn field_ge(mut self, attribute: &str, field: &str, value: impl Serialize) -> Self {
        let (name, field, value) = (self.name(attribute), self.name(field), self.value(value));
        self.conditions.push(format!("{name}.{field} >= {value}"));
        self
    }

    /// Update: `SET attribute = if_not_exists(attribute, 0) + 1` (a version counter).
    pub(crate) fn increment(mut self, attribute: &str) -> Self {
        let (name, zero, one) = (self.name(attribute), self.value(0), self.value(1));
        self.set.push(format!("{name} = if_not_exists({name}, {zero}) + {one}"));
        self
    }

    /// Update: `SET attribute = attribute - 1` (a counter that exists).
    pub(crate) fn decrement(mut self, attribute: &str) -> Self {
        let (name, one) = (self.name(attribute), self.value(1));
        self.set.push(format!("{name} = {name} - {one}"));
        self
    }

    /// Update: `SET attribute = if_not_exists(attribute, value)` (set once, kept after).
    pub(crate) fn set_once(mut self, attribute: &str, value: impl Serialize) -> Self {
        let (name, value) = (self.name(attribute), self.value(value));
        self.set.push(format!("{name} = if_not_exists({name}, {value})"));
        self
    }

    /// Condition: the item is absent, or its number `attribute` is below `value`, or `owner_attribute` is
    /// `owner` (a lease that is free, ran out, or is this owner's).
    pub(crate) fn lease_free(mut self, attribute: &str, value: i64, owner_attribute: &str, owner: &str) -> Self {
        let (name, value) = (self.name(attribute), self.value(value));
        let (owner_name, owner) = (self.name(owner_attribute), self.value(owner));
        self.conditions.push(format!(
            "(attribute_not_exists({name}) OR {name} < {value} OR {owner_name} = {owner})"
        ));
        self
    }

    /// Update: `SET attribute = value`.
    pub(crate) fn set(mut self, attribute: &str, value: impl Serialize) -> Self {
        let (name, value) = (self.name(attribute), self.value(value));
        self.set.push(format!("{name} = {value}"));
        self
    }

    /// Update: `REMOVE attribute`.
    pub(crate) fn remove(mut self, attribute: &str) -> Self {
        let name = self.name(attribute);
        self.remove.push(name);
        self
    }

    /// The condition expression, if any.
    pub(crate) fn condition(&self) -> Option<String> {
        (!self.conditions.is_empty()).then(|| self.conditions.join(" AND "))
    }

    /// Whether the expression has update clauses (SET, REMOVE).
    pub(crate) fn has_update(&self) -> bool {
        !(self.set.is_empty() && self.remove.is_empty())
    }

    /// The update expression, if any.
    pub(crate) fn update(&self) -> Option<String> {
        let mut clauses = Vec::new();
        for (keyword, parts) in [("SET", &self.set), ("REMOVE", &self.remove)] {
            if !parts.is_empty() {
                clauses.push(format!("{keyword} {}", parts.join(", ")));
            }
        }
        (!clauses.is_empty()).then(|| clauses.join(" "))
    }

    /// The placeholders for attribute names and values, or the value that could not be serialised.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when a value did not serialise.
    pub(crate) fn placeholders(self) -> Result<Placeholders, StoreError> {
        if let Some(e) = self.error {
            return Err(StoreError::Corrupt(format!("expression value: {e}")));
        }
        let names = (!self.names.is_empty()).then_some(self.names);
        let values = (!self.values.is_empty()).then_some(self.values);
        Ok((names, values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::booking::BookingStatus;

    #[test]
    fn attributes_whose_names_differ_only_in_punctuation_get_their_own_placeholders() {
        let expr = Expr::new().eq("a-b", 1).eq("a_b", 2).eq("a.b", 3).eq("a-b", 4);
        assert_eq!(
            expr.condition().unwrap(),
            "#n0 = :v0 AND #n1 = :v1 AND #n2 = :v2 AND #n0 = :v3"
        );
        assert_eq!(expr.placeholders().unwrap().0.unwrap().len(), 3);
    }

    #[test]
    fn conditions_and_updates_share_placeholders_and_serialise_values_like_the_items() {
        let expr = Expr::new()
            .set("status", BookingStatus::Cancelled)
            .set("booked", -1)
            .remove("GSI1PK")
            .eq("status", BookingStatus::Booked)
            .absent_or_lt("booked", 4);
        assert_eq!(expr.update().unwrap(), "SET #n0 = :v0, #n1 = :v1 REMOVE #n2");
        assert_eq!(
            expr.condition().unwrap(),
            "#n0 = :v2 AND (attribute_not_exists(#n1) OR #n1 < :v3)"
        );
        let (names, values) = expr.placeholders().unwrap();
        let names = names.unwrap();
        assert_eq!((names["#n0"].as_str(), names["#n1"].as_str()), ("status", "booked"));
        assert_eq!(names["#n2"], "GSI1PK");
        let values = values.unwrap();
        assert_eq!(values[":v0"], AttributeValue::S("cancelled".into()));
        assert_eq!(values[":v2"], AttributeValue::S("booked".into()));
        assert_eq!(values[":v1"], AttributeValue::N("-1".into()));
    }

    #[test]
    fn place_conditions_name_the_place_and_its_fields() {
        let expr = Expr::new()
            .place_free("P3", "until", 100)
            .field_eq("P1", "hold", "h")
            .field_ge("P1", "until", 100);
        assert_eq!(
            expr.condition().unwrap(),
            "(attribute_not_exists(#n0) OR #n0.#n1 < :v0) AND #n2.#n3 = :v1 AND #n2.#n1 >= :v2"
        );
    }
}
