//! Areas: province → city → district → neighbourhood (GLOSSARY: محله is the smallest unit).

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDateTime;

use crate::error::{FieldError, ValidationErrors};
use crate::id::AreaId;

/// The level of an area in the hierarchy, from the largest to the smallest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AreaLevel {
    Province,
    City,
    District,
    Neighbourhood,
}

impl AreaLevel {
    pub const ALL: [AreaLevel; 4] = [
        AreaLevel::Province,
        AreaLevel::City,
        AreaLevel::District,
        AreaLevel::Neighbourhood,
    ];

    /// The name stored in the database and used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            AreaLevel::Province => "province",
            AreaLevel::City => "city",
            AreaLevel::District => "district",
            AreaLevel::Neighbourhood => "neighbourhood",
        }
    }

    /// The level an area of this level must sit directly under; `None` for a province.
    pub fn parent_level(self) -> Option<AreaLevel> {
        match self {
            AreaLevel::Province => None,
            AreaLevel::City => Some(AreaLevel::Province),
            AreaLevel::District => Some(AreaLevel::City),
            AreaLevel::Neighbourhood => Some(AreaLevel::District),
        }
    }
}

impl fmt::Display for AreaLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown area level `{0}`")]
pub struct UnknownAreaLevel(pub String);

impl FromStr for AreaLevel {
    type Err = UnknownAreaLevel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AreaLevel::ALL
            .into_iter()
            .find(|level| level.as_str() == s)
            .ok_or_else(|| UnknownAreaLevel(s.to_owned()))
    }
}

/// An area's short code, unique across all areas (e.g. `KHR`, `MSH-D05-N12`): upper-case ASCII
/// letters, digits and hyphens, 1–32 characters. Input is trimmed and upper-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AreaCode(String);

impl AreaCode {
    pub const MAX_LEN: usize = 32;

    pub fn parse(field: &str, input: &str) -> Result<Self, FieldError> {
        let code = input.trim().to_ascii_uppercase();
        if code.is_empty() || code.len() > Self::MAX_LEN {
            return Err(FieldError::new(
                field,
                "length",
                format!("must be 1 to {} characters", Self::MAX_LEN),
            ));
        }
        if !code
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(FieldError::new(
                field,
                "format",
                "may hold only Latin letters, digits and hyphens",
            ));
        }
        Ok(Self(code))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A display name: trimmed, not empty, at most 200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AreaName(String);

impl AreaName {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(field: &str, input: &str) -> Result<Self, FieldError> {
        let name = input.trim();
        if name.is_empty() {
            return Err(FieldError::new(field, "required", "must not be empty"));
        }
        if name.chars().count() > Self::MAX_CHARS {
            return Err(FieldError::new(
                field,
                "length",
                format!("must be at most {} characters", Self::MAX_CHARS),
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(FieldError::new(
                field,
                "format",
                "must not contain control characters",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An area as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Area {
    pub id: AreaId,
    pub parent_id: Option<AreaId>,
    pub level: AreaLevel,
    pub code: String,
    pub name_fa: String,
    pub name_en: String,
    pub version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A validated request to create an area. The parent's level is checked against the database by
/// [`check_parent`] inside the creating transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewArea {
    pub level: AreaLevel,
    pub parent_id: Option<AreaId>,
    pub code: AreaCode,
    pub name_fa: AreaName,
    pub name_en: AreaName,
}

impl NewArea {
    /// Parses raw input, reporting every broken rule at once.
    pub fn parse(
        level: AreaLevel,
        parent_id: Option<AreaId>,
        code: &str,
        name_fa: &str,
        name_en: &str,
    ) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let code = errors.check(AreaCode::parse("code", code));
        let name_fa = errors.check(AreaName::parse("name_fa", name_fa));
        let name_en = errors.check(AreaName::parse("name_en", name_en));
        match (level.parent_level(), parent_id) {
            (None, Some(_)) => errors.push(FieldError::new(
                "parent_id",
                "not_allowed",
                "a province has no parent area",
            )),
            (Some(expected), None) => errors.push(FieldError::new(
                "parent_id",
                "required",
                format!("a {level} must sit under a {expected}"),
            )),
            _ => {}
        }
        match (code, name_fa, name_en) {
            (Some(code), Some(name_fa), Some(name_en)) if errors.is_empty() => Ok(Self {
                level,
                parent_id,
                code,
                name_fa,
                name_en,
            }),
            _ => Err(errors),
        }
    }
}

/// Checks that the parent found in the database has the level a child of `level` needs.
pub fn check_parent(level: AreaLevel, parent_level: Option<AreaLevel>) -> Result<(), FieldError> {
    match (level.parent_level(), parent_level) {
        (Some(expected), Some(found)) if expected == found => Ok(()),
        (Some(expected), Some(found)) => Err(FieldError::new(
            "parent_id",
            "wrong_level",
            format!("a {level} must sit under a {expected}, not under a {found}"),
        )),
        (Some(_), None) => Err(FieldError::new(
            "parent_id",
            "not_found",
            "no such parent area",
        )),
        (None, _) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_round_trip_and_reject_unknown_names() {
        for level in AreaLevel::ALL {
            assert_eq!(level.as_str().parse::<AreaLevel>(), Ok(level));
        }
        assert!("village".parse::<AreaLevel>().is_err());
    }

    #[test]
    fn code_is_trimmed_and_upper_cased() {
        let code = AreaCode::parse("code", "  msh-d05 ").expect("valid code");
        assert_eq!(code.as_str(), "MSH-D05");
    }

    #[test]
    fn code_rejects_empty_long_and_non_latin() {
        assert_eq!(
            AreaCode::parse("code", " ").map_err(|e| e.code),
            Err("length")
        );
        assert_eq!(
            AreaCode::parse("code", &"A".repeat(33)).map_err(|e| e.code),
            Err("length")
        );
        assert_eq!(
            AreaCode::parse("code", "مشهد").map_err(|e| e.code),
            Err("format")
        );
        assert_eq!(
            AreaCode::parse("code", "A B").map_err(|e| e.code),
            Err("format")
        );
    }

    #[test]
    fn names_accept_persian_and_reject_blank_or_control_characters() {
        assert!(AreaName::parse("name_fa", "  سیدی ").is_ok_and(|n| n.as_str() == "سیدی"));
        assert!(AreaName::parse("name_fa", "   ").is_err());
        assert!(AreaName::parse("name_fa", "a\u{0}b").is_err());
        assert!(AreaName::parse("name_fa", &"ن".repeat(201)).is_err());
    }

    #[test]
    fn new_area_reports_every_broken_rule() {
        let errors = NewArea::parse(AreaLevel::City, None, "", "", "Mashhad")
            .expect_err("three rules are broken");
        let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["code", "name_fa", "parent_id"]);
    }

    #[test]
    fn a_province_has_no_parent_and_others_need_one() {
        let parent = Some(AreaId::generate());
        assert!(NewArea::parse(AreaLevel::Province, parent, "KHR", "خراسان", "Khorasan").is_err());
        assert!(NewArea::parse(AreaLevel::Province, None, "KHR", "خراسان", "Khorasan").is_ok());
        assert!(NewArea::parse(AreaLevel::District, None, "D1", "منطقه ۱", "District 1").is_err());
    }

    #[test]
    fn parent_must_be_exactly_one_level_up() {
        use AreaLevel::*;
        assert!(check_parent(Neighbourhood, Some(District)).is_ok());
        assert_eq!(
            check_parent(Neighbourhood, Some(City)).map_err(|e| e.code),
            Err("wrong_level")
        );
        assert_eq!(
            check_parent(City, None).map_err(|e| e.code),
            Err("not_found")
        );
    }
}
