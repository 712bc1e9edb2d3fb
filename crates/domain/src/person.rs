//! Persons and their membership of households.

use chrono::{Datelike, NaiveDate, NaiveDateTime};

use crate::calendar::parse_date;
use crate::error::{FieldError, ValidationErrors};
use crate::id::{AreaId, HouseholdId, PersonId};
use crate::mobile::Mobile;
use crate::national_id::NationalId;
use crate::text::normalise;

names!(
    /// Sex as recorded on the national ID card.
    Sex, "sex", { Female => "female", Male => "male" }
);

names!(
    /// Highest level of education completed.
    Education, "education", {
        None => "none",
        Literacy => "literacy",
        Primary => "primary",
        LowerSecondary => "lower_secondary",
        Diploma => "diploma",
        Associate => "associate",
        Bachelor => "bachelor",
        Master => "master",
        Doctorate => "doctorate",
    }
);

names!(
    /// A person's place in a household.
    HouseholdRole, "household role", { Head => "head", Spouse => "spouse", Child => "child", Other => "other" }
);

/// A woman head of household (بانوی سرپرست خانوار) is derived, never a flag of its own.
pub fn is_woman_head(sex: Sex, role: Option<HouseholdRole>) -> bool {
    sex == Sex::Female && role == Some(HouseholdRole::Head)
}

/// A name as written (trimmed, 1–100 characters) and its normalised form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonName {
    pub written: String,
    pub normalised: String,
}

impl PersonName {
    pub fn parse(field: &str, input: &str) -> Result<Self, FieldError> {
        let written = input.trim();
        if written.is_empty() {
            return Err(FieldError::new(field, "required", "must not be empty"));
        }
        if written.chars().count() > 100 {
            return Err(FieldError::new(
                field,
                "length",
                "must be at most 100 characters",
            ));
        }
        if written
            .chars()
            .any(|c| c.is_control() || c.is_ascii_digit())
        {
            return Err(FieldError::new(
                field,
                "format",
                "must not contain digits or control characters",
            ));
        }
        Ok(Self {
            written: written.to_owned(),
            normalised: normalise(written),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub id: PersonId,
    pub national_id: String,
    pub first_name: String,
    pub last_name: String,
    pub birth_date: NaiveDate,
    pub sex: Sex,
    pub mobile: Option<String>,
    pub education: Option<Education>,
    /// Current household and role; `None` after leaving without joining another.
    pub household_id: Option<HouseholdId>,
    pub household_role: Option<HouseholdRole>,
    pub neighbourhood_id: Option<AreaId>,
    /// Set when a reviewer merged this record into another person's.
    pub merged_into: Option<PersonId>,
    pub version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl Person {
    pub fn is_woman_head(&self) -> bool {
        is_woman_head(self.sex, self.household_role)
    }
}

/// A validated new person, joining a household.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPerson {
    pub national_id: NationalId,
    pub first_name: PersonName,
    pub last_name: PersonName,
    pub birth_date: NaiveDate,
    pub sex: Sex,
    pub mobile: Option<Mobile>,
    pub education: Option<Education>,
    pub household_id: HouseholdId,
    pub household_role: HouseholdRole,
    pub member_since: NaiveDate,
}

/// Raw fields of a new person, as received.
#[derive(Debug, Clone, Default)]
pub struct PersonInput<'a> {
    pub national_id: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub birth_date: &'a str,
    pub mobile: Option<&'a str>,
    pub member_since: Option<&'a str>,
}

impl NewPerson {
    /// Parses every field, reporting all broken rules at once. `today` bounds the birth date.
    #[allow(clippy::too_many_arguments)]
    pub fn parse(
        input: PersonInput<'_>,
        sex: Sex,
        education: Option<Education>,
        household_id: HouseholdId,
        household_role: HouseholdRole,
        today: NaiveDate,
    ) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let national_id = errors.check(NationalId::parse("national_id", input.national_id));
        let first_name = errors.check(PersonName::parse("first_name", input.first_name));
        let last_name = errors.check(PersonName::parse("last_name", input.last_name));
        let birth_date = errors.check(parse_birth_date("birth_date", input.birth_date, today));
        let mobile = input
            .mobile
            .and_then(|m| errors.check(Mobile::parse("mobile", m)));
        let member_since = match input.member_since {
            Some(text) => errors.check(parse_date("member_since", text)),
            None => Some(today),
        };
        match (national_id, first_name, last_name, birth_date, member_since) {
            (
                Some(national_id),
                Some(first_name),
                Some(last_name),
                Some(birth_date),
                Some(member_since),
            ) if errors.is_empty() => Ok(Self {
                national_id,
                first_name,
                last_name,
                birth_date,
                sex,
                mobile,
                education,
                household_id,
                household_role,
                member_since,
            }),
            _ => Err(errors),
        }
    }
}

/// A birth date, Gregorian or Jalali, not in the future and not more than 120 years ago.
pub fn parse_birth_date(
    field: &str,
    input: &str,
    today: NaiveDate,
) -> Result<NaiveDate, FieldError> {
    let date = parse_date(field, input)?;
    if date > today {
        return Err(FieldError::new(
            field,
            "in_future",
            "must not be in the future",
        ));
    }
    if today.year() - date.year() > 120 {
        return Err(FieldError::new(
            field,
            "too_old",
            "must be within the last 120 years",
        ));
    }
    Ok(date)
}

/// Age in whole years on `on`.
pub fn age_on(birth_date: NaiveDate, on: NaiveDate) -> i32 {
    let mut age = on.year() - birth_date.year();
    if (on.month(), on.day()) < (birth_date.month(), birth_date.day()) {
        age -= 1;
    }
    age
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 25).expect("date")
    }

    fn input<'a>(national_id: &'a str, birth_date: &'a str) -> PersonInput<'a> {
        PersonInput {
            national_id,
            first_name: "فاطمه",
            last_name: "رضايي",
            birth_date,
            mobile: Some("+989151234567"),
            member_since: None,
        }
    }

    #[test]
    fn a_person_parses_with_jalali_birth_date_and_normalised_names() {
        let person = NewPerson::parse(
            input("۰۴۹۹۳۷۰۸۹۹", "1360-05-12"),
            Sex::Female,
            Some(Education::Diploma),
            HouseholdId::generate(),
            HouseholdRole::Head,
            today(),
        )
        .expect("valid");
        assert_eq!(person.national_id.as_str(), "0499370899");
        assert_eq!(
            person.birth_date,
            NaiveDate::from_ymd_opt(1981, 8, 3).expect("date")
        );
        assert_eq!(person.last_name.written, "رضايي");
        assert_eq!(person.last_name.normalised, "رضایی");
        assert_eq!(
            person.mobile.map(|m| m.to_string()).as_deref(),
            Some("09151234567")
        );
        assert_eq!(person.member_since, today());
    }

    #[test]
    fn every_broken_rule_is_reported() {
        let errors = NewPerson::parse(
            PersonInput {
                national_id: "1234567890",
                first_name: " ",
                last_name: "x1",
                birth_date: "2030-01-01",
                mobile: Some("123"),
                member_since: Some("soon"),
            },
            Sex::Male,
            None,
            HouseholdId::generate(),
            HouseholdRole::Child,
            today(),
        )
        .expect_err("invalid");
        let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "national_id",
                "first_name",
                "last_name",
                "birth_date",
                "mobile",
                "member_since"
            ]
        );
    }

    #[test]
    fn woman_head_is_derived() {
        assert!(is_woman_head(Sex::Female, Some(HouseholdRole::Head)));
        assert!(!is_woman_head(Sex::Female, Some(HouseholdRole::Spouse)));
        assert!(!is_woman_head(Sex::Male, Some(HouseholdRole::Head)));
        assert!(!is_woman_head(Sex::Female, None));
    }

    #[test]
    fn age_counts_whole_years() {
        let birth = NaiveDate::from_ymd_opt(2008, 11, 26).expect("date");
        assert_eq!(age_on(birth, today()), 17);
        assert_eq!(
            age_on(birth, NaiveDate::from_ymd_opt(2026, 11, 26).expect("date")),
            18
        );
    }

    #[test]
    fn names_round_trip() {
        for role in HouseholdRole::ALL {
            assert_eq!(role.as_str().parse::<HouseholdRole>(), Ok(*role));
        }
        assert!("grandmother".parse::<HouseholdRole>().is_err());
    }
}
