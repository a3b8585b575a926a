//! Test types: the catalog of lab tests a patient can book, versioned so a booking keeps the definition it
//! was booked with.

use garde::Validate;
use serde::{Deserialize, Serialize};

/// An inclusive numeric range. A missing bound is open (`high` only: "up to"; `low` only: "at least").
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = crate::examples::range)]
pub struct Range {
    /// Lowest value inside the range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = 12.0)]
    pub low: Option<f64>,
    /// Highest value inside the range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = 17.5)]
    pub high: Option<f64>,
}

/// Largest magnitude of a measured value or range bound. Lab values are far below it; DynamoDB numbers
/// cannot hold what `f64` can (at most 38 significant digits, magnitudes from 1e-130 to 1e125).
pub const MAX_MAGNITUDE: f64 = 1e15;
/// Smallest non-zero magnitude accepted.
pub const MIN_MAGNITUDE: f64 = 1e-15;

/// Whether `value` is a number medbook stores: finite, and zero or within
/// [`MIN_MAGNITUDE`]..=[`MAX_MAGNITUDE`] in magnitude.
pub fn is_storable(value: f64) -> bool {
    value == 0.0 || (MIN_MAGNITUDE..=MAX_MAGNITUDE).contains(&value.abs())
}

impl Range {
    fn is_ordered(&self) -> bool {
        let bounds_ok = self.low.is_none_or(is_storable) && self.high.is_none_or(is_storable);
        bounds_ok
            && match (self.low, self.high) {
                (Some(l), Some(h)) => l <= h,
                (Some(_), None) | (None, Some(_)) => true,
                (None, None) => false,
            }
    }
}

/// One measured quantity of a test, with its unit and ranges.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Validate, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = crate::examples::analyte)]
pub struct Analyte {
    /// Short code, unique within its test type.
    #[garde(pattern(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$"))]
    #[schema(example = "HGB", pattern = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")]
    pub code: String,
    /// Display name.
    #[garde(length(min = 1, max = 200), custom(super::text::name))]
    #[schema(example = "Hemoglobin", min_length = 1, max_length = 200)]
    pub name: String,
    /// LOINC code of the analyte.
    #[garde(pattern(r"^[0-9]{1,7}-[0-9]$"))]
    #[schema(example = "718-7", pattern = r"^[0-9]{1,7}-[0-9]$")]
    pub loinc: String,
    /// UCUM unit; a recorded value must use exactly this unit.
    #[garde(length(min = 1, max = 32), custom(super::text::name))]
    #[schema(example = "g/dL", min_length = 1, max_length = 32)]
    pub unit: String,
    /// Adult reference range: values inside are normal.
    #[garde(custom(ordered))]
    pub reference_range: Range,
    /// Critical range: values outside it are critical (LL/HH). Absent where none is defined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(
        custom(ordered_if_present),
        custom(|critical: &Option<Range>, _: &()| contains_reference(critical, &self.reference_range))
    )]
    pub critical_range: Option<Range>,
}

/// A critical range must contain the reference range: a normal value is never critical. Each critical
/// bound needs the reference bound on its side (below the reference low, or above the reference high).
fn contains_reference(critical: &Option<Range>, reference: &Range) -> garde::Result {
    let Some(critical) = critical else {
        return Ok(());
    };
    let low_ok = match (critical.low, reference.low) {
        (None, _) => true,
        (Some(c), Some(r)) => c <= r,
        (Some(_), None) => false,
    };
    let high_ok = match (critical.high, reference.high) {
        (None, _) => true,
        (Some(c), Some(r)) => c >= r,
        (Some(_), None) => false,
    };
    if low_ok && high_ok {
        Ok(())
    } else {
        Err(garde::Error::new(
            "must contain the reference range (critical low <= reference low, critical high >= reference high)",
        ))
    }
}

fn ordered_if_present(range: &Option<Range>, ctx: &()) -> garde::Result {
    range.as_ref().map_or(Ok(()), |r| ordered(r, ctx))
}

fn ordered(range: &Range, _: &()) -> garde::Result {
    if range.is_ordered() {
        Ok(())
    } else {
        Err(garde::Error::new(
            "needs a low or a high, low <= high, each 0 or of magnitude 1e-15 to 1e15",
        ))
    }
}

/// A test type as defined by the lab: what is measured, how, and what it costs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Validate, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = crate::examples::test_type_definition)]
pub struct TestTypeDefinition {
    /// Catalog code (upper case), the test type's identity.
    #[garde(pattern(r"^[A-Z0-9][A-Z0-9_-]{1,31}$"))]
    #[schema(example = "CBC", pattern = r"^[A-Z0-9][A-Z0-9_-]{1,31}$")]
    pub code: String,
    /// Display name.
    #[garde(length(min = 1, max = 200), custom(super::text::name))]
    #[schema(example = "Complete blood count", min_length = 1, max_length = 200)]
    pub name: String,
    /// Category (haematology, chemistry, ...).
    #[garde(length(min = 1, max = 100), custom(super::text::name))]
    #[schema(example = "hematology", min_length = 1, max_length = 100)]
    pub category: String,
    /// LOINC code of the panel or test.
    #[garde(pattern(r"^[0-9]{1,7}-[0-9]$"))]
    #[schema(example = "58410-2", pattern = r"^[0-9]{1,7}-[0-9]$")]
    pub loinc: String,
    /// Specimen collected.
    #[garde(length(min = 1, max = 100), custom(super::text::name))]
    #[schema(example = "venous blood (EDTA)", min_length = 1, max_length = 100)]
    pub specimen: String,
    /// What the patient must do beforehand (e.g. fasting), if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(inner(length(min = 1, max = 500), custom(super::text::multi_line)))]
    #[schema(example = "none", max_length = 500)]
    pub preparation: Option<String>,
    /// Minutes the collection takes.
    #[garde(range(min = 1, max = 480))]
    #[schema(example = 10, minimum = 1, maximum = 480)]
    pub duration_minutes: u32,
    /// Price in minor units of `currency` (cents).
    #[garde(range(max = 10_000_000))]
    #[schema(example = 2500, maximum = 10_000_000)]
    pub price_cents: u32,
    /// ISO 4217 currency code.
    #[garde(pattern(r"^[A-Z]{3}$"))]
    #[schema(example = "EUR", pattern = "^[A-Z]{3}$")]
    pub currency: String,
    /// Whether the test type can be booked.
    #[serde(default = "yes")]
    #[garde(skip)]
    pub active: bool,
    /// What is measured.
    #[garde(length(min = 1, max = 50), dive, custom(unique_analytes))]
    #[schema(min_items = 1, max_items = 50)]
    pub analytes: Vec<Analyte>,
}

fn yes() -> bool {
    true
}

fn unique_analytes(analytes: &[Analyte], _: &()) -> garde::Result {
    let mut seen = std::collections::HashSet::new();
    match analytes.iter().find(|a| !seen.insert(a.code.as_str())) {
        Some(dup) => Err(garde::Error::new(format!("analyte code `{}` appears twice", dup.code))),
        None => Ok(()),
    }
}

/// One version of a test type, as stored and served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestType {
    /// Version number, from 1; bookings point at the version they booked.
    pub version: u32,
    /// The definition at this version.
    #[serde(flatten)]
    pub definition: TestTypeDefinition,
    /// When this version was created.
    pub created_at: String,
}

/// How a value compares with an analyte's ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Flag {
    /// Inside the reference range.
    N,
    /// Below the reference range.
    L,
    /// Above the reference range.
    H,
    /// Below the critical range.
    LL,
    /// Above the critical range.
    HH,
}

impl Analyte {
    /// Flags `value` against this analyte's ranges. Range bounds are inclusive: a value equal to a bound is
    /// inside that range.
    pub fn flag(&self, value: f64) -> Flag {
        if let Some(critical) = &self.critical_range {
            if critical.low.is_some_and(|low| value < low) {
                return Flag::LL;
            }
            if critical.high.is_some_and(|high| value > high) {
                return Flag::HH;
            }
        }
        let reference = &self.reference_range;
        if reference.low.is_some_and(|low| value < low) {
            Flag::L
        } else if reference.high.is_some_and(|high| value > high) {
            Flag::H
        } else {
            Flag::N
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hemoglobin() -> Analyte {
        Analyte {
            code: "HGB".into(),
            name: "Hemoglobin".into(),
            loinc: "718-7".into(),
            unit: "g/dL".into(),
            reference_range: Range {
                low: Some(12.0),
                high: Some(17.5),
            },
            critical_range: Some(Range {
                low: Some(7.0),
                high: Some(20.0),
            }),
        }
    }

    #[test]
    fn flags_at_and_around_each_boundary() {
        let a = hemoglobin();
        for (value, flag) in [
            (6.9, Flag::LL),
            (7.0, Flag::L),
            (11.9, Flag::L),
            (12.0, Flag::N),
            (17.5, Flag::N),
            (17.6, Flag::H),
            (20.0, Flag::H),
            (20.1, Flag::HH),
        ] {
            assert_eq!(a.flag(value), flag, "{value}");
        }
    }

    #[test]
    fn a_one_sided_range_flags_only_one_way() {
        let mut a = hemoglobin();
        a.reference_range = Range {
            low: None,
            high: Some(200.0),
        };
        a.critical_range = None;
        assert_eq!(a.flag(-5.0), Flag::N);
        assert_eq!(a.flag(200.0), Flag::N);
        assert_eq!(a.flag(200.5), Flag::H);
    }

    #[test]
    fn validation_rejects_unordered_ranges_and_duplicate_analytes() {
        let mut a = hemoglobin();
        a.reference_range = Range {
            low: Some(5.0),
            high: Some(1.0),
        };
        let def = TestTypeDefinition {
            code: "CBC".into(),
            name: "CBC".into(),
            category: "hematology".into(),
            loinc: "58410-2".into(),
            specimen: "blood".into(),
            preparation: None,
            duration_minutes: 10,
            price_cents: 100,
            currency: "EUR".into(),
            active: true,
            analytes: vec![a, hemoglobin()],
        };
        let report = def.validate().unwrap_err().to_string();
        assert!(report.contains("analytes[0].reference_range"), "{report}");
        assert!(report.contains("appears twice"), "{report}");
    }

    #[test]
    fn a_critical_range_must_contain_the_reference_range() {
        let range = |low, high| Range { low, high };
        let mut a = hemoglobin();
        a.reference_range = range(Some(12.0), Some(17.5));
        for (critical, ok) in [
            (range(Some(7.0), Some(20.0)), true),
            (range(Some(12.0), Some(17.5)), true),
            (range(None, Some(20.0)), true),
            (range(Some(13.0), Some(20.0)), false),
            (range(Some(7.0), Some(15.0)), false),
        ] {
            a.critical_range = Some(critical);
            assert_eq!(a.validate().is_ok(), ok, "{critical:?}");
        }
        a.reference_range = range(None, Some(5.0));
        a.critical_range = Some(range(Some(1.0), Some(10.0)));
        assert!(a.validate().is_err(), "a critical low without a reference low");
    }
}
