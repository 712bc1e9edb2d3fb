//! Training (DESIGN.md §5): the course catalogue, cohorts, registration with a waitlist,
//! attendance, and the completion rule that earns a certificate.

use chrono::{NaiveDate, NaiveDateTime};

use crate::error::{FieldError, ValidationErrors};
use crate::id::{AreaId, CohortId, CourseId, OrganisationId, PersonId, UserId};
use crate::organisation::OrganisationKind;

names!(
    /// The article's course categories (GLOSSARY.md).
    CourseCategory, "course category", {
        LifeSkills => "life_skills",
        AddictionPrevention => "addiction_prevention",
        DivorcePrevention => "divorce_prevention",
        AddictionAwareness => "addiction_awareness",
        BusinessEntrepreneurship => "business_entrepreneurship",
        LabourLaw => "labour_law",
        SocialSecurity => "social_security",
        TechnicalVocational => "technical_vocational",
    }
);

impl CourseCategory {
    /// Addiction and divorce courses: who attended them is health-record-grade data. Partners see
    /// them only as aggregates, and reads of individual attendance are audited.
    pub fn is_sensitive(self) -> bool {
        matches!(
            self,
            CourseCategory::AddictionPrevention
                | CourseCategory::DivorcePrevention
                | CourseCategory::AddictionAwareness
        )
    }
}

names!(
    /// A person's place in a cohort.
    RegistrationStatus, "registration status", {
        Registered => "registered",
        Waitlisted => "waitlisted",
        Withdrawn => "withdrawn",
        Completed => "completed",
        NotCompleted => "not_completed",
    }
);

names!(
    /// One person at one session.
    AttendanceMark, "attendance mark", {
        Present => "present",
        Absent => "absent",
        Excused => "excused",
    }
);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Course {
    pub id: CourseId,
    pub category: CourseCategory,
    pub title_fa: String,
    pub title_en: String,
    pub hours: i32,
    /// The kind of organisation that may run it.
    pub provider_kind: OrganisationKind,
    pub sensitive: bool,
    pub version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A course as submitted.
#[derive(Debug, Clone)]
pub struct NewCourse {
    pub category: CourseCategory,
    pub title_fa: String,
    pub title_en: String,
    pub hours: i32,
    pub provider_kind: OrganisationKind,
    /// Asked for by the caller; sensitive categories are sensitive whatever is asked.
    pub sensitive: bool,
}

impl NewCourse {
    pub fn validate(mut self) -> Result<NewCourse, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        self.title_fa = self.title_fa.trim().to_owned();
        self.title_en = self.title_en.trim().to_owned();
        if self.title_fa.is_empty() {
            errors.push(FieldError::new(
                "title_fa",
                "required",
                "give the Persian title",
            ));
        }
        if self.title_en.is_empty() {
            errors.push(FieldError::new(
                "title_en",
                "required",
                "give the English title",
            ));
        }
        if !(1..=2000).contains(&self.hours) {
            errors.push(FieldError::new(
                "hours",
                "out_of_range",
                "hours must be between 1 and 2000",
            ));
        }
        self.sensitive = self.sensitive || self.category.is_sensitive();
        errors.into_result().map(|()| self)
    }
}

names!(
    /// Whether a cohort still takes attendance.
    CohortState, "cohort state", { Open => "open", Closed => "closed" }
);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cohort {
    pub id: CohortId,
    pub course_id: CourseId,
    pub provider_id: OrganisationId,
    pub neighbourhood_id: AreaId,
    pub venue: String,
    pub capacity: i32,
    pub starts_on: NaiveDate,
    pub ends_on: NaiveDate,
    pub trainer_id: Option<UserId>,
    pub state: CohortState,
    pub version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// Checks a cohort's own fields (the course, provider and neighbourhood are checked against the
/// database by the caller).
pub fn validate_cohort(
    venue: &str,
    capacity: i32,
    starts_on: NaiveDate,
    ends_on: NaiveDate,
) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::default();
    if venue.trim().is_empty() {
        errors.push(FieldError::new("venue", "required", "say where it meets"));
    }
    if !(1..=500).contains(&capacity) {
        errors.push(FieldError::new(
            "capacity",
            "out_of_range",
            "capacity must be between 1 and 500",
        ));
    }
    if ends_on < starts_on {
        errors.push(FieldError::new(
            "ends_on",
            "before_start",
            "a cohort cannot end before it starts",
        ));
    }
    errors.into_result()
}

/// A registration's attendance, counted for the completion rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AttendanceCount {
    /// Sessions of the cohort held so far.
    pub sessions: u32,
    pub present: u32,
    pub excused: u32,
}

impl AttendanceCount {
    /// Sessions that count: excused absences are left out. A session with no mark is an absence.
    pub fn counted(self) -> u32 {
        self.sessions.saturating_sub(self.excused)
    }

    /// Attendance as a whole percentage of the sessions that count (rounded down); `None` when no
    /// session counts.
    pub fn percent(self) -> Option<u32> {
        let counted = self.counted();
        (counted > 0).then(|| self.present.min(counted) * 100 / counted)
    }
}

/// The share of counted sessions a person must attend to complete a course.
pub const COMPLETION_PERCENT: u32 = 80;

/// The completion rule: present at ≥ 80% of the sessions, excused absences left out of the count.
/// Exact in integers (no rounding): 4 of 5 completes, 7 of 9 (77.7%) does not. Nobody completes a
/// cohort in which every session was excused or none was held.
pub fn completes(count: AttendanceCount) -> bool {
    let counted = count.counted();
    counted > 0 && count.present.min(counted) * 100 >= COMPLETION_PERCENT * counted
}

/// The certificate number for the `serial`-th certificate of Jalali year `year`: `TC-1403-000045`.
pub fn certificate_number(year: i32, serial: i64) -> String {
    format!("TC-{year}-{serial:06}")
}

/// A person's place in a cohort, with the attendance so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub id: crate::id::RegistrationId,
    pub cohort_id: CohortId,
    pub person_id: PersonId,
    pub status: RegistrationStatus,
    /// Order of arrival; the waitlist is promoted in this order.
    pub position: i64,
    pub certificate_number: Option<String>,
    pub completed_on: Option<NaiveDate>,
    pub registered_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(sessions: u32, present: u32, excused: u32) -> AttendanceCount {
        AttendanceCount {
            sessions,
            present,
            excused,
        }
    }

    #[test]
    fn eighty_percent_completes_and_less_does_not() {
        assert!(completes(count(5, 4, 0)));
        assert!(completes(count(10, 8, 0)));
        assert!(!completes(count(10, 7, 0)));
        // 7 of 9 is 77.8%: no rounding up.
        assert!(!completes(count(9, 7, 0)));
        assert!(completes(count(5, 5, 0)));
        assert!(!completes(count(5, 3, 0)));
    }

    #[test]
    fn excused_absences_are_left_out_of_the_count() {
        // 3 of the 4 sessions that count: 75%.
        assert!(!completes(count(5, 3, 1)));
        // 4 of 4: complete although only 4 of 5 sessions were attended.
        assert!(completes(count(5, 4, 1)));
        // 4 of 5 counted (6 held, 1 excused).
        assert!(completes(count(6, 4, 1)));
        assert_eq!(count(6, 4, 1).percent(), Some(80));
    }

    #[test]
    fn nothing_to_count_is_not_completion() {
        assert!(!completes(count(0, 0, 0)));
        assert!(!completes(count(3, 0, 3)));
        assert_eq!(count(3, 0, 3).percent(), None);
    }

    #[test]
    fn sensitive_categories_are_always_sensitive() {
        let course = NewCourse {
            category: CourseCategory::DivorcePrevention,
            title_fa: "پیشگیری از طلاق".to_owned(),
            title_en: " Divorce prevention ".to_owned(),
            hours: 12,
            provider_kind: OrganisationKind::CounsellingCentre,
            sensitive: false,
        }
        .validate()
        .expect("valid");
        assert!(course.sensitive);
        assert_eq!(course.title_en, "Divorce prevention");
        assert!(!CourseCategory::TechnicalVocational.is_sensitive());
    }

    #[test]
    fn certificate_numbers_are_padded() {
        assert_eq!(certificate_number(1403, 45), "TC-1403-000045");
    }
}
