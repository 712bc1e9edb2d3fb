//! Research tables for the partners' study: people of the programme's households counted by
//! neighbourhood, age band, household type and stage, with every cell under [`MIN_CELL`] people
//! suppressed, and sensitive course participation only as such counts.

use std::collections::BTreeMap;

use crate::partner::AgeBand;
use crate::progress::MIN_CELL;

names!(
    /// A breakdown of the research tables.
    Dimension, "dimension", {
        Neighbourhood => "neighbourhood",
        AgeBand => "age_band",
        HouseholdType => "household_type",
        Stage => "stage",
    }
);

names!(
    /// Who heads the household: the programme's first target group is women heads of household.
    HouseholdType, "household type", {
        WomanHeaded => "woman_headed",
        ManHeaded => "man_headed",
        NoHead => "no_head",
    }
);

/// One person of a programme household, as the tables see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub neighbourhood: String,
    pub age_band: AgeBand,
    pub household_type: HouseholdType,
    /// The household's enrolment state.
    pub stage: String,
    pub woman: bool,
    /// Registered in a sensitive course (addiction or divorce prevention, addiction awareness).
    pub in_sensitive_course: bool,
}

impl Subject {
    fn value(&self, dimension: Dimension) -> String {
        match dimension {
            Dimension::Neighbourhood => self.neighbourhood.clone(),
            Dimension::AgeBand => self.age_band.as_str().to_owned(),
            Dimension::HouseholdType => self.household_type.as_str().to_owned(),
            Dimension::Stage => self.stage.clone(),
        }
    }
}

/// One cell: its key (a value per dimension asked for) and its counts; `None` when suppressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    pub key: Vec<(Dimension, String)>,
    pub people: Option<i64>,
    pub women: Option<i64>,
    pub in_sensitive_courses: Option<i64>,
}

/// The tables by `dimensions` (none: one total cell). A cell of fewer than [`MIN_CELL`] people
/// shows no count at all; within a shown cell, a count of 1 to 4, or one that leaves 1 to 4 of
/// the cell out, is suppressed too, since it would single people out (who took an addiction
/// course, say, or who did not). Returns the cells in key order
/// and how many were suppressed.
pub fn tabulate(subjects: &[Subject], dimensions: &[Dimension]) -> (Vec<Cell>, usize) {
    let mut counts: BTreeMap<Vec<String>, (i64, i64, i64)> = BTreeMap::new();
    for s in subjects {
        let key = dimensions.iter().map(|d| s.value(*d)).collect();
        let entry = counts.entry(key).or_default();
        entry.0 += 1;
        entry.1 += i64::from(s.woman);
        entry.2 += i64::from(s.in_sensitive_course);
    }
    // A count of 1–4, or one that leaves 1–4 people out of the cell, singles those people out.
    let small = |n: i64, of: i64| (1..MIN_CELL).contains(&n) || (1..MIN_CELL).contains(&(of - n));
    let mut suppressed = 0;
    let cells = counts
        .into_iter()
        .map(|(key, (people, women, sensitive))| {
            let key = dimensions.iter().copied().zip(key).collect();
            if people < MIN_CELL {
                suppressed += 1;
                return Cell {
                    key,
                    people: None,
                    women: None,
                    in_sensitive_courses: None,
                };
            }
            Cell {
                key,
                people: Some(people),
                women: (!small(women, people)).then_some(women),
                // Everyone in the cell having taken such a course tells it of each of them.
                in_sensitive_courses: (!small(sensitive, people) && sensitive != people)
                    .then_some(sensitive),
            }
        })
        .collect();
    (cells, suppressed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(hood: &str, age: i32, sensitive: bool) -> Subject {
        Subject {
            neighbourhood: hood.to_owned(),
            age_band: AgeBand::of(age),
            household_type: HouseholdType::WomanHeaded,
            stage: "enrolled".to_owned(),
            woman: true,
            in_sensitive_course: sensitive,
        }
    }

    #[test]
    fn cells_under_five_people_are_suppressed() {
        let mut people: Vec<Subject> = (0..5).map(|_| subject("a", 30, false)).collect();
        people.extend((0..4).map(|_| subject("b", 30, true)));
        let (cells, suppressed) = tabulate(&people, &[Dimension::Neighbourhood]);
        assert_eq!(suppressed, 1);
        assert_eq!(cells[0].people, Some(5));
        assert_eq!(cells[0].in_sensitive_courses, Some(0));
        assert_eq!(
            cells[1].key,
            vec![(Dimension::Neighbourhood, "b".to_owned())]
        );
        assert_eq!(cells[1].people, None);
        assert_eq!(cells[1].in_sensitive_courses, None);
    }

    #[test]
    fn small_counts_inside_a_shown_cell_are_suppressed() {
        let mut people: Vec<Subject> = (0..8).map(|_| subject("a", 30, false)).collect();
        people.extend((0..2).map(|_| subject("a", 30, true)));
        let (cells, suppressed) = tabulate(&people, &[]);
        assert_eq!(suppressed, 0);
        assert_eq!(cells[0].people, Some(10));
        assert_eq!(cells[0].women, Some(10));
        assert_eq!(cells[0].in_sensitive_courses, None);
    }

    #[test]
    fn near_total_counts_are_suppressed() {
        // Seven of eight in a sensitive course: the one who was not is singled out too.
        let mut people: Vec<Subject> = (0..7).map(|_| subject("a", 30, true)).collect();
        people.push(subject("a", 30, false));
        let (cells, _) = tabulate(&people, &[]);
        assert_eq!(cells[0].people, Some(8));
        assert_eq!(cells[0].in_sensitive_courses, None);
        // All of them women: not sensitive, shown.
        assert_eq!(cells[0].women, Some(8));
        // All of them in a sensitive course: that is each of them, so it is not shown.
        let everyone: Vec<Subject> = (0..8).map(|_| subject("a", 30, true)).collect();
        assert_eq!(tabulate(&everyone, &[]).0[0].in_sensitive_courses, None);
    }

    #[test]
    fn cells_are_keyed_by_every_dimension_asked_for() {
        let people: Vec<Subject> = (0..6)
            .map(|i| subject("a", if i < 3 { 20 } else { 50 }, false))
            .collect();
        let (cells, suppressed) = tabulate(&people, &[Dimension::AgeBand, Dimension::Stage]);
        assert_eq!(cells.len(), 2);
        assert_eq!(suppressed, 2);
        assert_eq!(cells[0].key[0], (Dimension::AgeBand, "18_29".to_owned()));
        assert_eq!(cells[0].key[1], (Dimension::Stage, "enrolled".to_owned()));
    }
}
