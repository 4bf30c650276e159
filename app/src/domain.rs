//! Domain types shared by the browser and the server. Each is built only by
//! parsing, so a value of the type is valid by construction: handlers and
//! repositories never re-check what a type already guarantees.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Why one field of a form or request body was refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// Collects field errors while parsing a whole form, so the user sees every
/// problem at once rather than one per submit.
#[derive(Default, Debug)]
pub struct Fields(pub Vec<FieldError>);

impl Fields {
    pub fn take<T>(&mut self, r: Result<T, FieldError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.push(e);
                None
            }
        }
    }
}

fn has_control(s: &str) -> bool {
    s.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
}

/// Trimmed, non-empty, single-line text of bounded length.
fn line(field: &str, raw: &str, max: usize) -> Result<String, FieldError> {
    let s = raw.trim();
    if s.is_empty() {
        return Err(FieldError::new(field, "is required"));
    }
    if s.chars().count() > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(s.to_owned())
}

macro_rules! text_newtype {
    ($(#[$m:meta])* $name:ident, $field:literal, $max:expr) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub const MAX: usize = $max;
            pub fn parse(raw: &str) -> Result<Self, FieldError> {
                line($field, raw, $max).map(Self)
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                Self::parse(&s).map_err(|e| format!("{} {}", e.field, e.message))
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_newtype!(
    /// A patient pseudonym or MRN as the doctor types it.
    PatientRef, "patient_ref", 64
);
text_newtype!(
    /// Body part examined, e.g. "head", "chest".
    BodyPart, "body_part", 64
);
text_newtype!(
    /// A person's display name.
    PersonName, "name", 120
);
text_newtype!(
    /// An organisation (tenant) name.
    OrgName, "org", 120
);

/// Free-text clinical history: may be empty, multi-line, bounded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ClinicalHistory(String);

impl ClinicalHistory {
    pub const MAX: usize = 4000;
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let s = raw.trim();
        if s.chars().count() > Self::MAX {
            return Err(FieldError::new(
                "history",
                format!("must be at most {} characters", Self::MAX),
            ));
        }
        if has_control(s) {
            return Err(FieldError::new(
                "history",
                "must not contain control characters",
            ));
        }
        Ok(Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A lower-cased e-mail address with one `@` and a dotted domain.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let s = raw.trim().to_lowercase();
        let bad = || FieldError::new("email", "is not a valid e-mail address");
        if s.is_empty() {
            return Err(FieldError::new("email", "is required"));
        }
        if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = s.split_once('@').ok_or_else(bad)?;
        if local.is_empty()
            || local.len() > 64
            || domain.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
            || s.contains(['<', '>', '"', '\'', '(', ')', ',', ';', '\\'])
        {
            return Err(bad());
        }
        Ok(Self(s))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Email {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s).map_err(|e| format!("{} {}", e.field, e.message))
    }
}
impl From<Email> for String {
    fn from(v: Email) -> String {
        v.0
    }
}
impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A new password: long enough to resist guessing (NIST SP 800-63B asks for
/// length, not composition rules), bounded so hashing cannot be abused.
pub struct NewPassword(String);

impl NewPassword {
    pub const MIN: usize = 12;
    pub const MAX: usize = 256;
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let n = raw.chars().count();
        if n < Self::MIN {
            return Err(FieldError::new(
                "password",
                format!("must be at least {} characters", Self::MIN),
            ));
        }
        if n > Self::MAX {
            return Err(FieldError::new(
                "password",
                format!("must be at most {} characters", Self::MAX),
            ));
        }
        Ok(Self(raw.to_owned()))
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewPassword(..)")
    }
}

/// Declares a closed set of values with their wire spelling and label.
macro_rules! closed_enum {
    ($(#[$m:meta])* $name:ident, $field:literal, { $($var:ident => $wire:literal, $label:literal;)+ }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name { $(#[serde(rename = $wire)] $var,)+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$var,)+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$var => $wire,)+ }
            }
            pub fn label(self) -> &'static str {
                match self { $($name::$var => $label,)+ }
            }
            pub fn parse(raw: &str) -> Result<Self, FieldError> {
                raw.parse().map_err(|_| {
                    let allowed: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                    FieldError::new($field, format!("must be one of: {}", allowed.join(", ")))
                })
            }
        }
        impl FromStr for $name {
            type Err = ();
            fn from_str(s: &str) -> Result<Self, ()> {
                let s = s.trim();
                $(if s.eq_ignore_ascii_case($wire) { return Ok($name::$var); })+
                Err(())
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

closed_enum!(
    /// What a user may do. Admins manage the organisation's accounts and audit
    /// log; radiologists read the organisation's worklist; doctors see the
    /// cases they own or were added to.
    Role, "role", {
        Admin => "admin", "Admin";
        Radiologist => "radiologist", "Radiologist";
        Doctor => "doctor", "Doctor";
    }
);

closed_enum!(
    /// Imaging modality of a case (DICOM spelling; `other` for the rest).
    Modality, "modality", {
        Ct => "CT", "CT";
        Mr => "MR", "MR";
        Cr => "CR", "CR (computed radiography)";
        Dx => "DX", "DX (digital radiography)";
        Us => "US", "Ultrasound";
        Other => "other", "Other";
    }
);

closed_enum!(
    /// Sex as recorded for the study: female, male, other, unknown.
    Sex, "sex", {
        F => "F", "Female";
        M => "M", "Male";
        O => "O", "Other";
        U => "U", "Unknown";
    }
);

closed_enum!(
    /// Reading priority.
    Urgency, "urgency", {
        Routine => "routine", "Routine";
        Priority => "priority", "Priority";
        Urgent => "urgent", "Urgent";
        Stat => "stat", "STAT";
    }
);

closed_enum!(
    /// Whether a case is still being worked on.
    CaseStatus, "status", {
        Open => "open", "Open";
        Closed => "closed", "Closed";
    }
);

impl Urgency {
    /// The worklist's sort key: the higher of the human and the AI urgency.
    pub fn effective_rank(human: Urgency, ai: Option<Urgency>) -> i16 {
        human.rank().max(ai.map_or(0, Urgency::rank))
    }

    /// Sort key: higher is more urgent.
    pub fn rank(self) -> i16 {
        match self {
            Urgency::Routine => 0,
            Urgency::Priority => 1,
            Urgency::Urgent => 2,
            Urgency::Stat => 3,
        }
    }
}

/// Patient age in whole years.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Age(u8);

impl Age {
    pub const MAX: i64 = 130;
    pub fn parse(v: i64) -> Result<Self, FieldError> {
        if (0..=Self::MAX).contains(&v) {
            Ok(Self(v as u8))
        } else {
            Err(FieldError::new(
                "age",
                format!("must be between 0 and {}", Self::MAX),
            ))
        }
    }
    /// Parses form text; empty means unknown.
    pub fn parse_text(raw: &str) -> Result<Option<Self>, FieldError> {
        let s = raw.trim();
        if s.is_empty() {
            return Ok(None);
        }
        let v: i64 = s
            .parse()
            .map_err(|_| FieldError::new("age", "must be a whole number of years"))?;
        Self::parse(v).map(Some)
    }
    pub fn get(self) -> u8 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_normalised_and_checked() {
        assert_eq!(
            Email::parse(" Dr.Who@Example.ORG ").unwrap().as_str(),
            "dr.who@example.org"
        );
        for bad in [
            "", "a", "a@b", "@b.c", "a@@b.c", "a b@c.d", "a@.c", "a@c.", "<x>@y.z", "a@b..c",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn enums_parse_case_insensitively_and_name_the_allowed_values() {
        assert_eq!(Modality::parse("ct").unwrap(), Modality::Ct);
        assert_eq!(Modality::parse("Other").unwrap(), Modality::Other);
        let e = Urgency::parse("asap").unwrap_err();
        assert_eq!(e.field, "urgency");
        assert!(
            e.message.contains("routine, priority, urgent, stat"),
            "{}",
            e.message
        );
        assert!(Sex::parse("X").is_err());
    }

    #[test]
    fn text_fields_are_bounded_and_single_line() {
        assert!(PatientRef::parse("   ").is_err());
        assert!(PatientRef::parse(&"x".repeat(65)).is_err());
        assert!(PatientRef::parse("MRN\u{0}1").is_err());
        assert_eq!(
            PatientRef::parse("  Zoë Ångström ").unwrap().as_str(),
            "Zoë Ångström"
        );
        assert!(ClinicalHistory::parse(&"y".repeat(4001)).is_err());
        assert!(ClinicalHistory::parse("line one\nline two").is_ok());
    }

    #[test]
    fn ages_and_passwords_have_bounds() {
        assert!(Age::parse(-1).is_err());
        assert!(Age::parse(131).is_err());
        assert_eq!(Age::parse_text("").unwrap(), None);
        assert!(Age::parse_text("4o").is_err());
        assert!(NewPassword::parse("short").is_err());
        assert!(NewPassword::parse(&"p".repeat(257)).is_err());
        assert!(NewPassword::parse("correct horse battery").is_ok());
    }

    #[test]
    fn urgency_rank_orders_stat_first() {
        assert!(Urgency::Stat.rank() > Urgency::Urgent.rank());
        assert!(Urgency::Urgent.rank() > Urgency::Routine.rank());
    }
}
