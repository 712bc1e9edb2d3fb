//! Iranian mobile numbers, normalised to `09` followed by nine digits.

use std::fmt;

use crate::error::FieldError;
use crate::text::ascii_digits;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mobile(String);

impl Mobile {
    /// Accepts `09…`, `+989…`, `00989…` and `989…`, in any digit script, with spaces or hyphens.
    pub fn parse(field: &str, input: &str) -> Result<Self, FieldError> {
        let trimmed = input.trim();
        let (plus, rest) = match trimmed.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        let digits = ascii_digits(rest).ok_or_else(|| {
            FieldError::new(
                field,
                "format",
                "must be a mobile number such as 09121234567",
            )
        })?;
        let national = if let Some(rest) = digits.strip_prefix("0098") {
            format!("0{rest}")
        } else if let Some(rest) = digits.strip_prefix("98").filter(|r| plus || r.len() == 10) {
            format!("0{rest}")
        } else {
            digits
        };
        if national.len() != 11 || !national.starts_with("09") {
            return Err(FieldError::new(
                field,
                "format",
                "must be a mobile number such as 09121234567",
            ));
        }
        Ok(Self(national))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Mobile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &str) -> Option<String> {
        Mobile::parse("mobile", input).ok().map(|m| m.to_string())
    }

    #[test]
    fn every_written_form_becomes_09() {
        for input in [
            "09151234567",
            "+989151234567",
            "00989151234567",
            "989151234567",
            "۰۹۱۵ ۱۲۳ ۴۵۶۷",
            "0915-123-4567",
        ] {
            assert_eq!(parse(input).as_deref(), Some("09151234567"), "{input}");
        }
    }

    #[test]
    fn landlines_and_short_numbers_are_refused() {
        for input in ["05138001234", "0915123456", "+98511234567", "phone"] {
            assert_eq!(parse(input), None, "{input}");
        }
    }
}
