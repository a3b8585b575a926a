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

/// Whether `code` has the shape of a LOINC code (`718-7`: up to seven digits, a dash, a check digit).
pub fn is_loinc(code: &str) -> bool {
    code.split_once('-').is_some_and(|(number, check)| {
        (1..=7).contains(&number.len())
            && check.len() == 1
            && number.bytes().chain(check.bytes()).all(|b| b.is_ascii_digit())
    })
}

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
    /// The one reference range for everyone (values inside are normal): the catalog's first form, kept
    /// working. Give this or `referenceRanges`, not both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(custom(ordered_if_present))]
    pub reference_range: Option<Range>,
    /// Reference ranges by sex and age at collection; the most specific matching entry applies, and one entry
    /// without sex or age (the catch-all) is required.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[garde(length(max = 20), dive, custom(|ranges: &Vec<ReferenceRange>, _: &()| one_catch_all(ranges, self.reference_range.as_ref())))]
    #[schema(max_items = 20)]
    pub reference_ranges: Vec<ReferenceRange>,
    /// Critical range: values outside it are critical (LL/HH). Absent where none is defined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(
        custom(ordered_if_present),
        custom(|critical: &Option<Range>, _: &()| contains_every_reference(critical, self))
    )]
    pub critical_range: Option<Range>,
    /// Compare a new value with the patient's previous final value of the same LOINC code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(dive)]
    pub delta_check: Option<DeltaCheck>,
}

/// The sex a reference range applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RangeSex {
    /// Female patients.
    Female,
    /// Male patients.
    Male,
}

/// The unit of an age bound, as UCUM writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum AgeUnit {
    /// Days.
    #[serde(rename = "d")]
    Days,
    /// Months (complete calendar months).
    #[serde(rename = "mo")]
    Months,
    /// Years (complete years).
    #[serde(rename = "a")]
    Years,
}

/// An age bound: `{value: 18, unit: "a"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"value": 18, "unit": "a"}))]
pub struct Age {
    /// How many units.
    #[garde(range(max = 50_000))]
    #[schema(maximum = 50_000)]
    pub value: u32,
    /// `d`, `mo` or `a`.
    #[garde(skip)]
    pub unit: AgeUnit,
}

impl Age {
    /// The age of someone born on `birth` on the day `on`, in this bound's unit (0 before birth).
    pub fn of(unit: AgeUnit, birth: time::Date, on: time::Date) -> u32 {
        if on <= birth {
            return 0;
        }
        match unit {
            AgeUnit::Days => u32::try_from((on - birth).whole_days()).unwrap_or(u32::MAX),
            AgeUnit::Months | AgeUnit::Years => {
                let months = (on.year() - birth.year()) * 12 + i32::from(u8::from(on.month()))
                    - i32::from(u8::from(birth.month()))
                    - i32::from(on.day() < birth.day());
                let months = u32::try_from(months.max(0)).unwrap_or(0);
                if unit == AgeUnit::Months { months } else { months / 12 }
            }
        }
    }
}

/// One reference range and whom it applies to: `ageFrom` inclusive, `ageTo` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Validate, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"sex": "female", "ageFrom": {"value": 18, "unit": "a"}, "low": 12.1, "high": 15.1}))]
#[garde(allow_unvalidated)]
pub struct ReferenceRange {
    /// Only for this sex; absent: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sex: Option<RangeSex>,
    /// From this age (inclusive); absent: from birth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(dive)]
    pub age_from: Option<Age>,
    /// Below this age (exclusive); absent: no upper age.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(dive)]
    pub age_to: Option<Age>,
    /// Lowest value inside the range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(custom(|_: &Option<f64>, _: &()| ordered(&self.range(), &())))]
    pub low: Option<f64>,
    /// Highest value inside the range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high: Option<f64>,
}

/// Who a value is judged for: the patient's sex and birth date, and the day the specimen was collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject {
    /// The patient's sex; `None` (other or unknown) matches only ranges for any sex.
    pub sex: Option<RangeSex>,
    /// Birth date.
    pub birth_date: time::Date,
    /// Day of collection.
    pub collected_on: time::Date,
}

impl ReferenceRange {
    /// The bounds alone.
    pub fn range(&self) -> Range {
        Range {
            low: self.low,
            high: self.high,
        }
    }

    /// The catch-all made of a single range.
    pub fn everyone(range: Range) -> Self {
        Self {
            sex: None,
            age_from: None,
            age_to: None,
            low: range.low,
            high: range.high,
        }
    }

    fn is_catch_all(&self) -> bool {
        self.sex.is_none() && self.age_from.is_none() && self.age_to.is_none()
    }

    fn specificity(&self) -> u8 {
        u8::from(self.sex.is_some()) + u8::from(self.age_from.is_some()) + u8::from(self.age_to.is_some())
    }

    fn matches(&self, who: &Subject) -> bool {
        let age = |bound: &Age| Age::of(bound.unit, who.birth_date, who.collected_on);
        self.sex.is_none_or(|s| who.sex == Some(s))
            && self.age_from.is_none_or(|from| age(&from) >= from.value)
            && self.age_to.is_none_or(|to| age(&to) < to.value)
    }
}

/// A delta check: flag a value that moved more than `percent` or `absolute` from the patient's previous
/// final value of the same LOINC code collected within `withinDays`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Validate, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"percent": 20, "withinDays": 30}))]
pub struct DeltaCheck {
    /// Relative change (percent of the previous value) beyond which the value is flagged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(inner(range(min = 0.1, max = 1000.0)), custom(|_: &Option<f64>, _: &()| some_threshold(self)))]
    #[schema(minimum = 0.1, maximum = 1000)]
    pub percent: Option<f64>,
    /// Absolute change (in the analyte's unit) beyond which the value is flagged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(inner(custom(positive_storable)))]
    pub absolute: Option<f64>,
    /// How far back a previous value counts, in days.
    #[garde(range(min = 1, max = 3650))]
    #[schema(minimum = 1, maximum = 3650)]
    pub within_days: u32,
}

fn some_threshold(check: &DeltaCheck) -> garde::Result {
    if check.percent.is_none() && check.absolute.is_none() {
        return Err(garde::Error::new("give percent, absolute or both"));
    }
    Ok(())
}

fn positive_storable(value: &f64, _: &()) -> garde::Result {
    if *value > 0.0 && is_storable(*value) {
        Ok(())
    } else {
        Err(garde::Error::new("must be positive, of magnitude 1e-15 to 1e15"))
    }
}

impl DeltaCheck {
    /// Whether a change from `previous` to `value` is beyond this check's thresholds.
    pub fn exceeded(&self, previous: f64, value: f64) -> bool {
        let change = (value - previous).abs();
        let absolute = self.absolute.is_some_and(|limit| change > limit);
        let percent = self
            .percent
            .is_some_and(|limit| previous != 0.0 && change / previous.abs() * 100.0 > limit);
        absolute || percent
    }
}

fn one_catch_all(ranges: &[ReferenceRange], single: Option<&Range>) -> garde::Result {
    match (ranges.is_empty(), single.is_some()) {
        (true, false) => Err(garde::Error::new("give referenceRange or referenceRanges")),
        (false, true) => Err(garde::Error::new("give referenceRange or referenceRanges, not both")),
        (true, true) => Ok(()),
        (false, false) if ranges.iter().filter(|r| r.is_catch_all()).count() == 1 => Ok(()),
        (false, false) => Err(garde::Error::new(
            "needs exactly one entry without sex or age (the catch-all)",
        )),
    }
}

/// A critical range must contain every reference range: a normal value is never critical. Each critical
/// bound needs the reference bound on its side (below the reference low, or above the reference high).
fn contains_every_reference(critical: &Option<Range>, analyte: &Analyte) -> garde::Result {
    let Some(critical) = critical else {
        return Ok(());
    };
    let contains = |reference: &Range| {
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
        low_ok && high_ok
    };
    if analyte.reference_ranges().iter().all(|r| contains(&r.range())) {
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
    /// When its results are released to the patient, overriding `MEDBOOK_RESULT_RELEASE`: `on-final`,
    /// `on-review` (e.g. for a sensitive test) or `on-final-after:<hours>` (1 to 720). Absent: the service's
    /// policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(skip)]
    #[schema(value_type = Option<String>, pattern = r"^(on-final|on-review|on-final-after:[0-9]{1,3})$", example = "on-review")]
    pub release: Option<super::release::ReleasePolicy>,
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
    if let Some(dup) = analytes.iter().find(|a| !seen.insert(a.code.as_str())) {
        return Err(garde::Error::new(format!("analyte code `{}` appears twice", dup.code)));
    }
    // A patient's series is keyed by LOINC code: one test cannot report one code twice.
    let mut seen = std::collections::HashSet::new();
    match analytes.iter().find(|a| !seen.insert(a.loinc.as_str())) {
        Some(dup) => Err(garde::Error::new(format!("LOINC code `{}` appears twice", dup.loinc))),
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
    /// Every reference range, the single one as a catch-all.
    pub fn reference_ranges(&self) -> Vec<ReferenceRange> {
        match self.reference_range {
            Some(range) => vec![ReferenceRange::everyone(range)],
            None => self.reference_ranges.clone(),
        }
    }

    /// The reference range that applies to `who`: the most specific match (the first of equals); the
    /// catch-all when nothing more specific matches, or when nothing is known of the patient.
    pub fn reference_for(&self, who: Option<&Subject>) -> Option<ReferenceRange> {
        let ranges = self.reference_ranges();
        let matching = ranges.iter().filter(|r| who.map_or(r.is_catch_all(), |w| r.matches(w)));
        // `max_by_key` keeps the last of equals: reverse first, so the first listed wins.
        matching.rev().max_by_key(|r| r.specificity()).copied()
    }

    /// Flags `value` against the critical range and `reference`. Range bounds are inclusive: a value equal to
    /// a bound is inside that range.
    pub fn flag_against(&self, value: f64, reference: Option<&Range>) -> Flag {
        if let Some(critical) = &self.critical_range {
            if critical.low.is_some_and(|low| value < low) {
                return Flag::LL;
            }
            if critical.high.is_some_and(|high| value > high) {
                return Flag::HH;
            }
        }
        let Some(reference) = reference else {
            return Flag::N;
        };
        if reference.low.is_some_and(|low| value < low) {
            Flag::L
        } else if reference.high.is_some_and(|high| value > high) {
            Flag::H
        } else {
            Flag::N
        }
    }

    /// Flags `value` against this analyte's catch-all reference range.
    pub fn flag(&self, value: f64) -> Flag {
        self.flag_against(value, self.reference_for(None).map(|r| r.range()).as_ref())
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
            reference_range: Some(Range {
                low: Some(12.0),
                high: Some(17.5),
            }),
            reference_ranges: Vec::new(),
            critical_range: Some(Range {
                low: Some(7.0),
                high: Some(20.0),
            }),
            delta_check: None,
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
        a.reference_range = Some(Range {
            low: None,
            high: Some(200.0),
        });
        a.critical_range = None;
        assert_eq!(a.flag(-5.0), Flag::N);
        assert_eq!(a.flag(200.0), Flag::N);
        assert_eq!(a.flag(200.5), Flag::H);
    }

    #[test]
    fn validation_rejects_unordered_ranges_and_duplicate_analytes() {
        let mut a = hemoglobin();
        a.reference_range = Some(Range {
            low: Some(5.0),
            high: Some(1.0),
        });
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
            release: None,
            analytes: vec![a, hemoglobin()],
        };
        let report = def.validate().unwrap_err().to_string();
        assert!(report.contains("analytes[0].reference_range"), "{report}");
        assert!(report.contains("appears twice"), "{report}");
        let mut other = hemoglobin();
        other.code = "HB2".into();
        let twice = TestTypeDefinition {
            analytes: vec![hemoglobin(), other],
            ..def
        };
        let report = twice.validate().unwrap_err().to_string();
        assert!(report.contains("LOINC code `718-7` appears twice"), "{report}");
    }

    #[test]
    fn a_critical_range_must_contain_the_reference_range() {
        let range = |low, high| Range { low, high };
        let mut a = hemoglobin();
        a.reference_range = Some(range(Some(12.0), Some(17.5)));
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
        a.reference_range = Some(range(None, Some(5.0)));
        a.critical_range = Some(range(Some(1.0), Some(10.0)));
        assert!(a.validate().is_err(), "a critical low without a reference low");
    }

    fn by_sex_and_age() -> Analyte {
        let ranges: Vec<ReferenceRange> = serde_json::from_value(serde_json::json!([
            {"low": 12.0, "high": 17.5},
            {"sex": "female", "ageFrom": {"value": 18, "unit": "a"}, "low": 12.1, "high": 15.1},
            {"sex": "male", "ageFrom": {"value": 18, "unit": "a"}, "low": 13.8, "high": 17.2},
            {"ageTo": {"value": 28, "unit": "d"}, "low": 14.0, "high": 24.0}
        ]))
        .unwrap();
        Analyte {
            reference_range: None,
            reference_ranges: ranges,
            critical_range: None,
            ..hemoglobin()
        }
    }

    fn subject(sex: Option<RangeSex>, birth: time::Date) -> Subject {
        Subject {
            sex,
            birth_date: birth,
            collected_on: time::macros::date!(2026 - 12 - 01),
        }
    }

    #[test]
    fn ages_count_complete_days_months_and_years() {
        use time::macros::date;
        let on = date!(2026 - 12 - 01);
        assert_eq!(
            Age::of(AgeUnit::Years, date!(2008 - 12 - 01), on),
            18,
            "the birthday itself"
        );
        assert_eq!(Age::of(AgeUnit::Years, date!(2008 - 12 - 02), on), 17);
        assert_eq!(Age::of(AgeUnit::Months, date!(2026 - 10 - 31), on), 1);
        assert_eq!(Age::of(AgeUnit::Months, date!(2026 - 11 - 02), on), 0);
        assert_eq!(Age::of(AgeUnit::Days, date!(2026 - 11 - 03), on), 28);
        assert_eq!(Age::of(AgeUnit::Days, date!(2027 - 01 - 01), on), 0, "not born yet");
    }

    #[test]
    fn the_most_specific_matching_range_applies_and_the_catch_all_otherwise() {
        use time::macros::date;
        let a = by_sex_and_age();
        let low = |who: &Subject| a.reference_for(Some(who)).and_then(|r| r.low);
        assert_eq!(low(&subject(Some(RangeSex::Female), date!(1990 - 01 - 01))), Some(12.1));
        assert_eq!(low(&subject(Some(RangeSex::Male), date!(1990 - 01 - 01))), Some(13.8));
        assert_eq!(
            low(&subject(None, date!(1990 - 01 - 01))),
            Some(12.0),
            "other/unknown sex"
        );
        assert_eq!(
            low(&subject(Some(RangeSex::Male), date!(2010 - 01 - 01))),
            Some(12.0),
            "a boy of 16"
        );
        assert_eq!(
            low(&subject(Some(RangeSex::Male), date!(2026 - 11 - 20))),
            Some(14.0),
            "a newborn"
        );
        assert_eq!(a.reference_for(None).and_then(|r| r.low), Some(12.0));
        let r = a.reference_for(Some(&subject(Some(RangeSex::Female), date!(1990 - 01 - 01))));
        assert_eq!(a.flag_against(15.5, r.map(|r| r.range()).as_ref()), Flag::H);
        assert_eq!(a.flag(15.5), Flag::N, "the catch-all would not flag it");
    }

    #[test]
    fn ranges_need_exactly_one_catch_all_and_not_both_forms() {
        let mut a = by_sex_and_age();
        assert!(a.validate().is_ok(), "{:?}", a.validate());
        a.reference_ranges.remove(0);
        assert!(a.validate().unwrap_err().to_string().contains("catch-all"));
        let mut a = by_sex_and_age();
        a.reference_range = Some(Range {
            low: Some(1.0),
            high: None,
        });
        assert!(a.validate().unwrap_err().to_string().contains("not both"));
        a.reference_range = None;
        a.reference_ranges.clear();
        assert!(a.validate().is_err(), "neither form");
    }

    #[test]
    fn a_critical_range_must_contain_every_reference_range() {
        let mut a = by_sex_and_age();
        a.critical_range = Some(Range {
            low: Some(7.0),
            high: Some(20.0),
        });
        assert!(a.validate().is_err(), "the newborn range reaches 24");
        a.critical_range = Some(Range {
            low: Some(7.0),
            high: Some(25.0),
        });
        assert!(a.validate().is_ok());
    }

    #[test]
    fn a_delta_check_fires_beyond_either_threshold() {
        let check = DeltaCheck {
            percent: Some(20.0),
            absolute: Some(3.0),
            within_days: 30,
        };
        assert!(!check.exceeded(10.0, 11.9));
        assert!(check.exceeded(10.0, 12.1), "21 %");
        assert!(check.exceeded(100.0, 96.5), "3.5 absolute");
        assert!(!check.exceeded(0.0, 2.0), "no percent of zero; 2 < 3 absolute");
        let bad = DeltaCheck {
            percent: None,
            absolute: None,
            within_days: 30,
        };
        assert!(bad.validate().is_err());
    }
}
