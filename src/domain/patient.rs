//! Patients.

use serde::{Deserialize, Serialize};
use time::Date;
use uuid::Uuid;

/// Administrative sex, as in FHIR's AdministrativeGender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Sex {
    /// Female.
    Female,
    /// Male.
    Male,
    /// Other.
    Other,
    /// Unknown.
    Unknown,
}

/// An identifier another system gives the patient (FHIR `Patient.identifier`): a hospital's record number, a
/// national id. Unique per system: one (system, value) belongs to one patient.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"system": "https://hospital.example.org/mrn", "value": "MRN-004711"}))]
pub struct Identifier {
    /// The system's URI (`https://…` or `urn:…`): 1 to 200 visible ASCII characters with a `:`, no `|` or `#`.
    #[schema(min_length = 1, max_length = 200)]
    pub system: String,
    /// The value within that system: 1 to 100 visible ASCII characters.
    #[schema(min_length = 1, max_length = 100)]
    pub value: String,
}

/// Identifiers a patient has at most.
pub const MAX_IDENTIFIERS: usize = 5;

impl Identifier {
    /// Parses `system|value` (the form of a FHIR token search): split at the first `|`.
    pub fn parse_token(text: &str) -> Option<Self> {
        let (system, value) = text.split_once('|')?;
        let identifier = Self {
            system: system.to_owned(),
            value: value.to_owned(),
        };
        identifier.problem().is_none().then_some(identifier)
    }

    /// What is wrong with this identifier, if anything.
    pub fn problem(&self) -> Option<&'static str> {
        let visible = |s: &str| s.bytes().all(|b| b.is_ascii_graphic());
        if self.system.is_empty()
            || self.system.len() > 200
            || !visible(&self.system)
            || self.system.contains(['|', '#'])
            || !self.system.contains(':')
        {
            Some("system must be a URI of 1 to 200 visible ASCII characters, without | or #")
        } else if self.value.is_empty() || self.value.len() > 100 || !visible(&self.value) {
            Some("value must be 1 to 100 visible ASCII characters")
        } else {
            None
        }
    }
}

/// What is wrong with a patient's list of identifiers, if anything: too many, a bad one, or one twice.
pub fn identifiers_problem(identifiers: &[Identifier]) -> Option<String> {
    if identifiers.len() > MAX_IDENTIFIERS {
        return Some(format!("at most {MAX_IDENTIFIERS} identifiers"));
    }
    for (i, identifier) in identifiers.iter().enumerate() {
        if let Some(problem) = identifier.problem() {
            return Some(format!("[{i}]: {problem}"));
        }
        if identifiers[..i].contains(identifier) {
            return Some(format!("[{i}]: listed twice"));
        }
    }
    None
}

/// A sign-in identity (an OpenID provider's issuer and subject) linked to a patient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedIdentity {
    /// The provider's issuer.
    pub issuer: String,
    /// The provider's subject.
    pub sub: String,
    /// When it was linked.
    pub linked_at: String,
    /// Who linked it: `self` for a self-registration, else the staff member.
    pub linked_by: String,
}

/// A patient record.
#[derive(Debug, Clone, PartialEq)]
pub struct Patient {
    /// Server-generated id (UUID v7).
    pub id: Uuid,
    /// Given name.
    pub given_name: String,
    /// Family name.
    pub family_name: String,
    /// Date of birth.
    pub birth_date: Date,
    /// Administrative sex.
    pub sex: Sex,
    /// E-mail address.
    pub email: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
    /// Identifiers other systems give the patient.
    pub identifiers: Vec<Identifier>,
    /// Optimistic-concurrency version, starting at 1; the ETag.
    pub version: u64,
    /// Creation time.
    pub created_at: String,
    /// Last change time.
    pub updated_at: String,
}

/// The fields of a new patient.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPatient {
    /// Given name.
    pub given_name: String,
    /// Family name.
    pub family_name: String,
    /// Date of birth.
    pub birth_date: Date,
    /// Administrative sex.
    pub sex: Sex,
    /// E-mail address.
    pub email: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
    /// Identifiers other systems give the patient.
    pub identifiers: Vec<Identifier>,
}

/// A partial update: `None` leaves a field as it is; for email and phone `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PatientPatch {
    /// New given name.
    pub given_name: Option<String>,
    /// New family name.
    pub family_name: Option<String>,
    /// New date of birth.
    pub birth_date: Option<Date>,
    /// New sex.
    pub sex: Option<Sex>,
    /// New or cleared e-mail.
    pub email: Option<Option<String>>,
    /// New or cleared phone.
    pub phone: Option<Option<String>>,
    /// The new list of identifiers (replacing the old one).
    pub identifiers: Option<Vec<Identifier>>,
}

impl Patient {
    /// A new patient with a fresh id at version 1.
    pub fn create(new: NewPatient, now: &str) -> Self {
        Self {
            id: Uuid::now_v7(),
            given_name: new.given_name,
            family_name: new.family_name,
            birth_date: new.birth_date,
            sex: new.sex,
            email: new.email,
            phone: new.phone,
            identifiers: new.identifiers,
            version: 1,
            created_at: now.to_owned(),
            updated_at: now.to_owned(),
        }
    }

    /// Whether `other` holds the same record (what a patient is, ignoring version and times).
    pub fn same_record(&self, other: &Self) -> bool {
        (
            &self.given_name,
            &self.family_name,
            self.birth_date,
            self.sex,
            &self.email,
            &self.phone,
            &self.identifiers,
        ) == (
            &other.given_name,
            &other.family_name,
            other.birth_date,
            other.sex,
            &other.email,
            &other.phone,
            &other.identifiers,
        )
    }

    /// This patient with `patch` applied and the version moved on.
    pub fn patched(&self, patch: PatientPatch, now: &str) -> Self {
        Self {
            id: self.id,
            given_name: patch.given_name.unwrap_or_else(|| self.given_name.clone()),
            family_name: patch.family_name.unwrap_or_else(|| self.family_name.clone()),
            birth_date: patch.birth_date.unwrap_or(self.birth_date),
            sex: patch.sex.unwrap_or(self.sex),
            email: patch.email.unwrap_or_else(|| self.email.clone()),
            phone: patch.phone.unwrap_or_else(|| self.phone.clone()),
            identifiers: patch.identifiers.unwrap_or_else(|| self.identifiers.clone()),
            version: self.version + 1,
            created_at: self.created_at.clone(),
            updated_at: now.to_owned(),
        }
    }
}

/// An e-mail address as its uniqueness guard and the lookup compare it: trimmed, the whole address lower-cased.
pub fn normalise_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// The ASCII a Latin letter with a diacritic (or a special Latin letter) folds to, lower-case.
fn fold_letter(c: char) -> Option<&'static str> {
    Some(match c {
        'à'..='å' | 'ā' | 'ă' | 'ą' => "a",
        'æ' => "ae",
        'ç' | 'ć' | 'ĉ' | 'ċ' | 'č' => "c",
        'ð' | 'ď' | 'đ' => "d",
        'è'..='ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => "e",
        'ĝ' | 'ğ' | 'ġ' | 'ģ' => "g",
        'ĥ' | 'ħ' => "h",
        'ì'..='ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' => "i",
        'ĳ' => "ij",
        'ĵ' => "j",
        'ķ' | 'ĸ' => "k",
        'ĺ' | 'ļ' | 'ľ' | 'ŀ' | 'ł' => "l",
        'ñ' | 'ń' | 'ņ' | 'ň' | 'ŉ' | 'ŋ' => "n",
        'ò'..='ö' | 'ø' | 'ō' | 'ŏ' | 'ő' => "o",
        'œ' => "oe",
        'ŕ' | 'ŗ' | 'ř' => "r",
        'ß' => "ss",
        'ś' | 'ŝ' | 'ş' | 'š' | 'ſ' => "s",
        'ţ' | 'ť' | 'ŧ' => "t",
        'þ' => "th",
        'ù'..='ü' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' => "u",
        'ŵ' => "w",
        'ý' | 'ÿ' | 'ŷ' => "y",
        'ź' | 'ż' | 'ž' => "z",
        _ => return None,
    })
}

/// A name as the patient search keeps and compares it: lower-case, Latin letters with diacritics folded to
/// ASCII (`Müller` → `muller`, `Łukasik` → `lukasik`, `Ångström` → `angstrom`), combining marks dropped, other
/// letters and digits kept, and every run of anything else (spaces, hyphens, apostrophes, `#`) one `-`: it
/// sorts after the search key's `#` separator, so `muller#…` comes before `muller-schmidt#…`.
pub fn search_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut gap = false;
    for c in name.chars().flat_map(char::to_lowercase) {
        if ('\u{300}'..='\u{36f}').contains(&c) {
            continue;
        }
        if let Some(ascii) = fold_letter(c) {
            if gap && !out.is_empty() {
                out.push('-');
            }
            gap = false;
            out.push_str(ascii);
        } else if c.is_alphanumeric() {
            if gap && !out.is_empty() {
                out.push('-');
            }
            gap = false;
            out.push(c);
        } else {
            gap = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    #[test]
    fn a_patch_changes_only_what_it_names_and_bumps_the_version() {
        let p = Patient::create(
            NewPatient {
                given_name: "Ada".into(),
                family_name: "Lovelace".into(),
                birth_date: date!(1815 - 12 - 10),
                sex: Sex::Female,
                email: Some("ada@example.org".into()),
                phone: None,
                identifiers: Vec::new(),
            },
            "t0",
        );
        let q = p.patched(
            PatientPatch {
                family_name: Some("King".into()),
                email: Some(None),
                ..Default::default()
            },
            "t1",
        );
        assert_eq!((q.given_name.as_str(), q.family_name.as_str()), ("Ada", "King"));
        assert_eq!(q.email, None);
        assert_eq!(
            (q.version, q.created_at.as_str(), q.updated_at.as_str()),
            (2, "t0", "t1")
        );
    }

    #[test]
    fn an_identifier_token_is_system_bar_value_and_each_part_is_checked() {
        let mrn = Identifier::parse_token("https://hospital.example/mrn|A|1").unwrap();
        assert_eq!(
            (mrn.system.as_str(), mrn.value.as_str()),
            ("https://hospital.example/mrn", "A|1")
        );
        for bad in [
            "no-bar",
            "|x",
            "urn:x|",
            "nocolon|x",
            "urn:a#b|x",
            "urn:x|a b",
            "urn:ü|x",
        ] {
            assert!(Identifier::parse_token(bad).is_none(), "{bad}");
        }
        let one = |v: &str| Identifier {
            system: "urn:oid:1.2.3".into(),
            value: v.into(),
        };
        assert_eq!(identifiers_problem(&[one("1"), one("2")]), None);
        assert!(identifiers_problem(&[one("1"), one("1")]).unwrap().contains("twice"));
        let many: Vec<Identifier> = (0..=MAX_IDENTIFIERS).map(|i| one(&i.to_string())).collect();
        assert!(identifiers_problem(&many).is_some());
    }

    #[test]
    fn names_fold_to_what_a_front_desk_types() {
        assert_eq!(search_name("Müller"), "muller");
        assert_eq!(search_name("Ångström-Łukasik"), "angstrom-lukasik");
        assert_eq!(search_name("  O'Brien  "), "o-brien");
        assert_eq!(search_name("Zoë"), "zoe");
        assert_eq!(search_name("Zoe\u{308}"), "zoe", "a decomposed diaeresis");
        assert_eq!(search_name("Straße"), "strasse");
        assert_eq!(search_name("Œdipe#1"), "oedipe-1", "never a `#` (the key separator)");
        assert_eq!(search_name("Ηλίας"), "ηλίας", "other scripts are kept, lower-cased");
        assert_eq!(
            normalise_email("  Ada.Lovelace@Example.ORG "),
            "ada.lovelace@example.org"
        );
    }
}
