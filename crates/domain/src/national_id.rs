//! The Iranian national ID (کد ملی): ten digits, the last a check digit (GLOSSARY.md).

use std::fmt;

use crate::error::FieldError;
use crate::text::ascii_digits;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NationalId(String);

impl NationalId {
    /// Accepts Persian, Arabic-Indic or ASCII digits, with spaces or hyphens between them.
    pub fn parse(field: &str, input: &str) -> Result<Self, FieldError> {
        let digits = ascii_digits(input)
            .ok_or_else(|| FieldError::new(field, "format", "must be digits only"))?;
        if digits.len() != 10 {
            return Err(FieldError::new(field, "length", "must be 10 digits"));
        }
        let values: Vec<u32> = digits.chars().filter_map(|c| c.to_digit(10)).collect();
        if values.iter().all(|d| *d == values[0]) {
            return Err(FieldError::new(field, "invalid", "all digits are the same"));
        }
        let sum: u32 = values[..9]
            .iter()
            .zip((2..=10).rev())
            .map(|(d, weight)| d * weight)
            .sum();
        let remainder = sum % 11;
        let expected = if remainder < 2 {
            remainder
        } else {
            11 - remainder
        };
        if values[9] != expected {
            return Err(FieldError::new(
                field,
                "check_digit",
                "the check digit does not match",
            ));
        }
        Ok(Self(digits))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NationalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(input: &str) -> Result<String, &'static str> {
        NationalId::parse("national_id", input)
            .map(|id| id.to_string())
            .map_err(|e| e.code)
    }

    #[test]
    fn valid_ids_pass() {
        assert_eq!(code("0499370899"), Ok("0499370899".to_owned()));
        // Remainders 0 and 1 are the check digit itself; from 2 on it is 11 − r.
        assert!(code("0100000010").is_ok(), "r = 0");
        assert!(code("0100000101").is_ok(), "r = 1");
        assert!(code("0000000116").is_ok(), "r = 5");
        assert_eq!(code("0100000011"), Err("check_digit"));
    }

    #[test]
    fn persian_digits_normalise_to_a_valid_id() {
        assert_eq!(code("۰۴۹۹۳۷۰۸۹۹"), Ok("0499370899".to_owned()));
        assert_eq!(code("٠٤٩٩٣٧٠٨٩٩"), Ok("0499370899".to_owned()));
        assert_eq!(code("049-937-0899"), Ok("0499370899".to_owned()));
    }

    #[test]
    fn bad_ids_are_refused_with_a_reason() {
        assert_eq!(code("0499370898"), Err("check_digit"));
        assert_eq!(code("049937089"), Err("length"));
        assert_eq!(code("04993708991"), Err("length"));
        assert_eq!(code("2222222222"), Err("invalid"));
        assert_eq!(code("04993a0899"), Err("format"));
    }
}
