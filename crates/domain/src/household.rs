//! Households: the unit the programme identifies, enrols and counts (600 in year 1398).

use chrono::NaiveDateTime;

use crate::error::{FieldError, ValidationErrors};
use crate::id::{AreaId, HouseholdId};
use crate::text::{ascii_digits, normalise};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Household {
    pub id: HouseholdId,
    pub neighbourhood_id: AreaId,
    /// As written, for display.
    pub address: String,
    pub postal_code: Option<String>,
    pub version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// An address as written (trimmed, 1–500 characters) and its normalised form for search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub written: String,
    pub normalised: String,
}

impl Address {
    pub fn parse(field: &str, input: &str) -> Result<Self, FieldError> {
        let written = input.trim();
        if written.is_empty() {
            return Err(FieldError::new(field, "required", "must not be empty"));
        }
        if written.chars().count() > 500 {
            return Err(FieldError::new(
                field,
                "length",
                "must be at most 500 characters",
            ));
        }
        if written.chars().any(|c| c.is_control() && c != '\n') {
            return Err(FieldError::new(
                field,
                "format",
                "must not contain control characters",
            ));
        }
        Ok(Self {
            written: written.to_owned(),
            normalised: normalise(written),
        })
    }
}

/// An Iranian postal code: ten digits, any digit script.
pub fn parse_postal_code(field: &str, input: &str) -> Result<String, FieldError> {
    match ascii_digits(input) {
        Some(digits) if digits.len() == 10 => Ok(digits),
        _ => Err(FieldError::new(field, "format", "must be 10 digits")),
    }
}

/// A validated new household.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHousehold {
    pub neighbourhood_id: AreaId,
    pub address: Address,
    pub postal_code: Option<String>,
}

impl NewHousehold {
    pub fn parse(
        neighbourhood_id: AreaId,
        address: &str,
        postal_code: Option<&str>,
    ) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let address = errors.check(Address::parse("address", address));
        let postal_code =
            postal_code.and_then(|p| errors.check(parse_postal_code("postal_code", p)));
        match address {
            Some(address) if errors.is_empty() => Ok(Self {
                neighbourhood_id,
                address,
                postal_code,
            }),
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_keep_the_written_form_and_normalise_for_search() {
        let address = Address::parse("address", "  كوي ۱۲، پلاك ۳ ").expect("valid");
        assert_eq!(address.written, "كوي ۱۲، پلاك ۳");
        assert_eq!(address.normalised, "کوی 12، پلاک 3");
        assert!(Address::parse("address", "   ").is_err());
    }

    #[test]
    fn postal_codes_are_ten_digits() {
        assert_eq!(
            parse_postal_code("p", "۹۱۷۷۹-۴۸۹۷۴").as_deref(),
            Ok("9177948974")
        );
        assert!(parse_postal_code("p", "12345").is_err());
    }

    #[test]
    fn a_new_household_reports_all_errors() {
        let errors =
            NewHousehold::parse(AreaId::generate(), "", Some("1")).expect_err("two errors");
        assert_eq!(errors.0.len(), 2);
    }
}
