//! Assessments: baseline and follow-up surveys of a person, from which the unemployment rate and
//! welfare coverage per neighbourhood are computed (statistics the article says do not exist).

use chrono::{NaiveDate, NaiveDateTime};

use crate::error::{FieldError, ValidationErrors};
use crate::id::{AreaId, AssessmentId, PersonId};

names!(
    /// Baseline (the first, once per person) or follow-up.
    AssessmentKind, "assessment kind", { Baseline => "baseline", FollowUp => "follow_up" }
);

names!(
    /// Labour-force status. The unemployment rate is unemployed / (employed + unemployed).
    EmploymentStatus, "employment status", {
        Employed => "employed",
        Unemployed => "unemployed",
        NotInLabourForce => "not_in_labour_force",
    }
);

names!(
    /// Monthly household income, in rials.
    IncomeBand, "income band", {
        None => "none",
        Under20m => "under_20m",
        From20mTo50m => "20m_to_50m",
        From50mTo100m => "50m_to_100m",
        Over100m => "over_100m",
    }
);

names!(
    /// Welfare services a household receives.
    WelfareService, "welfare service", {
        ReliefCommittee => "relief_committee",
        WelfareOrganisation => "welfare_organisation",
        CashSubsidy => "cash_subsidy",
        Charity => "charity",
        HousingSupport => "housing_support",
    }
);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    pub id: AssessmentId,
    pub person_id: PersonId,
    pub neighbourhood_id: Option<AreaId>,
    pub kind: AssessmentKind,
    pub assessed_on: NaiveDate,
    pub employment_status: EmploymentStatus,
    pub income_band: IncomeBand,
    pub social_insurance: bool,
    pub welfare_services: Vec<WelfareService>,
    pub skills: Option<String>,
    pub disability: bool,
    pub dependants: i32,
    pub recorded_by: Option<String>,
    pub created_at: NaiveDateTime,
}

/// A validated new assessment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAssessment {
    pub kind: AssessmentKind,
    pub assessed_on: NaiveDate,
    pub employment_status: EmploymentStatus,
    pub income_band: IncomeBand,
    pub social_insurance: bool,
    pub welfare_services: Vec<WelfareService>,
    pub skills: Option<String>,
    pub disability: bool,
    pub dependants: i32,
}

impl NewAssessment {
    /// Checks what can be checked without the database; `today` bounds the date.
    pub fn check(mut self, today: NaiveDate) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        if self.assessed_on > today {
            errors.push(FieldError::new(
                "assessed_on",
                "in_future",
                "must not be in the future",
            ));
        }
        if !(0..=30).contains(&self.dependants) {
            errors.push(FieldError::new(
                "dependants",
                "range",
                "must be between 0 and 30",
            ));
        }
        self.skills = self
            .skills
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        if self
            .skills
            .as_ref()
            .is_some_and(|s| s.chars().count() > 1000)
        {
            errors.push(FieldError::new(
                "skills",
                "length",
                "must be at most 1000 characters",
            ));
        }
        self.welfare_services.sort();
        self.welfare_services.dedup();
        errors.into_result().map(|()| self)
    }
}

/// A follow-up must come after the baseline; there is one baseline per person.
pub fn check_order(
    kind: AssessmentKind,
    assessed_on: NaiveDate,
    baseline_on: Option<NaiveDate>,
) -> Result<(), FieldError> {
    match (kind, baseline_on) {
        (AssessmentKind::Baseline, Some(_)) => Err(FieldError::new(
            "kind",
            "baseline_exists",
            "the person has a baseline assessment already; record a follow-up",
        )),
        (AssessmentKind::FollowUp, None) => Err(FieldError::new(
            "kind",
            "baseline_missing",
            "record the baseline assessment first",
        )),
        (AssessmentKind::FollowUp, Some(baseline)) if assessed_on < baseline => {
            Err(FieldError::new(
                "assessed_on",
                "before_baseline",
                format!("must not be before the baseline ({baseline})"),
            ))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2019, 5, d).expect("date")
    }

    fn new(dependants: i32, on: NaiveDate) -> NewAssessment {
        NewAssessment {
            kind: AssessmentKind::Baseline,
            assessed_on: on,
            employment_status: EmploymentStatus::Unemployed,
            income_band: IncomeBand::Under20m,
            social_insurance: false,
            welfare_services: vec![
                WelfareService::ReliefCommittee,
                WelfareService::ReliefCommittee,
            ],
            skills: Some("  خیاطی ".into()),
            disability: false,
            dependants,
        }
    }

    #[test]
    fn checks_bounds_and_tidies() {
        let checked = new(3, day(1)).check(day(2)).expect("valid");
        assert_eq!(
            checked.welfare_services,
            vec![WelfareService::ReliefCommittee]
        );
        assert_eq!(checked.skills.as_deref(), Some("خیاطی"));
        let errors = new(31, day(3)).check(day(2)).expect_err("two errors");
        assert_eq!(errors.0.len(), 2);
    }

    #[test]
    fn one_baseline_then_follow_ups_after_it() {
        assert!(check_order(AssessmentKind::Baseline, day(1), None).is_ok());
        assert!(check_order(AssessmentKind::Baseline, day(2), Some(day(1))).is_err());
        assert!(check_order(AssessmentKind::FollowUp, day(2), None).is_err());
        assert!(check_order(AssessmentKind::FollowUp, day(2), Some(day(1))).is_ok());
        assert!(check_order(AssessmentKind::FollowUp, day(1), Some(day(2))).is_err());
    }
}
