//! Enrolment of a household in a programme, and the states it moves through (DESIGN.md §5):
//! identified → assessed → enrolled → in_training → permitted / financed → employed → graduated,
//! with paused (and resumed) and exited possible from any live state.

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;

use crate::access::UnknownName;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EnrolmentState {
    Identified,
    Assessed,
    Enrolled,
    InTraining,
    Permitted,
    Financed,
    Employed,
    Graduated,
    Paused,
    Exited,
}

use EnrolmentState::*;

impl EnrolmentState {
    pub const ALL: [EnrolmentState; 10] = [
        Identified, Assessed, Enrolled, InTraining, Permitted, Financed, Employed, Graduated,
        Paused, Exited,
    ];

    /// The funnel, in order: the stages the progress report counts.
    pub const FUNNEL: [EnrolmentState; 8] = [
        Identified, Assessed, Enrolled, InTraining, Permitted, Financed, Employed, Graduated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Identified => "identified",
            Assessed => "assessed",
            Enrolled => "enrolled",
            InTraining => "in_training",
            Permitted => "permitted",
            Financed => "financed",
            Employed => "employed",
            Graduated => "graduated",
            Paused => "paused",
            Exited => "exited",
        }
    }

    /// Whether the enrolment has ended for good.
    pub fn is_final(self) -> bool {
        matches!(self, Graduated | Exited)
    }

    /// The states reachable from this one in the forward path (pausing and exiting aside).
    fn forward(self) -> &'static [EnrolmentState] {
        match self {
            Identified => &[Assessed],
            Assessed => &[Enrolled],
            Enrolled => &[InTraining],
            // A home-business permit and a micro-loan come in either order.
            InTraining => &[Permitted, Financed],
            Permitted => &[Financed, Employed],
            Financed => &[Permitted, Employed],
            Employed => &[Graduated],
            Graduated | Paused | Exited => &[],
        }
    }
}

impl fmt::Display for EnrolmentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EnrolmentState {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EnrolmentState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownName {
                kind: "enrolment state",
                value: s.to_owned(),
            })
    }
}

/// The states an enrolment in `current` may move to. `resume_to` is the state held before a pause
/// (only used when `current` is `paused`).
pub fn allowed_transitions(
    current: EnrolmentState,
    resume_to: Option<EnrolmentState>,
) -> Vec<EnrolmentState> {
    match current {
        Paused => resume_to.into_iter().chain([Exited]).collect(),
        state if state.is_final() => Vec::new(),
        state => state
            .forward()
            .iter()
            .copied()
            .chain([Paused, Exited])
            .collect(),
    }
}

/// Why a transition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("an enrolment cannot go from {from} to {to}")]
    NotAllowed {
        from: EnrolmentState,
        to: EnrolmentState,
        allowed: Vec<EnrolmentState>,
    },
    #[error("enrolling needs the household head's consent to the programme in force on {on}")]
    ConsentRequired { on: NaiveDate },
    #[error("a transition cannot be dated before the previous one ({previous})")]
    BeforePrevious { previous: NaiveDate },
}

/// Facts a transition depends on, gathered by the caller.
#[derive(Debug, Clone, Copy)]
pub struct TransitionContext {
    /// The state held before the current pause, if paused.
    pub resume_to: Option<EnrolmentState>,
    /// Whether the head of the household has programme consent in force on the transition's day.
    pub head_consents: bool,
    /// The day of the latest transition.
    pub previous_on: NaiveDate,
}

/// Checks one transition.
pub fn check_transition(
    current: EnrolmentState,
    to: EnrolmentState,
    on: NaiveDate,
    context: TransitionContext,
) -> Result<(), TransitionError> {
    let allowed = allowed_transitions(current, context.resume_to);
    if !allowed.contains(&to) {
        return Err(TransitionError::NotAllowed {
            from: current,
            to,
            allowed,
        });
    }
    if on < context.previous_on {
        return Err(TransitionError::BeforePrevious {
            previous: context.previous_on,
        });
    }
    if to == Enrolled && !context.head_consents {
        return Err(TransitionError::ConsentRequired { on });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2019, 4, d).expect("date")
    }

    fn context(resume_to: Option<EnrolmentState>, head_consents: bool) -> TransitionContext {
        TransitionContext {
            resume_to,
            head_consents,
            previous_on: day(1),
        }
    }

    #[test]
    fn the_forward_path_is_allowed_step_by_step() {
        let path = [
            Identified, Assessed, Enrolled, InTraining, Permitted, Financed, Employed, Graduated,
        ];
        for pair in path.windows(2) {
            assert!(
                check_transition(pair[0], pair[1], day(2), context(None, true)).is_ok(),
                "{pair:?}"
            );
        }
        assert!(check_transition(InTraining, Financed, day(2), context(None, true)).is_ok());
        assert!(check_transition(Financed, Permitted, day(2), context(None, true)).is_ok());
    }

    #[test]
    fn skipping_or_going_back_is_refused_with_the_allowed_states() {
        let err =
            check_transition(Identified, Enrolled, day(2), context(None, true)).expect_err("skip");
        assert_eq!(
            err,
            TransitionError::NotAllowed {
                from: Identified,
                to: Enrolled,
                allowed: vec![Assessed, Paused, Exited]
            }
        );
        assert!(check_transition(Employed, InTraining, day(2), context(None, true)).is_err());
        assert!(allowed_transitions(Graduated, None).is_empty());
        assert!(allowed_transitions(Exited, None).is_empty());
    }

    #[test]
    fn a_pause_resumes_where_it_left_off() {
        assert_eq!(
            allowed_transitions(Paused, Some(InTraining)),
            vec![InTraining, Exited]
        );
        assert!(
            check_transition(Paused, InTraining, day(2), context(Some(InTraining), true)).is_ok()
        );
        assert!(
            check_transition(Paused, Employed, day(2), context(Some(InTraining), true)).is_err()
        );
        assert!(check_transition(Enrolled, Paused, day(2), context(None, true)).is_ok());
    }

    #[test]
    fn enrolling_needs_consent() {
        assert_eq!(
            check_transition(Assessed, Enrolled, day(2), context(None, false)),
            Err(TransitionError::ConsentRequired { on: day(2) })
        );
    }

    #[test]
    fn transitions_are_dated_in_order() {
        assert!(matches!(
            check_transition(
                Identified,
                Assessed,
                NaiveDate::from_ymd_opt(2019, 3, 1).expect("date"),
                context(None, true)
            ),
            Err(TransitionError::BeforePrevious { .. })
        ));
    }
}

/// A household's enrolment in a programme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolment {
    pub id: crate::id::EnrolmentId,
    pub programme_id: crate::id::ProgrammeId,
    pub household_id: crate::id::HouseholdId,
    pub neighbourhood_id: crate::id::AreaId,
    pub state: EnrolmentState,
    pub state_since: NaiveDate,
    pub resume_to: Option<EnrolmentState>,
    pub version: i64,
    pub created_at: chrono::NaiveDateTime,
    pub updated_at: chrono::NaiveDateTime,
}

/// One recorded transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub seq: i32,
    pub from: Option<EnrolmentState>,
    pub to: EnrolmentState,
    pub on: NaiveDate,
    pub reason: Option<String>,
    pub actor_id: Option<String>,
    pub recorded_at: chrono::NaiveDateTime,
}

/// The state on `day` according to a history in order: the last transition effective by then.
pub fn state_on(history: &[Transition], day: NaiveDate) -> Option<EnrolmentState> {
    history
        .iter()
        .filter(|t| t.on <= day)
        .max_by_key(|t| (t.on, t.seq))
        .map(|t| t.to)
}
