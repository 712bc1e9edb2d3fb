//! Partner agencies' MoU data policies: what a partner may read and submit, and until when; the
//! shape of shared records under a policy; webhook signatures; and age bands of research tables.

use std::collections::BTreeSet;

use chrono::{Datelike, NaiveDate};
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

use crate::{FieldError, ValidationErrors};

names!(
    /// A kind of record partners can be given, by its feed name.
    Resource, "resource", {
        Persons => "persons",
        Households => "households",
        Enrolments => "enrolments",
        Assessments => "assessments",
    }
);

impl Resource {
    /// The entity name of its changes and webhook events (`person.updated`).
    pub fn entity(self) -> &'static str {
        match self {
            Resource::Persons => "person",
            Resource::Households => "household",
            Resource::Enrolments => "enrolment",
            Resource::Assessments => "assessment",
        }
    }

    pub fn from_entity(entity: &str) -> Option<Resource> {
        Resource::ALL.iter().copied().find(|r| r.entity() == entity)
    }
}

names!(
    /// A field a policy can withhold; a withheld birth date is given as the birth year.
    Withheld, "withheld field", {
        NationalId => "national_id",
        Mobile => "mobile",
        Names => "names",
        Address => "address",
        BirthDate => "birth_date",
    }
);

impl Withheld {
    /// The record fields it removes.
    fn fields(self) -> &'static [&'static str] {
        match self {
            Withheld::NationalId => &["national_id"],
            Withheld::Mobile => &["mobile"],
            Withheld::Names => &["first_name", "last_name"],
            Withheld::Address => &["address", "postal_code"],
            Withheld::BirthDate => &["birth_date"],
        }
    }
}

/// An organisation's MoU data policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub purpose: String,
    pub starts_on: NaiveDate,
    pub ends_on: NaiveDate,
    pub resources: BTreeSet<Resource>,
    pub withheld: BTreeSet<Withheld>,
    pub writes: BTreeSet<Resource>,
}

impl Policy {
    /// Checks a policy as submitted; names are parsed by the caller.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::default();
        if self.purpose.trim().is_empty() {
            errors.push(FieldError::new(
                "purpose",
                "required",
                "say what the data is for",
            ));
        }
        if self.ends_on < self.starts_on {
            errors.push(FieldError::new(
                "ends_on",
                "before_start",
                "the MoU cannot end before it starts",
            ));
        }
        // Writing is limited to what the study collects in the field.
        for resource in &self.writes {
            if !matches!(resource, Resource::Households | Resource::Assessments) {
                errors.push(FieldError::new(
                    "writes",
                    "not_writable",
                    format!("partners may submit households and assessments, not {resource}"),
                ));
            }
        }
        errors.into_result()
    }

    /// Whether the MoU is in force on `day` (both ends included).
    pub fn in_force_on(&self, day: NaiveDate) -> bool {
        self.starts_on <= day && day <= self.ends_on
    }

    pub fn may_read(&self, resource: Resource) -> bool {
        self.resources.contains(&resource)
    }

    pub fn may_write(&self, resource: Resource) -> bool {
        self.writes.contains(&resource)
    }

    /// A record as this partner may see it: withheld fields removed; a withheld birth date
    /// becomes its year.
    pub fn shape(&self, mut record: Map<String, Value>) -> Map<String, Value> {
        for withheld in &self.withheld {
            if *withheld == Withheld::BirthDate {
                let year = record
                    .get("birth_date")
                    .and_then(Value::as_str)
                    .and_then(|d| d.parse::<NaiveDate>().ok())
                    .map(|d| d.year());
                if let Some(year) = year {
                    record.insert("birth_year".to_owned(), Value::from(year));
                }
            }
            for field in withheld.fields() {
                record.remove(*field);
            }
        }
        record
    }
}

/// Parses a space- or comma-separated list of names (`"persons households"`).
pub fn parse_list<T: std::str::FromStr + Ord>(
    field: &str,
    text: &[String],
) -> Result<BTreeSet<T>, FieldError> {
    text.iter()
        .map(|name| {
            name.parse::<T>().map_err(|_| {
                FieldError::new(
                    field.to_owned(),
                    "unknown_name",
                    format!("`{name}` is not one of the names this field takes"),
                )
            })
        })
        .collect()
}

/// Joins names for storage, space-separated.
pub fn join<T: std::fmt::Display>(names: &BTreeSet<T>) -> String {
    names
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The signature of a webhook body: hex HMAC-SHA256 of `"{timestamp}.{body}"` with the endpoint's
/// secret, sent as `Tavana-Signature: t={timestamp},v1={signature}`. Binding the timestamp lets a
/// receiver refuse old replays.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        unreachable!("HMAC accepts keys of every length")
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

names!(
    /// Age bands of the research tables.
    AgeBand, "age band", {
        Under18 => "under_18",
        From18To29 => "18_29",
        From30To44 => "30_44",
        From45To59 => "45_59",
        From60 => "60_plus",
    }
);

impl AgeBand {
    pub fn of(age: i32) -> AgeBand {
        match age {
            ..18 => AgeBand::Under18,
            18..=29 => AgeBand::From18To29,
            30..=44 => AgeBand::From30To44,
            45..=59 => AgeBand::From45To59,
            _ => AgeBand::From60,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn day(text: &str) -> NaiveDate {
        text.parse().expect("a date")
    }

    fn policy() -> Policy {
        Policy {
            purpose: "the programme's study".to_owned(),
            starts_on: day("2026-03-21"),
            ends_on: day("2027-03-20"),
            resources: [Resource::Persons].into(),
            withheld: [Withheld::NationalId, Withheld::BirthDate, Withheld::Address].into(),
            writes: [Resource::Assessments].into(),
        }
    }

    #[test]
    fn a_policy_is_in_force_from_its_first_to_its_last_day() {
        let p = policy();
        assert!(!p.in_force_on(day("2026-03-20")));
        assert!(p.in_force_on(day("2026-03-21")));
        assert!(p.in_force_on(day("2027-03-20")));
        assert!(!p.in_force_on(day("2027-03-21")));
    }

    #[test]
    fn withheld_fields_are_removed_and_the_birth_date_becomes_a_year() {
        let record = json!({"id": "p1", "national_id": "0012345679", "birth_date": "1985-06-01",
            "first_name": "زهرا", "address": "x", "postal_code": "9"});
        let Value::Object(record) = record else {
            unreachable!()
        };
        let shaped = policy().shape(record);
        assert_eq!(
            Value::Object(shaped),
            json!({"id": "p1", "birth_year": 1985, "first_name": "زهرا"})
        );
    }

    #[test]
    fn a_policy_is_checked() {
        let mut p = policy();
        p.purpose = " ".to_owned();
        p.ends_on = day("2026-01-01");
        p.writes = [Resource::Persons].into();
        let codes: Vec<_> = p
            .validate()
            .expect_err("invalid")
            .0
            .iter()
            .map(|e| e.code)
            .collect();
        assert_eq!(codes, ["required", "before_start", "not_writable"]);
        assert!(policy().validate().is_ok());
    }

    #[test]
    fn signatures_match_a_known_hmac() {
        // echo -n '1700000000.{"a":1}' | openssl dgst -sha256 -hmac secret
        assert_eq!(
            sign("secret", 1_700_000_000, br#"{"a":1}"#),
            "49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
        );
        assert_ne!(
            sign("secret", 1_700_000_001, br#"{"a":1}"#),
            sign("secret", 1_700_000_000, br#"{"a":1}"#)
        );
    }

    #[test]
    fn ages_fall_in_bands() {
        assert_eq!(AgeBand::of(17), AgeBand::Under18);
        assert_eq!(AgeBand::of(18), AgeBand::From18To29);
        assert_eq!(AgeBand::of(44), AgeBand::From30To44);
        assert_eq!(AgeBand::of(45), AgeBand::From45To59);
        assert_eq!(AgeBand::of(60), AgeBand::From60);
    }
}
