//! Identifiers: UUID v7, generated in Rust and stored as text, so they sort by creation time on
//! both databases and can serve as pagination keys.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// Declares a typed identifier, so an area id can never be passed where a person id is expected.
macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, time-ordered id.
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(value: Uuid) -> Self {
                Self(value)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl fmt::Display for $name {
            // Lower-case hyphenated form: the one stored in the database and used as a sort key.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }
    };
}

id_type!(
    /// Identifies a row of `areas`.
    AreaId
);
id_type!(
    /// Identifies a row of `organisations`.
    OrganisationId
);
id_type!(
    /// Identifies a row of `users`.
    UserId
);
id_type!(
    /// Identifies a row of `api_clients` (not its public `client_id`).
    ApiClientId
);
id_type!(
    /// Identifies a row of `households`.
    HouseholdId
);
id_type!(
    /// Identifies a row of `persons`.
    PersonId
);
id_type!(
    /// Identifies a row of `consents`.
    ConsentId
);
id_type!(
    /// Identifies a row of `programmes`.
    ProgrammeId
);
id_type!(
    /// Identifies a row of `enrolments`.
    EnrolmentId
);
id_type!(
    /// Identifies a row of `assessments`.
    AssessmentId
);
id_type!(
    /// Identifies a row of `employment_outcomes`.
    OutcomeId
);

id_type!(
    /// Identifies a row of `courses`.
    CourseId
);
id_type!(
    /// Identifies a row of `cohorts`.
    CohortId
);
id_type!(
    /// Identifies a row of `cohort_sessions`.
    SessionId
);
id_type!(
    /// Identifies a row of `registrations`.
    RegistrationId
);
id_type!(
    /// Identifies a row of `permit_applications`.
    PermitApplicationId
);
id_type!(
    /// Identifies a row of `permits` (not its public number).
    PermitId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text() {
        let id = AreaId::generate();
        let parsed: AreaId = id.to_string().parse().expect("an id we printed parses");
        assert_eq!(parsed, id);
    }

    #[test]
    fn later_ids_sort_after_earlier_ones_as_text() {
        let first = AreaId::generate().to_string();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = AreaId::generate().to_string();
        assert!(first < second, "{first} should sort before {second}");
    }
}
