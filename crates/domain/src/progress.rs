//! Progress toward a programme's target: the funnel's stages, Jalali months for the burn-up, the
//! forecast to the end of the programme year, and small-cell suppression.

use chrono::NaiveDate;

use crate::calendar::{from_jalali, to_jalali};
use crate::enrolment::EnrolmentState;

names!(
    /// The stages of the funnel the office reports. `trained` is entering training;
    /// `employed_verified` is reaching `employed` with an employment outcome verified by someone
    /// other than who recorded it.
    FunnelStage, "funnel stage", {
        Identified => "identified",
        Assessed => "assessed",
        Enrolled => "enrolled",
        Trained => "trained",
        Permitted => "permitted",
        Financed => "financed",
        EmployedVerified => "employed_verified",
    }
);

impl FunnelStage {
    /// The enrolment state whose first entry counts a household in this stage (`employed` for
    /// `employed_verified`, which also needs the evidence).
    pub fn state(self) -> EnrolmentState {
        match self {
            FunnelStage::Identified => EnrolmentState::Identified,
            FunnelStage::Assessed => EnrolmentState::Assessed,
            FunnelStage::Enrolled => EnrolmentState::Enrolled,
            FunnelStage::Trained => EnrolmentState::InTraining,
            FunnelStage::Permitted => EnrolmentState::Permitted,
            FunnelStage::Financed => EnrolmentState::Financed,
            FunnelStage::EmployedVerified => EnrolmentState::Employed,
        }
    }

    pub fn of_state(state: EnrolmentState) -> Option<FunnelStage> {
        FunnelStage::ALL
            .iter()
            .copied()
            .find(|s| s.state() == state)
    }

    /// The Persian label, for charts and CSV headers people read.
    pub fn label_fa(self) -> &'static str {
        match self {
            FunnelStage::Identified => "شناسایی",
            FunnelStage::Assessed => "ارزیابی",
            FunnelStage::Enrolled => "ثبت‌نام",
            FunnelStage::Trained => "آموزش",
            FunnelStage::Permitted => "مجوز",
            FunnelStage::Financed => "تسهیلات",
            FunnelStage::EmployedVerified => "اشتغال تأییدشده",
        }
    }
}

/// The stage the headline percentage and the forecast follow: households enrolled.
pub const HEADLINE: FunnelStage = FunnelStage::Enrolled;

/// A Jalali month: `1398-07` and its last Gregorian day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Month {
    pub label: String,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
}

/// The Jalali months from the one containing `from` to the one containing `to`, in order.
pub fn months(from: NaiveDate, to: NaiveDate) -> Vec<Month> {
    let (Some(start), Some(end)) = (to_jalali(from), to_jalali(to)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let (mut year, mut month) = (start.year, start.month);
    while (year, month) <= (end.year, end.month) {
        let (next_year, next_month) = if month == 12 {
            (year + 1, 1)
        } else {
            (year, month + 1)
        };
        let (Some(first_day), Some(next)) = (
            from_jalali(year, month, 1),
            from_jalali(next_year, next_month, 1),
        ) else {
            break;
        };
        out.push(Month {
            label: format!("{year:04}-{month:02}"),
            first_day,
            last_day: next.pred_opt().unwrap_or(next),
        });
        (year, month) = (next_year, next_month);
    }
    out
}

/// Where the programme is heading at the current pace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forecast {
    /// Expected count on the programme's last day.
    pub expected_at_end: i64,
    /// Whether that reaches the target (`None` without a target).
    pub on_track: Option<bool>,
}

/// A straight line through the programme's first day and today's count: `count` reached in the
/// days elapsed, extended to the whole programme period. After the end, the count is final.
pub fn forecast(
    count: i64,
    starts_on: NaiveDate,
    ends_on: NaiveDate,
    as_of: NaiveDate,
    target: Option<i64>,
) -> Forecast {
    let total = (ends_on - starts_on).num_days() + 1;
    let elapsed = (as_of.min(ends_on) - starts_on).num_days() + 1;
    let expected_at_end = if as_of >= ends_on {
        count
    } else if elapsed <= 0 {
        0
    } else {
        // i128: no overflow whatever the inputs.
        i64::try_from(i128::from(count) * i128::from(total) / i128::from(elapsed))
            .unwrap_or(i64::MAX)
    };
    Forecast {
        expected_at_end,
        on_track: target.map(|t| expected_at_end >= t),
    }
}

/// Percent of `target` reached, to one decimal; `None` without a target.
pub fn percent(count: i64, target: Option<i64>) -> Option<f64> {
    target
        .filter(|t| *t > 0)
        .map(|t| (count as f64 * 1000.0 / t as f64).round() / 10.0)
}

/// Households per funnel stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StageTotals([i64; 7]);

impl StageTotals {
    fn index(stage: FunnelStage) -> usize {
        FunnelStage::ALL
            .iter()
            .position(|s| *s == stage)
            .unwrap_or_default()
    }

    pub fn add(&mut self, stage: FunnelStage, households: i64) {
        self.0[Self::index(stage)] += households;
    }

    pub fn get(&self, stage: FunnelStage) -> i64 {
        self.0[Self::index(stage)]
    }

    /// Totals of households that reached each stage on or before `day`, from first entries
    /// `(stage, day, households)`.
    pub fn until<'a>(
        entries: impl IntoIterator<Item = (FunnelStage, NaiveDate, i64)> + 'a,
        day: NaiveDate,
    ) -> StageTotals {
        let mut totals = StageTotals::default();
        for (stage, on, households) in entries {
            if on <= day {
                totals.add(stage, households);
            }
        }
        totals
    }
}

/// Cells resting on fewer people than this are suppressed for partners.
pub const MIN_CELL: i64 = 5;

/// Whether a cell of `n` people may be shown to a partner.
pub fn shown_to_partners(n: i64) -> bool {
    n >= MIN_CELL
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().expect("date")
    }

    #[test]
    fn months_follow_the_jalali_calendar_across_the_new_year() {
        let list = months(day("2020-02-01"), day("2020-04-25"));
        let labels: Vec<&str> = list.iter().map(|m| m.label.as_str()).collect();
        assert_eq!(labels, ["1398-11", "1398-12", "1399-01", "1399-02"]);
        // Esfand 1398 ends on 2020-03-19; Farvardin 1399 starts on 2020-03-20.
        assert_eq!(list[1].last_day, day("2020-03-19"));
        assert_eq!(list[2].first_day, day("2020-03-20"));
        assert_eq!(list[2].last_day, day("2020-04-19"));
    }

    #[test]
    fn a_programme_year_has_twelve_months() {
        let list = months(day("2019-03-21"), day("2020-03-19"));
        assert_eq!(list.len(), 12);
        assert_eq!(list[0].label, "1398-01");
        assert_eq!(list[11].label, "1398-12");
    }

    #[test]
    fn the_forecast_extends_the_pace_to_the_end() {
        // 1398: 365 days. 100 households in the first 73 days: 500 by the end.
        let (start, end) = (day("2019-03-21"), day("2020-03-19"));
        let f = forecast(100, start, end, day("2019-06-01"), Some(600));
        assert_eq!(f.expected_at_end, 500);
        assert_eq!(f.on_track, Some(false));
        let f = forecast(130, start, end, day("2019-06-01"), Some(600));
        assert_eq!(f.expected_at_end, 650);
        assert_eq!(f.on_track, Some(true));
        // After the end the count is what it is; before the start there is no pace.
        assert_eq!(
            forecast(420, start, end, day("2021-01-01"), None).expected_at_end,
            420
        );
        assert_eq!(
            forecast(0, start, end, day("2019-01-01"), Some(1)).expected_at_end,
            0
        );
    }

    #[test]
    fn percent_has_one_decimal() {
        assert_eq!(percent(1, Some(600)), Some(0.2));
        assert_eq!(percent(300, Some(600)), Some(50.0));
        assert_eq!(percent(3, None), None);
    }

    #[test]
    fn totals_count_first_entries_up_to_a_day() {
        let entries = [
            (FunnelStage::Identified, day("2019-04-01"), 3),
            (FunnelStage::Identified, day("2019-05-01"), 2),
            (FunnelStage::Enrolled, day("2019-05-02"), 1),
        ];
        let totals = StageTotals::until(entries, day("2019-05-01"));
        assert_eq!(totals.get(FunnelStage::Identified), 5);
        assert_eq!(totals.get(FunnelStage::Enrolled), 0);
    }

    #[test]
    fn stages_map_to_states() {
        assert_eq!(
            FunnelStage::of_state(EnrolmentState::InTraining),
            Some(FunnelStage::Trained)
        );
        assert_eq!(FunnelStage::of_state(EnrolmentState::Paused), None);
        assert!(!shown_to_partners(4));
        assert!(shown_to_partners(5));
    }
}
