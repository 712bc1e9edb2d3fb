//! Home-based-business permits (DESIGN.md §5): who may apply, the review workflow, permit numbers,
//! validity and the states a permit is in on any day.

use chrono::{Months, NaiveDate};

names!(
    /// Where an application is in its review.
    ApplicationState, "application state", {
        Submitted => "submitted",
        UnderReview => "under_review",
        Inspected => "inspected",
        Approved => "approved",
        Issued => "issued",
        Rejected => "rejected",
    }
);

impl ApplicationState {
    /// The states an application may move to from this one.
    pub fn next(self) -> &'static [ApplicationState] {
        use ApplicationState::*;
        match self {
            Submitted => &[UnderReview, Rejected],
            UnderReview => &[Inspected, Rejected],
            Inspected => &[Approved, Rejected],
            Approved => &[Issued, Rejected],
            Issued | Rejected => &[],
        }
    }
}

/// Why a step of the workflow was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    #[error("an application cannot go from {from} to {to}")]
    NotAllowed {
        from: ApplicationState,
        to: ApplicationState,
        allowed: Vec<ApplicationState>,
    },
    #[error("{0}")]
    Missing(&'static str),
}

/// Checks one step: allowed from the current state, with what the step needs (the home visit's
/// notes for `inspected`, a reason for `rejected`).
pub fn check_step(
    from: ApplicationState,
    to: ApplicationState,
    notes: Option<&str>,
) -> Result<(), StepError> {
    if !from.next().contains(&to) {
        return Err(StepError::NotAllowed {
            from,
            to,
            allowed: from.next().to_vec(),
        });
    }
    let blank = notes.is_none_or(|n| n.trim().is_empty());
    match to {
        ApplicationState::Inspected if blank => Err(StepError::Missing(
            "record the home visit: `notes` are required for inspected",
        )),
        ApplicationState::Rejected if blank => Err(StepError::Missing(
            "give the reason: `notes` are required to reject",
        )),
        _ => Ok(()),
    }
}

names!(
    /// The rules of eligibility, each explained on its own.
    Rule, "eligibility rule", {
        Adult => "adult",
        Enrolled => "enrolled",
        TechnicalTraining => "technical_training",
        NoActivePermit => "no_active_permit",
    }
);

impl Rule {
    /// The request field the rule is about, for field-by-field errors.
    pub fn field(self) -> &'static str {
        match self {
            Rule::Adult => "person_id.birth_date",
            Rule::Enrolled => "person_id.enrolment",
            Rule::TechnicalTraining => "person_id.training",
            Rule::NoActivePermit => "activity",
        }
    }
}

/// One rule's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub rule: Rule,
    pub passed: bool,
    pub explanation: String,
}

/// What eligibility depends on, gathered by the caller.
#[derive(Debug, Clone)]
pub struct Facts {
    pub birth_date: NaiveDate,
    /// The day of the application.
    pub on: NaiveDate,
    /// Whether the person's household is enrolled (enrolled or further, not paused or exited) in
    /// some programme.
    pub enrolled: bool,
    pub completed_technical_course: bool,
    /// The number of a permit for the same activity that is issued or suspended and not expired.
    pub active_permit: Option<String>,
}

pub const ADULT_AGE: u32 = 18;

/// Whole years of age on `on`.
pub fn age_on(birth_date: NaiveDate, on: NaiveDate) -> u32 {
    on.years_since(birth_date).unwrap_or(0)
}

/// Every rule, passed or not, with its explanation. Eligible when all passed.
pub fn eligibility(facts: &Facts) -> Vec<Check> {
    let age = age_on(facts.birth_date, facts.on);
    vec![
        Check {
            rule: Rule::Adult,
            passed: age >= ADULT_AGE,
            explanation: format!(
                "{age} years old on {}; at least {ADULT_AGE} needed",
                facts.on
            ),
        },
        Check {
            rule: Rule::Enrolled,
            passed: facts.enrolled,
            explanation: if facts.enrolled {
                "the household is enrolled in a programme".to_owned()
            } else {
                "the household is not enrolled in any programme (enrolled or further)".to_owned()
            },
        },
        Check {
            rule: Rule::TechnicalTraining,
            passed: facts.completed_technical_course,
            explanation: if facts.completed_technical_course {
                "completed a technical & vocational course".to_owned()
            } else {
                "has not completed a technical & vocational course".to_owned()
            },
        },
        Check {
            rule: Rule::NoActivePermit,
            passed: facts.active_permit.is_none(),
            explanation: match &facts.active_permit {
                Some(number) => format!("permit {number} for this activity is still active"),
                None => "no active permit for this activity".to_owned(),
            },
        },
    ]
}

names!(
    /// A permit's stored state. `expired` is never stored: it follows from the dates.
    PermitState, "permit state", {
        Issued => "issued",
        Suspended => "suspended",
        Revoked => "revoked",
        Expired => "expired",
    }
);

/// The state on `day`: an issued or suspended permit past its validity is expired; revoked stays
/// revoked.
pub fn state_on(stored: PermitState, valid_until: NaiveDate, day: NaiveDate) -> PermitState {
    match stored {
        PermitState::Revoked => PermitState::Revoked,
        _ if day > valid_until => PermitState::Expired,
        other => other,
    }
}

names!(
    /// What a permit officer does to an issued permit.
    PermitAction, "permit action", {
        Suspend => "suspend",
        Reinstate => "reinstate",
        Revoke => "revoke",
        Renew => "renew",
    }
);

/// The actions allowed on a permit in `stored` state, expired or not.
pub fn allowed_actions(stored: PermitState, expired: bool) -> &'static [PermitAction] {
    use PermitAction::*;
    match stored {
        PermitState::Issued if expired => &[Renew, Revoke],
        PermitState::Issued => &[Suspend, Revoke, Renew],
        PermitState::Suspended => &[Reinstate, Revoke],
        PermitState::Revoked | PermitState::Expired => &[],
    }
}

/// The stored state an action leads to.
pub fn after_action(stored: PermitState, action: PermitAction) -> PermitState {
    match action {
        PermitAction::Suspend => PermitState::Suspended,
        PermitAction::Reinstate => PermitState::Issued,
        PermitAction::Revoke => PermitState::Revoked,
        PermitAction::Renew => stored,
    }
}

/// Whether a permit may be used on `day`.
pub fn is_valid(
    stored: PermitState,
    valid_from: NaiveDate,
    valid_until: NaiveDate,
    day: NaiveDate,
) -> bool {
    day >= valid_from && state_on(stored, valid_until, day) == PermitState::Issued
}

/// The last day of a validity period of `years` starting on `from`.
pub fn valid_until(from: NaiveDate, years: u32) -> NaiveDate {
    use chrono::Datelike;
    match from.checked_add_months(Months::new(years * 12)) {
        // 29 February to a common year is clamped to the 28th: that day is the anniversary's eve.
        Some(end) if end.day() != from.day() => end,
        Some(end) => end.pred_opt().unwrap_or(end),
        None => NaiveDate::MAX,
    }
}

/// The period a renewal on `today` creates: it follows the current one without a gap, or starts
/// today if the permit has already expired.
pub fn renewal_period(
    current_until: NaiveDate,
    today: NaiveDate,
    years: u32,
) -> (NaiveDate, NaiveDate) {
    let from = current_until.succ_opt().unwrap_or(current_until).max(today);
    (from, valid_until(from, years))
}

/// The permit number of the `serial`-th permit issued in Jalali year `year`: `KR-1403-000123`.
pub fn permit_number(year: i32, serial: i64) -> String {
    format!("KR-{year}-{serial:06}")
}

/// Whether text has the shape of a permit number (so that the public lookup refuses junk early).
pub fn looks_like_permit_number(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    matches!(parts.as_slice(), [prefix, year, serial]
        if *prefix == "KR"
            && year.len() == 4
            && year.chars().all(|c| c.is_ascii_digit())
            && serial.len() >= 6
            && serial.len() <= 9
            && serial.chars().all(|c| c.is_ascii_digit()))
}

/// Default validity of a permit, in years.
pub const DEFAULT_VALIDITY_YEARS: u32 = 3;

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().expect("date")
    }

    fn facts() -> Facts {
        Facts {
            birth_date: day("2000-05-10"),
            on: day("2024-10-01"),
            enrolled: true,
            completed_technical_course: true,
            active_permit: None,
        }
    }

    #[test]
    fn every_rule_is_explained() {
        let checks = eligibility(&facts());
        assert_eq!(checks.len(), 4);
        assert!(checks.iter().all(|c| c.passed));
        let checks = eligibility(&Facts {
            birth_date: day("2007-10-02"),
            enrolled: false,
            completed_technical_course: false,
            active_permit: Some("KR-1403-000001".to_owned()),
            ..facts()
        });
        assert!(checks.iter().all(|c| !c.passed));
        assert_eq!(
            checks[0].explanation,
            "16 years old on 2024-10-01; at least 18 needed"
        );
        assert!(checks[3].explanation.contains("KR-1403-000001"));
    }

    #[test]
    fn adult_from_the_eighteenth_birthday() {
        assert_eq!(age_on(day("2006-10-01"), day("2024-10-01")), 18);
        assert_eq!(age_on(day("2006-10-02"), day("2024-10-01")), 17);
    }

    #[test]
    fn workflow_steps_follow_the_order() {
        use ApplicationState::*;
        assert!(check_step(Submitted, UnderReview, None).is_ok());
        assert!(check_step(UnderReview, Inspected, Some("visited the home")).is_ok());
        assert_eq!(
            check_step(UnderReview, Inspected, Some("  ")),
            Err(StepError::Missing(
                "record the home visit: `notes` are required for inspected"
            ))
        );
        assert!(check_step(Inspected, Approved, None).is_ok());
        assert!(check_step(Approved, Issued, None).is_ok());
        assert!(matches!(
            check_step(Submitted, Issued, None),
            Err(StepError::NotAllowed { .. })
        ));
        assert!(check_step(Issued, Rejected, Some("late")).is_err());
        assert!(check_step(Inspected, Rejected, None).is_err());
        assert!(check_step(Inspected, Rejected, Some("unsafe kitchen")).is_ok());
    }

    #[test]
    fn expiry_is_computed_from_the_dates() {
        let until = day("2027-09-30");
        assert_eq!(
            state_on(PermitState::Issued, until, day("2027-09-30")),
            PermitState::Issued
        );
        assert_eq!(
            state_on(PermitState::Issued, until, day("2027-10-01")),
            PermitState::Expired
        );
        assert_eq!(
            state_on(PermitState::Suspended, until, day("2027-10-01")),
            PermitState::Expired
        );
        assert_eq!(
            state_on(PermitState::Revoked, until, day("2020-01-01")),
            PermitState::Revoked
        );
        assert!(is_valid(
            PermitState::Issued,
            day("2024-10-01"),
            until,
            day("2025-01-01")
        ));
        assert!(!is_valid(
            PermitState::Suspended,
            day("2024-10-01"),
            until,
            day("2025-01-01")
        ));
    }

    #[test]
    fn actions_depend_on_the_state() {
        use PermitAction::*;
        assert_eq!(
            allowed_actions(PermitState::Issued, false),
            [Suspend, Revoke, Renew]
        );
        assert_eq!(allowed_actions(PermitState::Issued, true), [Renew, Revoke]);
        assert_eq!(
            allowed_actions(PermitState::Suspended, false),
            [Reinstate, Revoke]
        );
        assert!(allowed_actions(PermitState::Revoked, false).is_empty());
        assert_eq!(
            after_action(PermitState::Suspended, Reinstate),
            PermitState::Issued
        );
    }

    #[test]
    fn validity_and_renewal_periods() {
        assert_eq!(valid_until(day("2024-10-01"), 3), day("2027-09-30"));
        assert_eq!(valid_until(day("2024-02-29"), 1), day("2025-02-28"));
        assert_eq!(valid_until(day("2024-02-29"), 4), day("2028-02-28"));
        // Renewed while valid: the new period follows without a gap.
        assert_eq!(
            renewal_period(day("2027-09-30"), day("2027-09-01"), 3),
            (day("2027-10-01"), day("2030-09-30"))
        );
        // Renewed after expiry: from the day of renewal.
        assert_eq!(
            renewal_period(day("2027-09-30"), day("2028-01-15"), 3),
            (day("2028-01-15"), day("2031-01-14"))
        );
    }

    #[test]
    fn numbers_have_one_shape() {
        assert_eq!(permit_number(1403, 123), "KR-1403-000123");
        assert!(looks_like_permit_number("KR-1403-000123"));
        assert!(!looks_like_permit_number("KR-1403-12"));
        assert!(!looks_like_permit_number("XX-1403-000123"));
        assert!(!looks_like_permit_number("' OR 1=1"));
    }
}
