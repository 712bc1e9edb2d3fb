//! Micro-loans (تسهیلات خرد) to open a home workshop (DESIGN.md §5): product terms, the monthly
//! schedule on Jalali dates, how repayments are applied, early settlement, arrears and portfolio at
//! risk computed as of any day (never stored), approvals and eligibility.

use chrono::NaiveDate;

use crate::calendar::{from_jalali, to_jalali};
use crate::error::{FieldError, ValidationErrors};
use crate::funds::MAX_AMOUNT;

names!(
    /// What a loan product requires of an applicant.
    Requirement, "loan requirement", {
        None => "none",
        Permit => "permit",
        TechnicalCourse => "technical_course",
        PermitOrCourse => "permit_or_course",
    }
);

names!(
    /// A loan's stored state. Whether it is in arrears is never stored: see [`arrears`].
    LoanState, "loan state", {
        Applied => "applied",
        Approved => "approved",
        Rejected => "rejected",
        Disbursed => "disbursed",
        Settled => "settled",
        WrittenOff => "written_off",
    }
);

impl LoanState {
    /// The states a loan may move to from this one. An approved loan may still be rejected
    /// (cancelled) until the money has left; after that it ends settled or written off.
    pub fn next(self) -> &'static [LoanState] {
        use LoanState::*;
        match self {
            Applied => &[Approved, Rejected],
            Approved => &[Disbursed, Rejected],
            Disbursed => &[Settled, WrittenOff],
            Rejected | Settled | WrittenOff => &[],
        }
    }
}

names!(
    /// How a disbursed loan stands on a day, derived from its schedule and repayments.
    Standing, "loan standing", { Current => "current", InArrears => "in_arrears" }
);

names!(
    /// Days past due, in the buckets the monitoring reports use.
    Bucket, "arrears bucket", {
        Days1To30 => "1_30",
        Days31To60 => "31_60",
        Days61To90 => "61_90",
        Over90 => "90_plus",
    }
);

impl Bucket {
    /// The bucket of `days` past due; `None` for a loan not past due.
    pub fn from_days(days: i64) -> Option<Bucket> {
        match days {
            i64::MIN..=0 => None,
            1..=30 => Some(Bucket::Days1To30),
            31..=60 => Some(Bucket::Days31To60),
            61..=90 => Some(Bucket::Days61To90),
            _ => Some(Bucket::Over90),
        }
    }
}

names!(
    /// What a loan's ledger entry records. Disbursements and fees add to what the borrower owes;
    /// repayments, fee waivers and write-offs take from it.
    LoanEntryKind, "loan entry kind", {
        Disbursement => "disbursement",
        Fee => "fee",
        Repayment => "repayment",
        FeeWaiver => "fee_waiver",
        WriteOff => "write_off",
    }
);

/// A loan product's terms. The fee is an annual rate in basis points (400 = 4.00 % a year) on the
/// declining balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terms {
    pub min_amount: i64,
    pub max_amount: i64,
    pub term_months: u32,
    pub grace_months: u32,
    pub fee_rate_bp: u32,
}

pub const MAX_TERM_MONTHS: u32 = 120;
pub const MAX_GRACE_MONTHS: u32 = 24;
pub const MAX_FEE_RATE_BP: u32 = 10_000;

/// Checks a product's terms, every field at once.
pub fn check_terms(terms: &Terms) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::default();
    let amount_ok = |v: i64| (1..=MAX_AMOUNT).contains(&v);
    if !amount_ok(terms.min_amount) {
        errors.push(FieldError::new(
            "min_amount",
            "out_of_range",
            format!("must be from 1 to {MAX_AMOUNT} rials"),
        ));
    }
    if !amount_ok(terms.max_amount) {
        errors.push(FieldError::new(
            "max_amount",
            "out_of_range",
            format!("must be from 1 to {MAX_AMOUNT} rials"),
        ));
    } else if amount_ok(terms.min_amount) && terms.max_amount < terms.min_amount {
        errors.push(FieldError::new(
            "max_amount",
            "out_of_range",
            format!("must be at least min_amount ({} rials)", terms.min_amount),
        ));
    }
    if !(1..=MAX_TERM_MONTHS).contains(&terms.term_months) {
        errors.push(FieldError::new(
            "term_months",
            "out_of_range",
            format!("must be from 1 to {MAX_TERM_MONTHS} months"),
        ));
    }
    if terms.grace_months > MAX_GRACE_MONTHS {
        errors.push(FieldError::new(
            "grace_months",
            "out_of_range",
            format!("must be from 0 to {MAX_GRACE_MONTHS} months"),
        ));
    }
    if terms.fee_rate_bp > MAX_FEE_RATE_BP {
        errors.push(FieldError::new(
            "fee_rate_bp",
            "out_of_range",
            format!("must be from 0 to {MAX_FEE_RATE_BP} basis points (100 %) a year"),
        ));
    }
    errors.into_result()
}

/// Whether `amount` is within the product's range.
pub fn check_amount(terms: &Terms, amount: i64) -> Result<(), FieldError> {
    if (terms.min_amount..=terms.max_amount).contains(&amount) {
        Ok(())
    } else {
        Err(FieldError::new(
            "amount",
            "out_of_range",
            format!(
                "this product lends from {} to {} rials",
                terms.min_amount, terms.max_amount
            ),
        ))
    }
}

/// One instalment of a schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instalment {
    pub number: u32,
    pub due_on: NaiveDate,
    pub principal: i64,
    pub fee: i64,
    pub total: i64,
}

/// One month's fee on `balance`: balance × rate / (10,000 bp × 12 months), rounded half up.
fn monthly_fee(balance: i64, fee_rate_bp: u32) -> i64 {
    let scaled = i128::from(balance) * i128::from(fee_rate_bp);
    // rate ≤ 10,000 bp, so the fee is at most a twelfth of the balance: it fits.
    i64::try_from((scaled + 60_000) / 120_000).unwrap_or(i64::MAX)
}

/// The day an instalment `months` months after disbursement falls due: the same Jalali day of the
/// month, clamped to that month's last day (disbursed on 31 Shahrivar → due on 30 Mehr). Always
/// counted from the disbursement, so a clamped month does not shift the ones after it.
pub fn due_date(disbursed_on: NaiveDate, months: u32) -> Option<NaiveDate> {
    let start = to_jalali(disbursed_on)?;
    let index = i64::from(start.month) - 1 + i64::from(months);
    let year = start.year.checked_add(i32::try_from(index / 12).ok()?)?;
    let month = u8::try_from(index % 12 + 1).ok()?;
    (1..=start.day)
        .rev()
        .find_map(|day| from_jalali(year, month, day))
}

/// The repayment schedule of `amount` lent on `disbursed_on`. The rules of the service:
///
/// - First `grace_months` instalments of no principal, each carrying only that month's fee; a
///   grace month whose fee is zero (a zero rate) makes no instalment, and numbering stays 1, 2, ….
/// - Then `term_months` instalments of equal principal `amount / term_months` (whole rials); the
///   remainder goes on the last one, so the principals add up to the amount exactly.
/// - Each month's fee is the balance outstanding at the start of that month × `fee_rate_bp` /
///   120,000 (10,000 bp × 12 months), rounded half up.
/// - The instalment of the k-th month after disbursement (grace months counted) is due on the same
///   Jalali day of the k-th following Jalali month, clamped to that month's last day.
/// - `total = principal + fee`.
pub fn schedule(
    terms: &Terms,
    amount: i64,
    disbursed_on: NaiveDate,
) -> Result<Vec<Instalment>, ValidationErrors> {
    let mut errors = check_terms(terms).err().unwrap_or_default();
    errors.check(check_amount(terms, amount));
    if to_jalali(disbursed_on).is_none() {
        errors.push(FieldError::new(
            "disbursed_on",
            "invalid",
            "has no date in the Jalali calendar",
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    let no_date = || {
        ValidationErrors::from(FieldError::new(
            "disbursed_on",
            "out_of_range",
            "the schedule runs past the dates the calendar knows",
        ))
    };
    let per_month = amount / i64::from(terms.term_months);
    let mut instalments = Vec::new();
    let mut balance = amount;
    let mut number = 0;
    for month in 1..=terms.grace_months + terms.term_months {
        let fee = monthly_fee(balance, terms.fee_rate_bp);
        let principal = if month <= terms.grace_months {
            0
        } else if month == terms.grace_months + terms.term_months {
            balance
        } else {
            per_month
        };
        if month <= terms.grace_months && fee == 0 {
            continue;
        }
        number += 1;
        instalments.push(Instalment {
            number,
            due_on: due_date(disbursed_on, month).ok_or_else(no_date)?,
            principal,
            fee,
            total: principal + fee,
        });
        balance -= principal;
    }
    Ok(instalments)
}

/// What an instalment asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    pub number: u32,
    pub due_on: NaiveDate,
    pub principal: i64,
    pub fee: i64,
}

impl From<&Instalment> for Due {
    fn from(i: &Instalment) -> Self {
        Due {
            number: i.number,
            due_on: i.due_on,
            principal: i.principal,
            fee: i.fee,
        }
    }
}

/// What has been paid of an instalment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Paid {
    pub principal: i64,
    pub fee: i64,
}

fn unpaid_fee(due: &Due, paid: &Paid) -> i64 {
    due.fee.saturating_sub(paid.fee).max(0)
}

fn unpaid_principal(due: &Due, paid: &Paid) -> i64 {
    due.principal.saturating_sub(paid.principal).max(0)
}

/// What a repayment pays of one instalment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocation {
    pub number: u32,
    pub fee: i64,
    pub principal: i64,
}

/// Why a repayment was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AllocationError {
    #[error("a repayment must be a positive number of rials")]
    NotPositive,
    #[error("only {owed} rials are still owed; a larger repayment is refused")]
    Overpayment { owed: i64 },
}

/// Everything still owed, fees and principal.
pub fn owed(instalments: &[(Due, Paid)]) -> i64 {
    instalments.iter().fold(0i64, |sum, (due, paid)| {
        sum.saturating_add(unpaid_fee(due, paid))
            .saturating_add(unpaid_principal(due, paid))
    })
}

/// Applies up to `amount`, oldest instalment first, fee before principal; what is beyond the debt
/// is left over.
fn spread(instalments: &[(Due, Paid)], amount: i64) -> Vec<Allocation> {
    let mut order: Vec<&(Due, Paid)> = instalments.iter().collect();
    order.sort_by_key(|(due, _)| due.number);
    let mut left = amount.max(0);
    let mut allocations = Vec::new();
    for (due, paid) in order {
        if left == 0 {
            break;
        }
        let fee = unpaid_fee(due, paid).min(left);
        left -= fee;
        let principal = unpaid_principal(due, paid).min(left);
        left -= principal;
        if fee > 0 || principal > 0 {
            allocations.push(Allocation {
                number: due.number,
                fee,
                principal,
            });
        }
    }
    allocations
}

/// How a repayment of `amount` is applied: to the oldest instalment first (by number), its fee
/// before its principal, going on to later instalments, so paying ahead of the due dates is
/// allowed. Paying more than everything still owed is refused; paying it to the rial is not.
pub fn allocate(
    instalments: &[(Due, Paid)],
    amount: i64,
) -> Result<Vec<Allocation>, AllocationError> {
    if amount <= 0 {
        return Err(AllocationError::NotPositive);
    }
    let owed = owed(instalments);
    if amount > owed {
        return Err(AllocationError::Overpayment { owed });
    }
    Ok(spread(instalments, amount))
}

/// What settling a loan early costs, and the fees it saves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settlement {
    pub principal: i64,
    pub fee: i64,
    pub waived_fee: i64,
}

impl Settlement {
    /// What the borrower pays to settle.
    pub fn total(&self) -> i64 {
        self.principal.saturating_add(self.fee)
    }
}

/// Settling on `on`: all unpaid principal, the unpaid fees of instalments due on or before that
/// day, and the fee of the first instalment due after it (the current month's fee, which has
/// run). The fees of the later instalments are waived.
pub fn settlement(instalments: &[(Due, Paid)], on: NaiveDate) -> Settlement {
    let mut order: Vec<&(Due, Paid)> = instalments.iter().collect();
    order.sort_by_key(|(due, _)| due.number);
    let mut result = Settlement {
        principal: 0,
        fee: 0,
        waived_fee: 0,
    };
    let mut current_month_counted = false;
    for (due, paid) in order {
        result.principal = result.principal.saturating_add(unpaid_principal(due, paid));
        let fee = unpaid_fee(due, paid);
        if due.due_on <= on {
            result.fee = result.fee.saturating_add(fee);
        } else if !current_month_counted {
            current_month_counted = true;
            result.fee = result.fee.saturating_add(fee);
        } else {
            result.waived_fee = result.waived_fee.saturating_add(fee);
        }
    }
    result
}

/// The schedule with the repayments dated on or before `as_of` applied, in date order (same-day
/// ones in the order given), as [`allocate`] does. Repayments that would have overpaid were
/// refused when recorded; here they only pay off what is left.
pub fn replay(
    schedule: &[Due],
    repayments: &[(NaiveDate, i64)],
    as_of: NaiveDate,
) -> Vec<(Due, Paid)> {
    let mut state: Vec<(Due, Paid)> = schedule.iter().map(|d| (*d, Paid::default())).collect();
    state.sort_by_key(|(due, _)| due.number);
    let mut applied: Vec<&(NaiveDate, i64)> =
        repayments.iter().filter(|(on, _)| *on <= as_of).collect();
    applied.sort_by_key(|(on, _)| *on);
    for (_, amount) in applied {
        for allocation in spread(&state, *amount) {
            if let Some((_, paid)) = state
                .iter_mut()
                .find(|(d, _)| d.number == allocation.number)
            {
                paid.fee = paid.fee.saturating_add(allocation.fee);
                paid.principal = paid.principal.saturating_add(allocation.principal);
            }
        }
    }
    state
}

/// Principal not yet repaid.
pub fn outstanding_principal(state: &[(Due, Paid)]) -> i64 {
    state.iter().fold(0i64, |sum, (due, paid)| {
        sum.saturating_add(unpaid_principal(due, paid))
    })
}

/// How far behind a loan is on a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrears {
    /// Days since the oldest unpaid instalment fell due; 0 when nothing is overdue.
    pub days_past_due: i64,
    /// What is unpaid of the overdue instalments, fees and principal.
    pub overdue: i64,
    pub bucket: Option<Bucket>,
}

/// Arrears on `as_of`. An instalment is overdue when it fell due before `as_of` and is not fully
/// paid: on the due day itself the loan is not in arrears; the day after, it is 1 day past due.
pub fn arrears(state: &[(Due, Paid)], as_of: NaiveDate) -> Arrears {
    let overdue: Vec<&(Due, Paid)> = state
        .iter()
        .filter(|(due, paid)| {
            due.due_on < as_of && (unpaid_fee(due, paid) > 0 || unpaid_principal(due, paid) > 0)
        })
        .collect();
    let amount = overdue.iter().fold(0i64, |sum, (due, paid)| {
        sum.saturating_add(unpaid_fee(due, paid))
            .saturating_add(unpaid_principal(due, paid))
    });
    let days = overdue
        .iter()
        .map(|(due, _)| due.due_on)
        .min()
        .map_or(0, |oldest| as_of.signed_duration_since(oldest).num_days());
    Arrears {
        days_past_due: days,
        overdue: amount,
        bucket: Bucket::from_days(days),
    }
}

/// A loan is current unless something is past due.
pub fn standing(arrears: &Arrears) -> Standing {
    if arrears.days_past_due > 0 {
        Standing::InArrears
    } else {
        Standing::Current
    }
}

/// One loan's part in the portfolio at risk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exposure {
    pub outstanding_principal: i64,
    pub days_past_due: i64,
}

/// Portfolio at risk: rials and, when anything is outstanding, basis points (10,000 = all of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Par {
    pub at_risk: i64,
    pub outstanding: i64,
    pub basis_points: Option<i64>,
}

/// PAR`days` (PAR30 for `days = 30`): the outstanding principal of the loans more than `days` past
/// due over all outstanding principal. As in the standard definition, a late loan counts with its
/// whole outstanding principal, not only the overdue part. Basis points are rounded half up.
pub fn par(loans: &[Exposure], days: i64) -> Par {
    // Summed in 128 bits: no real portfolio comes near the limit of 64.
    let mut at_risk: i128 = 0;
    let mut outstanding: i128 = 0;
    for loan in loans {
        let principal = i128::from(loan.outstanding_principal.max(0));
        outstanding += principal;
        if loan.days_past_due > days {
            at_risk += principal;
        }
    }
    let clamp = |v: i128| i64::try_from(v).unwrap_or(i64::MAX);
    Par {
        at_risk: clamp(at_risk),
        outstanding: clamp(outstanding),
        basis_points: (outstanding > 0)
            .then(|| clamp((at_risk * 10_000 * 2 + outstanding) / (outstanding * 2))),
    }
}

/// Writing a loan off always takes two different approvers.
pub const WRITE_OFF_APPROVALS: u32 = 2;

/// Approvals a loan of `amount` needs: a second approver above the threshold.
pub fn approvals_needed(amount: i64, second_approver_above: i64) -> u32 {
    if amount > second_approver_above { 2 } else { 1 }
}

/// Whether `approver` may add an approval: the same person cannot approve twice.
pub fn check_approver<S: AsRef<str>>(existing: &[S], approver: &str) -> Result<(), FieldError> {
    if existing.iter().any(|e| e.as_ref() == approver) {
        Err(FieldError::new(
            "approver",
            "same_approver",
            "has already approved this loan; another person must give the next approval",
        ))
    } else {
        Ok(())
    }
}

names!(
    /// The rules of loan eligibility, each explained on its own.
    Rule, "loan eligibility rule", {
        Enrolled => "enrolled",
        Permit => "permit",
        TechnicalTraining => "technical_training",
        PermitOrTechnicalTraining => "permit_or_technical_training",
        NoArrears => "no_arrears",
    }
);

impl Rule {
    /// The request field the rule is about, for field-by-field errors.
    pub fn field(self) -> &'static str {
        match self {
            Rule::Enrolled => "person_id.enrolment",
            Rule::Permit => "person_id.permit",
            Rule::TechnicalTraining => "person_id.training",
            Rule::PermitOrTechnicalTraining => "person_id.permit",
            Rule::NoArrears => "person_id.loans",
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

/// What loan eligibility depends on, gathered by the caller.
#[derive(Debug, Clone)]
pub struct Facts {
    /// Whether the person's household is enrolled (enrolled or further) in some programme.
    pub enrolled: bool,
    pub has_valid_permit: bool,
    pub completed_technical_course: bool,
    /// Whether any disbursed loan of the person is in arrears today.
    pub has_loan_in_arrears: bool,
    /// What the product requires.
    pub requirement: Requirement,
}

/// Every rule that applies to the product, passed or not, with its explanation. Eligible when all
/// passed.
pub fn eligibility(facts: &Facts) -> Vec<Check> {
    let said = |yes: bool, pass: &str, fail: &str| if yes { pass } else { fail }.to_owned();
    let permit = said(
        facts.has_valid_permit,
        "holds a valid home-business permit",
        "holds no valid home-business permit",
    );
    let course = said(
        facts.completed_technical_course,
        "completed a technical & vocational course",
        "has not completed a technical & vocational course",
    );
    let mut checks = vec![Check {
        rule: Rule::Enrolled,
        passed: facts.enrolled,
        explanation: said(
            facts.enrolled,
            "the household is enrolled in a programme",
            "the household is not enrolled in any programme (enrolled or further)",
        ),
    }];
    match facts.requirement {
        Requirement::None => {}
        Requirement::Permit => checks.push(Check {
            rule: Rule::Permit,
            passed: facts.has_valid_permit,
            explanation: permit,
        }),
        Requirement::TechnicalCourse => checks.push(Check {
            rule: Rule::TechnicalTraining,
            passed: facts.completed_technical_course,
            explanation: course,
        }),
        Requirement::PermitOrCourse => checks.push(Check {
            rule: Rule::PermitOrTechnicalTraining,
            passed: facts.has_valid_permit || facts.completed_technical_course,
            explanation: format!("{permit}; {course}; the product needs either"),
        }),
    }
    checks.push(Check {
        rule: Rule::NoArrears,
        passed: !facts.has_loan_in_arrears,
        explanation: said(
            facts.has_loan_in_arrears,
            "another loan of this person is in arrears",
            "no loan of this person is in arrears",
        ),
    });
    checks
}

/// Whether every check passed.
pub fn eligible(checks: &[Check]) -> bool {
    checks.iter().all(|c| c.passed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(year: i32, month: u8, day: u8) -> NaiveDate {
        from_jalali(year, month, day).expect("a Jalali day")
    }

    fn terms(term_months: u32, grace_months: u32, fee_rate_bp: u32) -> Terms {
        Terms {
            min_amount: 1,
            max_amount: MAX_AMOUNT,
            term_months,
            grace_months,
            fee_rate_bp,
        }
    }

    fn plus(day: NaiveDate, days: u64) -> NaiveDate {
        day.checked_add_days(chrono::Days::new(days))
            .expect("a day")
    }

    fn due(number: u32, due_on: NaiveDate, fee: i64, principal: i64) -> Due {
        Due {
            number,
            due_on,
            principal,
            fee,
        }
    }

    #[test]
    fn principals_add_up_and_the_remainder_is_last() {
        let s = schedule(&terms(7, 0, 0), 10_000_001, j(1403, 1, 15)).expect("schedule");
        assert_eq!(s.len(), 7);
        assert!(s[..6].iter().all(|i| i.principal == 1_428_571));
        assert_eq!(s[6].principal, 1_428_575);
        // Three grace months at 100 %; on 5 rials their fee rounds to nothing: no instalment.
        for (amount, months, count) in [
            (10_000_001, 7, 10),
            (5, 7, 7),
            (999_999_999, 120, 123),
            (MAX_AMOUNT, 13, 16),
        ] {
            let s = schedule(&terms(months, 3, 10_000), amount, j(1403, 1, 15)).expect("schedule");
            assert_eq!(s.iter().map(|i| i.principal).sum::<i64>(), amount);
            assert!(s.iter().all(|i| i.total == i.principal + i.fee));
            let numbers: Vec<u32> = s.iter().map(|i| i.number).collect();
            assert_eq!(numbers, (1..=count).collect::<Vec<_>>());
        }
    }

    #[test]
    fn fees_are_on_the_declining_balance() {
        // 12,000,000 at 4 % a year: 12,000,000 × 400 / 120,000 = 40,000 in the first month.
        let s = schedule(&terms(12, 0, 400), 12_000_000, j(1403, 1, 15)).expect("schedule");
        let fees: Vec<i64> = s.iter().map(|i| i.fee).collect();
        assert_eq!(fees[0], 40_000);
        assert_eq!(fees[1], 36_667, "11,000,000 / 300 = 36,666.67");
        assert_eq!(fees[2], 33_333, "10,000,000 / 300 = 33,333.33");
        assert_eq!(fees[11], 3_333);
        assert_eq!(s[0].total, 1_040_000);
    }

    #[test]
    fn fees_round_half_up() {
        assert_eq!(monthly_fee(1_500_000, 1), 13, "12.5 rials");
        assert_eq!(monthly_fee(1_488_000, 1), 12, "12.4 rials");
        assert_eq!(monthly_fee(1_499_999, 1), 12, "12.49999… rials");
        let s = schedule(&terms(1, 0, 1), 1_500_000, j(1403, 1, 15)).expect("schedule");
        assert_eq!(s[0].fee, 13);
        assert_eq!(monthly_fee(MAX_AMOUNT, 10_000), 83_333_333_333_333);
    }

    #[test]
    fn grace_months_carry_only_the_fee() {
        let s = schedule(&terms(12, 2, 400), 12_000_000, j(1403, 1, 15)).expect("schedule");
        assert_eq!(s.len(), 14);
        for i in &s[..2] {
            assert_eq!((i.principal, i.fee, i.total), (0, 40_000, 40_000));
        }
        assert_eq!((s[2].principal, s[2].fee), (1_000_000, 40_000));
        assert_eq!(s[0].due_on, j(1403, 2, 15));
        assert_eq!(s[2].due_on, j(1403, 4, 15));
        assert_eq!(s[13].due_on, j(1404, 3, 15));

        // No fee: the grace months make no instalment, but repayment still starts after them.
        let s = schedule(&terms(12, 2, 0), 12_000_000, j(1403, 1, 15)).expect("schedule");
        assert_eq!(s.len(), 12);
        assert_eq!(
            (s[0].number, s[0].due_on, s[0].principal),
            (1, j(1403, 4, 15), 1_000_000)
        );
        assert_eq!((s[11].number, s[11].due_on), (12, j(1404, 3, 15)));
    }

    #[test]
    fn due_dates_keep_the_jalali_day_clamped_to_the_month() {
        assert!(from_jalali(1403, 12, 30).is_some(), "1403 is a leap year");
        assert!(from_jalali(1402, 12, 30).is_none(), "1402 is not");
        assert_eq!(due_date(j(1403, 6, 31), 1), Some(j(1403, 7, 30)));
        // Counted from disbursement: the clamp does not carry over to later months.
        assert_eq!(due_date(j(1403, 6, 31), 7), Some(j(1404, 1, 31)));
        assert_eq!(due_date(j(1403, 6, 31), 6), Some(j(1403, 12, 30)));
        assert_eq!(due_date(j(1402, 6, 31), 6), Some(j(1402, 12, 29)));
        assert_eq!(due_date(j(1403, 11, 30), 1), Some(j(1403, 12, 30)));
        assert_eq!(due_date(j(1402, 11, 30), 1), Some(j(1402, 12, 29)));
        assert_eq!(due_date(j(1403, 12, 10), 1), Some(j(1404, 1, 10)));
        let s = schedule(&terms(3, 0, 0), 3_000, j(1403, 6, 31)).expect("schedule");
        let dates: Vec<NaiveDate> = s.iter().map(|i| i.due_on).collect();
        assert_eq!(dates, [j(1403, 7, 30), j(1403, 8, 30), j(1403, 9, 30)]);
    }

    #[test]
    fn terms_and_amounts_are_checked() {
        assert!(check_terms(&terms(12, 0, 400)).is_ok());
        let bad = Terms {
            min_amount: 0,
            max_amount: MAX_AMOUNT + 1,
            term_months: 0,
            grace_months: 25,
            fee_rate_bp: 10_001,
        };
        let errors = check_terms(&bad).expect_err("bad terms");
        let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "min_amount",
                "max_amount",
                "term_months",
                "grace_months",
                "fee_rate_bp"
            ]
        );
        assert!(errors.0.iter().all(|e| e.code == "out_of_range"));
        let inverted = Terms {
            min_amount: 10,
            max_amount: 9,
            ..terms(12, 0, 0)
        };
        assert_eq!(
            check_terms(&inverted).expect_err("min > max").0[0].field,
            "max_amount"
        );

        let product = Terms {
            min_amount: 50_000_000,
            max_amount: 300_000_000,
            ..terms(24, 0, 400)
        };
        assert!(check_amount(&product, 50_000_000).is_ok());
        assert!(check_amount(&product, 300_000_000).is_ok());
        let error = check_amount(&product, 300_000_001).expect_err("too much");
        assert_eq!(
            (error.field.as_str(), error.code),
            ("amount", "out_of_range")
        );
        assert!(error.message.contains("50000000") && error.message.contains("300000000"));
        let errors = schedule(&product, 1, j(1403, 1, 1)).expect_err("too little");
        assert_eq!(errors.0[0].field, "amount");
    }

    fn paid(principal: i64, fee: i64) -> Paid {
        Paid { principal, fee }
    }

    fn alloc(number: u32, fee: i64, principal: i64) -> Allocation {
        Allocation {
            number,
            fee,
            principal,
        }
    }

    fn two_instalments() -> Vec<(Due, Paid)> {
        // Given out of order: allocation goes by number.
        vec![
            (due(2, j(1403, 3, 1), 90, 1_000), Paid::default()),
            (due(1, j(1403, 2, 1), 100, 1_000), Paid::default()),
        ]
    }

    #[test]
    fn repayments_go_to_the_oldest_fee_first() {
        let state = two_instalments();
        assert_eq!(allocate(&state, 50), Ok(vec![alloc(1, 50, 0)]));
        assert_eq!(
            allocate(&state, 1_150),
            Ok(vec![alloc(1, 100, 1_000), alloc(2, 50, 0)])
        );
        // Paying ahead: the first is settled, the money goes on to the next.
        let mut state = two_instalments();
        state[1].1 = paid(1_000, 100);
        assert_eq!(allocate(&state, 500), Ok(vec![alloc(2, 90, 410)]));
    }

    #[test]
    fn overpayment_is_refused_but_the_exact_payoff_is_not() {
        let state = two_instalments();
        assert_eq!(owed(&state), 2_190);
        assert_eq!(allocate(&state, 2_190).map(|a| a.len()), Ok(2));
        let error = allocate(&state, 2_191).expect_err("overpaid");
        assert_eq!(error, AllocationError::Overpayment { owed: 2_190 });
        assert_eq!(
            error.to_string(),
            "only 2190 rials are still owed; a larger repayment is refused"
        );
        assert_eq!(allocate(&state, 0), Err(AllocationError::NotPositive));
        assert_eq!(allocate(&state, -5), Err(AllocationError::NotPositive));
    }

    #[test]
    fn settling_early_waives_the_later_fees() {
        let state = vec![
            (due(1, j(1403, 2, 1), 100, 1_000), Paid::default()),
            (due(2, j(1403, 3, 1), 100, 1_000), Paid::default()),
            (due(3, j(1403, 4, 1), 100, 1_000), Paid::default()),
        ];
        let s = settlement(&state, j(1403, 2, 15));
        assert_eq!((s.principal, s.fee, s.waived_fee), (3_000, 200, 100));
        assert_eq!(s.total(), 3_200);
        let s = settlement(&state, j(1403, 1, 20));
        assert_eq!(
            (s.fee, s.waived_fee),
            (100, 200),
            "the current month's fee only"
        );
        let s = settlement(&state, j(1403, 3, 1));
        assert_eq!(
            (s.fee, s.waived_fee),
            (300, 0),
            "due on the day counts as due"
        );
        // What was paid is not asked again.
        let mut part = state.clone();
        part[0].1 = paid(1_000, 100);
        part[1].1 = paid(0, 40);
        let s = settlement(&part, j(1403, 2, 15));
        assert_eq!((s.principal, s.fee, s.waived_fee), (2_000, 60, 100));
    }

    #[test]
    fn arrears_start_the_day_after_the_due_day() {
        let d = j(1403, 2, 1);
        let state = vec![(due(1, d, 100, 1_000), Paid::default())];
        let cases = [
            (0, 0, None),
            (1, 1, Some(Bucket::Days1To30)),
            (30, 30, Some(Bucket::Days1To30)),
            (31, 31, Some(Bucket::Days31To60)),
            (60, 60, Some(Bucket::Days31To60)),
            (61, 61, Some(Bucket::Days61To90)),
            (90, 90, Some(Bucket::Days61To90)),
            (91, 91, Some(Bucket::Over90)),
        ];
        for (offset, days, bucket) in cases {
            let a = arrears(&state, plus(d, offset));
            assert_eq!(
                (a.days_past_due, a.bucket),
                (days, bucket),
                "due + {offset}"
            );
            assert_eq!(a.overdue, if days > 0 { 1_100 } else { 0 });
            let expected = if days > 0 {
                Standing::InArrears
            } else {
                Standing::Current
            };
            assert_eq!(standing(&a), expected);
        }
        assert_eq!(Bucket::Over90.as_str(), "90_plus");
        assert_eq!("31_60".parse::<Bucket>(), Ok(Bucket::Days31To60));
    }

    #[test]
    fn arrears_are_replayed_as_of_any_day() {
        let d = j(1403, 2, 1);
        let schedule = [due(1, d, 100, 1_000), due(2, plus(d, 30), 100, 1_000)];
        let repaid = [(plus(d, 5), 1_100)];
        let before = replay(&schedule, &repaid, plus(d, 3));
        assert_eq!(arrears(&before, plus(d, 3)).days_past_due, 3);
        assert_eq!(outstanding_principal(&before), 2_000);
        let after = replay(&schedule, &repaid, plus(d, 10));
        assert_eq!(arrears(&after, plus(d, 10)).bucket, None);
        assert_eq!(outstanding_principal(&after), 1_000);
        // The second instalment is now the oldest unpaid one.
        let later = replay(&schedule, &repaid, plus(d, 40));
        let a = arrears(&later, plus(d, 40));
        assert_eq!((a.days_past_due, a.overdue), (10, 1_100));

        // Applied in date order whatever the order given; a part payment leaves the rest overdue.
        let repaid = [(plus(d, 20), 500), (plus(d, 5), 600)];
        let state = replay(&schedule, &repaid, plus(d, 10));
        assert_eq!(state[0].1, paid(500, 100));
        let a = arrears(&state, plus(d, 10));
        assert_eq!((a.days_past_due, a.overdue), (10, 500));

        // A repayment beyond the debt only pays it off.
        let state = replay(&schedule, &[(plus(d, 1), 10_000_000)], plus(d, 1));
        assert_eq!((outstanding_principal(&state), owed(&state)), (0, 0));
    }

    #[test]
    fn par_counts_whole_loans_more_than_the_days_late() {
        let loans = [
            (1_000, 0),
            (2_000, 30),
            (3_000, 31),
            (4_000, 120),
            (5_000, 5),
        ];
        let loans = loans.map(|(outstanding_principal, days_past_due)| Exposure {
            outstanding_principal,
            days_past_due,
        });
        let p = par(&loans, 30);
        assert_eq!((p.at_risk, p.outstanding), (7_000, 15_000));
        assert_eq!(p.basis_points, Some(4_667), "46.666… %");
        assert_eq!(par(&loans, 0).at_risk, 14_000, "all but the current loan");
        assert_eq!(par(&loans, 90).basis_points, Some(2_667));
        assert_eq!(par(&[], 30).basis_points, None);
    }

    #[test]
    fn approvals_and_approvers() {
        assert_eq!(approvals_needed(100_000_000, 100_000_000), 1);
        assert_eq!(approvals_needed(100_000_001, 100_000_000), 2);
        assert_eq!(WRITE_OFF_APPROVALS, 2);
        assert!(check_approver::<&str>(&[], "officer-a").is_ok());
        assert!(check_approver(&["officer-a"], "officer-b").is_ok());
        let error = check_approver(&["officer-a".to_owned()], "officer-a").expect_err("twice");
        assert_eq!(error.code, "same_approver");
    }

    #[test]
    fn loan_states_follow_the_workflow() {
        use LoanState::*;
        assert_eq!(Applied.next(), [Approved, Rejected]);
        assert!(Approved.next().contains(&Rejected));
        assert!(!Disbursed.next().contains(&Rejected));
        assert!(Settled.next().is_empty() && WrittenOff.next().is_empty());
        assert_eq!("written_off".parse::<LoanState>(), Ok(WrittenOff));
    }

    #[test]
    fn eligibility_depends_on_the_product() {
        let facts = |requirement, permit, course| Facts {
            enrolled: true,
            has_valid_permit: permit,
            completed_technical_course: course,
            has_loan_in_arrears: false,
            requirement,
        };
        let rules = |f: &Facts| eligibility(f).iter().map(|c| c.rule).collect::<Vec<_>>();
        let ok = |f: &Facts| eligible(&eligibility(f));

        let none = facts(Requirement::None, false, false);
        assert_eq!(rules(&none), [Rule::Enrolled, Rule::NoArrears]);
        assert!(ok(&none));

        assert!(ok(&facts(Requirement::Permit, true, false)));
        assert!(!ok(&facts(Requirement::Permit, false, true)));
        assert_eq!(
            rules(&facts(Requirement::Permit, true, false))[1],
            Rule::Permit
        );

        assert!(ok(&facts(Requirement::TechnicalCourse, false, true)));
        assert!(!ok(&facts(Requirement::TechnicalCourse, true, false)));

        assert!(ok(&facts(Requirement::PermitOrCourse, true, false)));
        assert!(ok(&facts(Requirement::PermitOrCourse, false, true)));
        assert!(!ok(&facts(Requirement::PermitOrCourse, false, false)));

        let late = Facts {
            enrolled: false,
            has_loan_in_arrears: true,
            ..facts(Requirement::None, true, true)
        };
        let checks = eligibility(&late);
        assert!(checks.iter().all(|c| !c.passed));
        assert_eq!(
            checks[1].explanation,
            "another loan of this person is in arrears"
        );
    }
}
