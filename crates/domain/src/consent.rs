//! Consent: what a person agreed to, recorded before enrolment; partner reads respect it.

use chrono::{NaiveDate, NaiveDateTime};

use crate::id::{ConsentId, PersonId};

/// What the consent is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsentPurpose {
    /// Taking part in the empowerment programme: required for enrolment.
    Programme,
    /// Taking part in the study partner agencies run (Jahad Daneshgahi).
    Research,
}

impl ConsentPurpose {
    pub const ALL: [ConsentPurpose; 2] = [ConsentPurpose::Programme, ConsentPurpose::Research];

    pub fn as_str(self) -> &'static str {
        match self {
            ConsentPurpose::Programme => "programme",
            ConsentPurpose::Research => "research",
        }
    }
}

impl std::str::FromStr for ConsentPurpose {
    type Err = crate::access::UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ConsentPurpose::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| crate::access::UnknownName {
                kind: "consent purpose",
                value: s.to_owned(),
            })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    pub id: ConsentId,
    pub person_id: PersonId,
    pub purpose: ConsentPurpose,
    /// Whether the person agreed that partner agencies may see their data.
    pub share_with_partners: bool,
    pub given_on: NaiveDate,
    pub recorded_by: Option<String>,
    pub recorded_at: NaiveDateTime,
    pub withdrawn_on: Option<NaiveDate>,
    pub withdrawal_reason: Option<String>,
}

impl Consent {
    /// In force on `day`: given by then and not withdrawn by then.
    pub fn in_force_on(&self, day: NaiveDate) -> bool {
        self.given_on <= day && self.withdrawn_on.is_none_or(|w| w > day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("date")
    }

    #[test]
    fn consent_is_in_force_between_giving_and_withdrawal() {
        let mut consent = Consent {
            id: ConsentId::generate(),
            person_id: PersonId::generate(),
            purpose: ConsentPurpose::Programme,
            share_with_partners: false,
            given_on: ymd(2019, 4, 1),
            recorded_by: None,
            recorded_at: ymd(2019, 4, 1).and_hms_opt(9, 0, 0).expect("time"),
            withdrawn_on: None,
            withdrawal_reason: None,
        };
        assert!(!consent.in_force_on(ymd(2019, 3, 31)));
        assert!(consent.in_force_on(ymd(2019, 4, 1)));
        consent.withdrawn_on = Some(ymd(2019, 6, 1));
        assert!(consent.in_force_on(ymd(2019, 5, 31)));
        assert!(!consent.in_force_on(ymd(2019, 6, 1)));
    }
}
