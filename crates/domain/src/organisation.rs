//! Organisations taking part in the programme, and the people and machines that act for them.

use std::fmt;
use std::str::FromStr;

use chrono::{NaiveDate, NaiveDateTime};

use crate::access::{ClientScope, Role, UnknownName};
use crate::error::{FieldError, ValidationErrors};
use crate::id::{AreaId, OrganisationId, UserId};

/// The kinds of organisation in the article and GLOSSARY.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrganisationKind {
    LabourOffice,
    FacilitationOffice,
    WomensAffairsBureau,
    PartnerAgency,
    CounsellingCentre,
    TrainingProvider,
    Ministry,
}

impl OrganisationKind {
    pub const ALL: [OrganisationKind; 7] = [
        OrganisationKind::LabourOffice,
        OrganisationKind::FacilitationOffice,
        OrganisationKind::WomensAffairsBureau,
        OrganisationKind::PartnerAgency,
        OrganisationKind::CounsellingCentre,
        OrganisationKind::TrainingProvider,
        OrganisationKind::Ministry,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrganisationKind::LabourOffice => "labour_office",
            OrganisationKind::FacilitationOffice => "facilitation_office",
            OrganisationKind::WomensAffairsBureau => "womens_affairs_bureau",
            OrganisationKind::PartnerAgency => "partner_agency",
            OrganisationKind::CounsellingCentre => "counselling_centre",
            OrganisationKind::TrainingProvider => "training_provider",
            OrganisationKind::Ministry => "ministry",
        }
    }
}

impl fmt::Display for OrganisationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OrganisationKind {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OrganisationKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownName {
                kind: "organisation kind",
                value: s.to_owned(),
            })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organisation {
    pub id: OrganisationId,
    pub name: String,
    pub kind: OrganisationKind,
    pub version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A staff account. The password hash never leaves the persistence and auth layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub organisation_id: OrganisationId,
    /// The neighbourhoods (or larger areas) an area-scoped role is limited to.
    pub areas: Vec<AreaId>,
    pub active: bool,
    pub version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A machine account of a partner agency or a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiClient {
    pub id: crate::id::ApiClientId,
    pub client_id: String,
    pub name: String,
    pub organisation_id: OrganisationId,
    pub scopes: Vec<ClientScope>,
    /// Last day of validity: the end of the partner's MoU.
    pub expires_on: NaiveDate,
    pub active: bool,
    pub version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A username: 3–64 characters of lower-case Latin letters, digits, `.`, `_` and `-`; input is
/// trimmed and lower-cased so that logins are case-insensitive.
pub fn parse_username(input: &str) -> Result<String, FieldError> {
    let name = input.trim().to_ascii_lowercase();
    if !(3..=64).contains(&name.len()) {
        return Err(FieldError::new(
            "username",
            "length",
            "must be 3 to 64 characters",
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    {
        return Err(FieldError::new(
            "username",
            "format",
            "may hold only Latin letters, digits, `.`, `_` and `-`",
        ));
    }
    Ok(name)
}

/// A password policy that does not annoy: long enough, not absurdly long (argon2 cost), and not
/// the username.
pub fn check_password(field: &str, password: &str, username: &str) -> Result<(), FieldError> {
    let chars = password.chars().count();
    if chars < 12 {
        return Err(FieldError::new(
            field,
            "too_short",
            "must be at least 12 characters",
        ));
    }
    if password.len() > 1024 {
        return Err(FieldError::new(
            field,
            "too_long",
            "must be at most 1024 bytes",
        ));
    }
    if password.trim().eq_ignore_ascii_case(username.trim()) {
        return Err(FieldError::new(field, "weak", "must not be the username"));
    }
    Ok(())
}

/// A display or organisation name: trimmed, 1–200 characters, no control characters.
pub fn parse_name(field: &str, input: &str) -> Result<String, FieldError> {
    crate::area::AreaName::parse(field, input).map(|n| n.as_str().to_owned())
}

/// Parses space- or comma-separated client scopes, reporting unknown ones.
pub fn parse_scopes(field: &str, input: &[String]) -> Result<Vec<ClientScope>, ValidationErrors> {
    let mut errors = ValidationErrors::default();
    let mut scopes = Vec::new();
    for raw in input {
        match raw.parse::<ClientScope>() {
            Ok(scope) if !scopes.contains(&scope) => scopes.push(scope),
            Ok(_) => {}
            Err(e) => errors.push(FieldError::new(field, "unknown", e.to_string())),
        }
    }
    scopes.sort();
    errors.into_result().map(|()| scopes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_lower_cased_and_checked() {
        assert_eq!(
            parse_username(" Fatemeh.R ").ok().as_deref(),
            Some("fatemeh.r")
        );
        assert!(parse_username("ab").is_err());
        assert!(parse_username("فاطمه").is_err());
        assert!(parse_username("a b c").is_err());
    }

    #[test]
    fn passwords_need_length_and_must_not_be_the_username() {
        assert!(check_password("password", "short", "x").is_err());
        assert!(check_password("password", "correct horse battery", "x").is_ok());
        assert_eq!(
            check_password("password", "administrator", "Administrator").map_err(|e| e.code),
            Err("weak")
        );
    }

    #[test]
    fn scopes_parse_and_deduplicate() {
        let scopes = parse_scopes(
            "scopes",
            &[
                "registry:read".into(),
                "imports:write".into(),
                "registry:read".into(),
            ],
        );
        assert_eq!(
            scopes,
            Ok(vec![ClientScope::RegistryRead, ClientScope::ImportsWrite])
        );
        assert!(parse_scopes("scopes", &["root".into()]).is_err());
    }

    #[test]
    fn kinds_round_trip() {
        for kind in OrganisationKind::ALL {
            assert_eq!(kind.as_str().parse::<OrganisationKind>(), Ok(kind));
        }
    }
}
