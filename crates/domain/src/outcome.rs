//! Employment outcomes: the programme's goal is work, and work is counted only with evidence.
//! Each outcome is followed up at 3, 6 and 12 months.

use chrono::{Months, NaiveDate, NaiveDateTime};

use crate::id::{OutcomeId, PersonId};

names!(
    /// The kind of work.
    OutcomeKind, "outcome kind", {
        HomeBusiness => "home_business",
        WageJob => "wage_job",
        SelfEmployed => "self_employed",
        Cooperative => "cooperative",
    }
);

names!(
    /// What shows the work is real.
    Evidence, "evidence", {
        SocialInsurance => "social_insurance",
        PermitAndSales => "permit_and_sales",
        EmployerLetter => "employer_letter",
    }
);

/// Months after the start at which an outcome is followed up.
pub const FOLLOW_UP_MONTHS: [u32; 3] = [3, 6, 12];

/// The day a follow-up is due.
pub fn follow_up_due(started_on: NaiveDate, months: u32) -> Option<NaiveDate> {
    started_on.checked_add_months(Months::new(months))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowUp {
    pub months: u32,
    pub due_on: NaiveDate,
    pub done_on: Option<NaiveDate>,
    pub still_employed: Option<bool>,
    pub notes: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub id: OutcomeId,
    pub person_id: PersonId,
    pub kind: OutcomeKind,
    pub started_on: NaiveDate,
    pub evidence: Evidence,
    /// The insurance number, permit number or letter reference.
    pub evidence_reference: Option<String>,
    pub recorded_by: Option<String>,
    pub verified_by: Option<String>,
    pub verified_on: Option<NaiveDate>,
    pub follow_ups: Vec<FollowUp>,
    pub version: i64,
    pub created_at: NaiveDateTime,
}

impl Outcome {
    /// Counted as employment only once verified (the progress report's "employed with verified
    /// evidence").
    pub fn is_verified(&self) -> bool {
        self.verified_on.is_some()
    }
}

/// Who may verify an outcome: not the person who recorded it.
pub fn can_verify(recorded_by: Option<&str>, verifier: &str) -> bool {
    recorded_by != Some(verifier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follow_ups_fall_due_at_3_6_and_12_months() {
        let start = NaiveDate::from_ymd_opt(2019, 8, 31).expect("date");
        let due: Vec<String> = FOLLOW_UP_MONTHS
            .iter()
            .filter_map(|m| follow_up_due(start, *m))
            .map(|d| d.to_string())
            .collect();
        // The end of a shorter month is the due day.
        assert_eq!(due, ["2019-11-30", "2020-02-29", "2020-08-31"]);
    }

    #[test]
    fn the_recorder_does_not_verify_their_own_outcome() {
        assert!(!can_verify(Some("u1"), "u1"));
        assert!(can_verify(Some("u1"), "u2"));
        assert!(can_verify(None, "u2"));
    }
}
