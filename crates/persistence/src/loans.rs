//! Micro-loans: products, applications, approvals, disbursement with its schedule, repayments,
//! settlement and write-off. Money moves only as entries of the one ledger (`ledger_entries`,
//! the loan as the account): a loan's balance is their sum. Arrears are never stored; they are
//! computed from the schedule and the repayments as of any day (`tavana_domain::loan`).
//!
//! Every change of a loan takes the loan's lock first (PostgreSQL advisory lock; SQLite's write
//! transactions are serial), so two repayments cannot both be allocated against the same unpaid
//! instalments.

use std::collections::HashMap;

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde_json::json;
use tavana_domain::FieldError;
use tavana_domain::enrolment::EnrolmentState;
use tavana_domain::funds::MAX_AMOUNT;
use tavana_domain::id::{OrganisationId, PersonId, UserId};
use tavana_domain::loan::{
    self, AllocationError, Due, Exposure, Facts, LoanEntryKind, LoanState, Par, Requirement, Terms,
};
use tavana_domain::training::CourseCategory;

use crate::audit::{self, AuditContext, Event};
use crate::db::DbConnection;
use crate::error::StoreError;
use crate::schema::{
    enrolments, ledger_entries, loan_approvals, loan_instalments, loan_products, loans,
    organisations,
};
use crate::scope::{Scope, assigned_to};
use crate::tx::{lock, write_transaction};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = loan_products)]
pub struct Product {
    pub id: String,
    pub name: String,
    pub min_amount: i64,
    pub max_amount: i64,
    pub term_months: i32,
    pub grace_months: i32,
    pub fee_rate_bp: i32,
    pub requirement: String,
    pub funder_id: String,
    pub second_approval_above: i64,
    pub created_at: NaiveDateTime,
}

/// A product as configured.
#[derive(Debug, Clone)]
pub struct NewProduct {
    pub name: String,
    pub terms: Terms,
    pub requirement: Requirement,
    pub funder_id: OrganisationId,
    pub second_approval_above: i64,
}

fn corrupt(table: &str, id: &str, what: &str) -> StoreError {
    StoreError::Internal(format!("{table} row {id}: bad {what}"))
}

fn count(value: i32, table: &str, id: &str) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| corrupt(table, id, "count"))
}

impl Product {
    pub fn requirement(&self) -> Result<Requirement, StoreError> {
        self.requirement
            .parse()
            .map_err(|_| corrupt("loan_products", &self.id, "requirement"))
    }

    pub fn terms(&self) -> Result<Terms, StoreError> {
        Ok(Terms {
            min_amount: self.min_amount,
            max_amount: self.max_amount,
            term_months: count(self.term_months, "loan_products", &self.id)?,
            grace_months: count(self.grace_months, "loan_products", &self.id)?,
            fee_rate_bp: count(self.fee_rate_bp, "loan_products", &self.id)?,
        })
    }
}

pub fn create_product(
    conn: &mut DbConnection,
    context: &AuditContext,
    new: NewProduct,
) -> Result<Product, StoreError> {
    write_transaction(conn, |conn| {
        let funder: i64 = organisations::table
            .filter(organisations::id.eq(new.funder_id.to_string()))
            .count()
            .get_result(conn)?;
        if funder == 0 {
            return Err(FieldError::new("funder_id", "not_found", "no such organisation").into());
        }
        let taken: Option<String> = loan_products::table
            .filter(loan_products::name.eq(&new.name))
            .select(loan_products::id)
            .first(conn)
            .optional()?;
        if let Some(existing) = taken {
            return Err(StoreError::Exists {
                message: "a loan product has this name already".to_owned(),
                existing,
            });
        }
        let as_int = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
        let product = Product {
            id: uuid::Uuid::now_v7().to_string(),
            name: new.name,
            min_amount: new.terms.min_amount,
            max_amount: new.terms.max_amount,
            term_months: as_int(new.terms.term_months),
            grace_months: as_int(new.terms.grace_months),
            fee_rate_bp: as_int(new.terms.fee_rate_bp),
            requirement: new.requirement.as_str().to_owned(),
            funder_id: new.funder_id.to_string(),
            second_approval_above: new.second_approval_above,
            created_at: crate::now(),
        };
        diesel::insert_into(loan_products::table)
            .values(&product)
            .execute(conn)?;
        audit::append(
            conn,
            context,
            Event {
                action: "loan_product.create",
                entity: "loan_product",
                entity_id: Some(product.id.clone()),
                before: None,
                after: Some(json!({
                    "name": product.name, "min_amount": product.min_amount,
                    "max_amount": product.max_amount, "term_months": product.term_months,
                    "grace_months": product.grace_months, "fee_rate_bp": product.fee_rate_bp,
                    "requirement": product.requirement, "funder_id": product.funder_id,
                    "second_approval_above": product.second_approval_above,
                })),
            },
        )?;
        Ok(product)
    })
}

pub fn products(conn: &mut DbConnection) -> Result<Vec<Product>, StoreError> {
    Ok(loan_products::table
        .select(Product::as_select())
        .order(loan_products::name.asc())
        .load(conn)?)
}

fn product(conn: &mut DbConnection, id: &str) -> Result<Product, StoreError> {
    Ok(loan_products::table
        .find(id)
        .select(Product::as_select())
        .first(conn)?)
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = loans)]
pub struct LoanRow {
    pub id: String,
    pub product_id: String,
    pub person_id: String,
    pub neighbourhood_id: String,
    pub amount: i64,
    pub purpose: String,
    pub state: String,
    pub term_months: i32,
    pub grace_months: i32,
    pub fee_rate_bp: i32,
    pub approvals_needed: i32,
    pub applied_on: NaiveDate,
    pub rejection_reason: Option<String>,
    pub disbursed_on: Option<NaiveDate>,
    pub closed_on: Option<NaiveDate>,
    pub version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl LoanRow {
    pub fn state(&self) -> Result<LoanState, StoreError> {
        self.state
            .parse()
            .map_err(|_| corrupt("loans", &self.id, "state"))
    }

    fn terms(&self) -> Result<Terms, StoreError> {
        Ok(Terms {
            min_amount: self.amount,
            max_amount: self.amount,
            term_months: count(self.term_months, "loans", &self.id)?,
            grace_months: count(self.grace_months, "loans", &self.id)?,
            fee_rate_bp: count(self.fee_rate_bp, "loans", &self.id)?,
        })
    }
}

/// A loan with what is derived from its schedule and ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loan {
    pub row: LoanRow,
    pub approvals: Vec<String>,
    pub write_off_approvals: Vec<String>,
    /// Each instalment with what has been paid of it by `as_of`.
    pub schedule: Vec<(Due, loan::Paid)>,
    /// What the borrower owes by the ledger: disbursement and fees less repayments, waivers and
    /// a write-off (fees count from the disbursement: the schedule charges them all at once).
    pub balance: i64,
    pub arrears: loan::Arrears,
    pub as_of: NaiveDate,
}

/// The loans the scope allows, as a boxed query to filter further.
fn scoped<'a>(scope: &Scope) -> loans::BoxedQuery<'a, crate::db::MultiBackend> {
    let mut query = loans::table.into_boxed();
    if let Scope::UserAreas(user) = scope {
        query = query.filter(loans::neighbourhood_id.eq_any(assigned_to(*user)));
    }
    query
}

fn row(conn: &mut DbConnection, scope: &Scope, id: &str) -> Result<LoanRow, StoreError> {
    Ok(scoped(scope)
        .filter(loans::id.eq(id.to_owned()))
        .select(LoanRow::as_select())
        .first(conn)?)
}

/// The schedule of loans (by id) and their repayments (dated, positive), for replaying.
type History = (
    HashMap<String, Vec<Due>>,
    HashMap<String, Vec<(NaiveDate, i64)>>,
);

fn histories(conn: &mut DbConnection, ids: &[String]) -> Result<History, StoreError> {
    let mut schedules: HashMap<String, Vec<Due>> = HashMap::new();
    let rows: Vec<(String, i32, NaiveDate, i64, i64)> = loan_instalments::table
        .filter(loan_instalments::loan_id.eq_any(ids))
        .select((
            loan_instalments::loan_id,
            loan_instalments::number,
            loan_instalments::due_on,
            loan_instalments::principal,
            loan_instalments::fee,
        ))
        .order((loan_instalments::loan_id, loan_instalments::number))
        .load(conn)?;
    for (loan, number, due_on, principal, fee) in rows {
        let number = count(number, "loan_instalments", &loan)?;
        schedules.entry(loan).or_default().push(Due {
            number,
            due_on,
            principal,
            fee,
        });
    }
    let mut repayments: HashMap<String, Vec<(NaiveDate, i64)>> = HashMap::new();
    let rows: Vec<(Option<String>, NaiveDate, i64)> = ledger_entries::table
        .filter(ledger_entries::loan_id.eq_any(ids))
        .filter(ledger_entries::kind.eq(LoanEntryKind::Repayment.as_str()))
        .select((
            ledger_entries::loan_id,
            ledger_entries::effective_on,
            ledger_entries::amount,
        ))
        .order(ledger_entries::id.asc())
        .load(conn)?;
    for (loan, on, amount) in rows {
        if let Some(loan) = loan {
            repayments.entry(loan).or_default().push((on, -amount));
        }
    }
    Ok((schedules, repayments))
}

fn balance(conn: &mut DbConnection, id: &str) -> Result<i64, StoreError> {
    let sum: Option<i64> = ledger_entries::table
        .filter(ledger_entries::loan_id.eq(id))
        .select(diesel::dsl::sql::<
            diesel::sql_types::Nullable<diesel::sql_types::BigInt>,
        >("CAST(SUM(ledger_entries.amount) AS BIGINT)"))
        .first(conn)?;
    Ok(sum.unwrap_or(0))
}

fn approvers(conn: &mut DbConnection, id: &str, decision: &str) -> Result<Vec<String>, StoreError> {
    Ok(loan_approvals::table
        .filter(loan_approvals::loan_id.eq(id))
        .filter(loan_approvals::decision.eq(decision))
        .select(loan_approvals::approver_id)
        .order(loan_approvals::decided_at.asc())
        .load(conn)?)
}

fn assemble(conn: &mut DbConnection, row: LoanRow, as_of: NaiveDate) -> Result<Loan, StoreError> {
    let (mut schedules, mut repayments) = histories(conn, std::slice::from_ref(&row.id))?;
    let schedule = loan::replay(
        &schedules.remove(&row.id).unwrap_or_default(),
        &repayments.remove(&row.id).unwrap_or_default(),
        as_of,
    );
    // A settled or written-off loan owes nothing from its closing day: settlement waives the
    // later fees and a write-off ends the debt, which the schedule alone does not show.
    let closed = matches!(row.state()?, LoanState::Settled | LoanState::WrittenOff)
        && row.closed_on.is_some_and(|d| d <= as_of);
    let arrears = if closed {
        loan::Arrears {
            days_past_due: 0,
            overdue: 0,
            bucket: None,
        }
    } else {
        loan::arrears(&schedule, as_of)
    };
    Ok(Loan {
        approvals: approvers(conn, &row.id, "approval")?,
        write_off_approvals: approvers(conn, &row.id, "write_off")?,
        balance: balance(conn, &row.id)?,
        schedule,
        arrears,
        as_of,
        row,
    })
}

/// A loan in scope, its schedule and arrears as of `as_of`.
pub fn get(
    conn: &mut DbConnection,
    scope: &Scope,
    id: &str,
    as_of: NaiveDate,
) -> Result<Loan, StoreError> {
    let row = row(conn, scope, id)?;
    assemble(conn, row, as_of)
}

/// Loans in scope, newest first, optionally of one state or person.
pub fn list(
    conn: &mut DbConnection,
    scope: &Scope,
    state: Option<LoanState>,
    person: Option<PersonId>,
    limit: i64,
) -> Result<Vec<LoanRow>, StoreError> {
    let mut query = scoped(scope).select(LoanRow::as_select());
    if let Some(state) = state {
        query = query.filter(loans::state.eq(state.as_str()));
    }
    if let Some(person) = person {
        query = query.filter(loans::person_id.eq(person.to_string()));
    }
    Ok(query.order(loans::id.desc()).limit(limit).load(conn)?)
}

/// Whether any disbursed loan of the person is past due on `on`, or any was written off.
fn in_arrears(conn: &mut DbConnection, person: &str, on: NaiveDate) -> Result<bool, StoreError> {
    let written_off: i64 = loans::table
        .filter(loans::person_id.eq(person))
        .filter(loans::state.eq(LoanState::WrittenOff.as_str()))
        .count()
        .get_result(conn)?;
    if written_off > 0 {
        return Ok(true);
    }
    let ids: Vec<String> = loans::table
        .filter(loans::person_id.eq(person))
        .filter(loans::state.eq(LoanState::Disbursed.as_str()))
        .select(loans::id)
        .load(conn)?;
    let (schedules, repayments) = histories(conn, &ids)?;
    Ok(ids.iter().any(|id| {
        let state = loan::replay(
            schedules.get(id).map_or(&[][..], Vec::as_slice),
            repayments.get(id).map_or(&[][..], Vec::as_slice),
            on,
        );
        loan::arrears(&state, on).days_past_due > 0
    }))
}

/// An application as made.
#[derive(Debug, Clone)]
pub struct NewLoan {
    pub person_id: PersonId,
    pub product_id: String,
    pub amount: i64,
    pub purpose: String,
    pub on: NaiveDate,
}

/// What applying came to: a loan applied for, or the rules the person does not meet.
#[derive(Debug, Clone)]
pub enum ApplyOutcome {
    Applied(Box<Loan>),
    Ineligible(Vec<loan::Check>),
}

pub fn apply(
    conn: &mut DbConnection,
    context: &AuditContext,
    scope: &Scope,
    new: NewLoan,
    today: NaiveDate,
) -> Result<ApplyOutcome, StoreError> {
    if new.on > today {
        return Err(FieldError::new("applied_on", "in_future", "must not be in the future").into());
    }
    write_transaction(conn, |conn| {
        let person = match crate::persons::get(conn, scope, new.person_id) {
            Err(StoreError::NotFound) => {
                return Err(FieldError::new(
                    "person_id",
                    "not_found",
                    "no such person in your scope",
                )
                .into());
            }
            other => other?,
        };
        let (Some(household), Some(neighbourhood)) = (person.household_id, person.neighbourhood_id)
        else {
            return Err(FieldError::new(
                "person_id",
                "no_household",
                "the person belongs to no household, so to no neighbourhood",
            )
            .into());
        };
        let product = match product(conn, &new.product_id) {
            Err(StoreError::NotFound) => {
                return Err(
                    FieldError::new("product_id", "not_found", "no such loan product").into(),
                );
            }
            other => other?,
        };
        loan::check_amount(&product.terms()?, new.amount)?;
        let person_key = new.person_id.to_string();
        lock(conn, &format!("loans:{person_key}"))?;
        let enrolled: i64 = enrolments::table
            .filter(enrolments::household_id.eq(household.to_string()))
            .filter(
                enrolments::state.eq_any(crate::permits::ENROLLED_OR_FURTHER.map(|s| s.as_str())),
            )
            .count()
            .get_result(conn)?;
        let facts = Facts {
            enrolled: enrolled > 0,
            // As of today, whatever day the application is dated: a past date must not pass a
            // permit since lapsed or a loan since fallen into arrears.
            has_valid_permit: crate::supporters::has_valid_permit(conn, &person_key, today)?,
            completed_technical_course: crate::cohorts::has_completed(
                conn,
                new.person_id,
                CourseCategory::TechnicalVocational,
            )?,
            has_loan_in_arrears: in_arrears(conn, &person_key, today)?,
            requirement: product.requirement()?,
        };
        let checks = loan::eligibility(&facts);
        if !loan::eligible(&checks) {
            return Ok(ApplyOutcome::Ineligible(checks));
        }
        let now = crate::now();
        let row = LoanRow {
            id: uuid::Uuid::now_v7().to_string(),
            product_id: product.id.clone(),
            person_id: person_key,
            neighbourhood_id: neighbourhood.to_string(),
            amount: new.amount,
            purpose: new.purpose,
            state: LoanState::Applied.as_str().to_owned(),
            term_months: product.term_months,
            grace_months: product.grace_months,
            fee_rate_bp: product.fee_rate_bp,
            approvals_needed: i32::try_from(loan::approvals_needed(
                new.amount,
                product.second_approval_above,
            ))
            .unwrap_or(2),
            applied_on: new.on,
            rejection_reason: None,
            disbursed_on: None,
            closed_on: None,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        diesel::insert_into(loans::table)
            .values(&row)
            .execute(conn)?;
        record(conn, context, "loan.apply", &row, None)?;
        Ok(ApplyOutcome::Applied(Box::new(assemble(
            conn, row, new.on,
        )?)))
    })
}

fn record(
    conn: &mut DbConnection,
    context: &AuditContext,
    action: &str,
    after: &LoanRow,
    detail: Option<serde_json::Value>,
) -> Result<(), StoreError> {
    audit::append(
        conn,
        context,
        Event {
            action,
            entity: "loan",
            entity_id: Some(after.id.clone()),
            before: None,
            after: Some(json!({
                "state": after.state, "amount": after.amount, "product_id": after.product_id,
                "person_id": after.person_id, "version": after.version, "detail": detail,
            })),
        },
    )
}

/// The loan locked for a change, if it is in one of `from`; otherwise a conflict naming where it
/// may go.
fn locked(
    conn: &mut DbConnection,
    scope: &Scope,
    id: &str,
    to: LoanState,
) -> Result<LoanRow, StoreError> {
    // Found (or not) in scope first, so that an outsider learns nothing from the lock.
    row(conn, scope, id)?;
    lock(conn, &format!("loan:{id}"))?;
    let current = row(conn, scope, id)?;
    let state = current.state()?;
    if !state.next().contains(&to) {
        let allowed: Vec<&str> = state.next().iter().map(|s| s.as_str()).collect();
        return Err(StoreError::Conflict(format!(
            "a loan that is {state} cannot become {to}; it may become: {}",
            if allowed.is_empty() {
                "nothing (it is final)".to_owned()
            } else {
                allowed.join(", ")
            }
        )));
    }
    Ok(current)
}

fn save(
    conn: &mut DbConnection,
    mut row: LoanRow,
    state: LoanState,
    change: impl FnOnce(&mut LoanRow),
) -> Result<LoanRow, StoreError> {
    row.state = state.as_str().to_owned();
    change(&mut row);
    row.version += 1;
    row.updated_at = crate::now();
    diesel::update(loans::table.find(&row.id))
        .set((
            loans::state.eq(&row.state),
            loans::rejection_reason.eq(&row.rejection_reason),
            loans::disbursed_on.eq(row.disbursed_on),
            loans::closed_on.eq(row.closed_on),
            loans::version.eq(row.version),
            loans::updated_at.eq(row.updated_at),
        ))
        .execute(conn)?;
    Ok(row)
}

fn add_approval(
    conn: &mut DbConnection,
    id: &str,
    decision: &str,
    approver: UserId,
    note: Option<String>,
) -> Result<Vec<String>, StoreError> {
    let mut existing = approvers(conn, id, decision)?;
    let approver = approver.to_string();
    loan::check_approver(&existing, &approver)?;
    diesel::insert_into(loan_approvals::table)
        .values((
            loan_approvals::loan_id.eq(id),
            loan_approvals::decision.eq(decision),
            loan_approvals::approver_id.eq(&approver),
            loan_approvals::decided_at.eq(crate::now()),
            loan_approvals::note.eq(note),
        ))
        .execute(conn)?;
    existing.push(approver);
    Ok(existing)
}

/// One approval by a programme manager; the loan is approved when it has as many as its amount
/// needs (a second, different approver above the product's threshold).
pub fn approve(
    conn: &mut DbConnection,
    context: &AuditContext,
    scope: &Scope,
    id: &str,
    approver: UserId,
    note: Option<String>,
    today: NaiveDate,
) -> Result<Loan, StoreError> {
    write_transaction(conn, |conn| {
        let current = locked(conn, scope, id, LoanState::Approved)?;
        let approvals = add_approval(conn, id, "approval", approver, note)?;
        let enough = i32::try_from(approvals.len()).unwrap_or(i32::MAX) >= current.approvals_needed;
        let row = if enough {
            save(conn, current, LoanState::Approved, |_| {})?
        } else {
            current
        };
        record(
            conn,
            context,
            "loan.approve",
            &row,
            Some(json!({"approvals": approvals.len(), "needed": row.approvals_needed})),
        )?;
        assemble(conn, row, today)
    })
}

/// Rejects an application, or cancels an approved loan before its money has left.
pub fn reject(
    conn: &mut DbConnection,
    context: &AuditContext,
    scope: &Scope,
    id: &str,
    reason: String,
    today: NaiveDate,
) -> Result<Loan, StoreError> {
    write_transaction(conn, |conn| {
        let current = locked(conn, scope, id, LoanState::Rejected)?;
        let row = save(conn, current, LoanState::Rejected, |r| {
            r.rejection_reason = Some(reason);
            r.closed_on = Some(today);
        })?;
        record(conn, context, "loan.reject", &row, None)?;
        assemble(conn, row, today)
    })
}

/// Posts one entry to a loan's account in the ledger.
fn post(
    conn: &mut DbConnection,
    context: &AuditContext,
    loan: &str,
    kind: LoanEntryKind,
    amount: i64,
    on: NaiveDate,
    note: Option<String>,
) -> Result<(), StoreError> {
    if amount == 0 {
        return Ok(());
    }
    diesel::insert_into(ledger_entries::table)
        .values(crate::supporters::Entry {
            id: uuid::Uuid::now_v7().to_string(),
            supporter_id: None,
            kind: kind.as_str().to_owned(),
            amount,
            purchase_id: None,
            effective_on: on,
            note,
            recorded_by: context.actor.id(),
            recorded_at: crate::now(),
            loan_id: Some(loan.to_owned()),
        })
        .execute(conn)?;
    Ok(())
}

/// Pays the loan out on `on`: its schedule is made by the domain's one function and stored, the
/// amount and the schedule's fees are posted, and the household's enrolment moves to `financed`
/// in the programmes whose rules say so.
pub fn disburse(
    conn: &mut DbConnection,
    context: &AuditContext,
    scope: &Scope,
    id: &str,
    on: NaiveDate,
    today: NaiveDate,
) -> Result<Loan, StoreError> {
    write_transaction(conn, |conn| {
        let current = locked(conn, scope, id, LoanState::Disbursed)?;
        if on < current.applied_on || on > today {
            return Err(FieldError::new(
                "disbursed_on",
                "out_of_range",
                "must be between the day of the application and today",
            )
            .into());
        }
        let schedule =
            loan::schedule(&current.terms()?, current.amount, on).map_err(StoreError::Invalid)?;
        for instalment in &schedule {
            diesel::insert_into(loan_instalments::table)
                .values((
                    loan_instalments::loan_id.eq(id),
                    loan_instalments::number
                        .eq(i32::try_from(instalment.number).unwrap_or(i32::MAX)),
                    loan_instalments::due_on.eq(instalment.due_on),
                    loan_instalments::principal.eq(instalment.principal),
                    loan_instalments::fee.eq(instalment.fee),
                ))
                .execute(conn)?;
        }
        post(
            conn,
            context,
            id,
            LoanEntryKind::Disbursement,
            current.amount,
            on,
            None,
        )?;
        let fees: i64 = schedule.iter().map(|i| i.fee).sum();
        post(
            conn,
            context,
            id,
            LoanEntryKind::Fee,
            fees,
            on,
            Some(format!("service fee of {} instalments", schedule.len())),
        )?;
        let person: PersonId = current
            .person_id
            .parse()
            .map_err(|_| corrupt("loans", id, "person_id"))?;
        let row = save(conn, current, LoanState::Disbursed, |r| {
            r.disbursed_on = Some(on)
        })?;
        // Every row before the audit log's order lock (see `enrolments::move_row`).
        let moved = crate::enrolments::advance_household(
            conn,
            context,
            person,
            EnrolmentState::Financed,
            on,
            format!("micro-loan {id} disbursed"),
        )?
        .record(conn, context)?;
        record(
            conn,
            context,
            "loan.disburse",
            &row,
            Some(
                json!({"instalments": schedule.len(), "fees": fees, "enrolments_financed": moved}),
            ),
        )?;
        assemble(conn, row, today)
    })
}

/// The disbursed loan with everything recorded so far allocated, for a repayment on `on`.
fn disbursed_state(
    conn: &mut DbConnection,
    current: &LoanRow,
    on: NaiveDate,
) -> Result<Vec<(Due, loan::Paid)>, StoreError> {
    let disbursed_on = current
        .disbursed_on
        .ok_or_else(|| corrupt("loans", &current.id, "disbursed_on"))?;
    if on < disbursed_on {
        return Err(FieldError::new(
            "paid_on",
            "before_disbursement",
            "a repayment cannot come before the loan was paid out",
        )
        .into());
    }
    let (mut schedules, mut repayments) = histories(conn, std::slice::from_ref(&current.id))?;
    // Every repayment recorded, whatever its date: the money has been received.
    Ok(loan::replay(
        &schedules.remove(&current.id).unwrap_or_default(),
        &repayments.remove(&current.id).unwrap_or_default(),
        NaiveDate::MAX,
    ))
}

/// Records a repayment. It pays the oldest instalment first, fee before principal, and may pay
/// ahead. More than is still owed is refused (the stated rule: no credit is kept), and the loan
/// is settled when nothing is owed.
pub fn repay(
    conn: &mut DbConnection,
    context: &AuditContext,
    scope: &Scope,
    id: &str,
    amount: i64,
    on: NaiveDate,
    today: NaiveDate,
) -> Result<Loan, StoreError> {
    write_transaction(conn, |conn| {
        // A repayment keeps the loan disbursed (or settles it): check it may be settled.
        let current = locked(conn, scope, id, LoanState::Settled)?;
        if on > today {
            return Err(
                FieldError::new("paid_on", "in_future", "must not be in the future").into(),
            );
        }
        let state = disbursed_state(conn, &current, on)?;
        let owed = loan::owed(&state);
        if amount > MAX_AMOUNT {
            return Err(
                FieldError::new("amount", "out_of_range", "beyond any plausible amount").into(),
            );
        }
        loan::allocate(&state, amount).map_err(|e| match e {
            AllocationError::NotPositive => {
                FieldError::new("amount", "out_of_range", e.to_string())
            }
            AllocationError::Overpayment { .. } => FieldError::new(
                "amount",
                "overpayment",
                format!("{e}; {owed} rials are owed, and no credit is kept"),
            ),
        })?;
        post(
            conn,
            context,
            id,
            LoanEntryKind::Repayment,
            -amount,
            on,
            None,
        )?;
        let row = if amount == owed {
            // Closed on the last payment's day, which may be later than this one's date.
            let last: Option<NaiveDate> = ledger_entries::table
                .filter(ledger_entries::loan_id.eq(id))
                .filter(ledger_entries::kind.eq(LoanEntryKind::Repayment.as_str()))
                .select(diesel::dsl::max(ledger_entries::effective_on))
                .first(conn)?;
            let closed = last.map_or(on, |d| d.max(on));
            save(conn, current, LoanState::Settled, |r| {
                r.closed_on = Some(closed)
            })?
        } else {
            current
        };
        record(
            conn,
            context,
            "loan.repay",
            &row,
            Some(json!({"amount": amount, "paid_on": on})),
        )?;
        assemble(conn, row, today)
    })
}

/// What settling the loan on `on` takes (see `loan::settlement`).
pub fn settlement_quote(
    conn: &mut DbConnection,
    scope: &Scope,
    id: &str,
    on: NaiveDate,
) -> Result<loan::Settlement, StoreError> {
    let current = row(conn, scope, id)?;
    if current.state()? != LoanState::Disbursed {
        return Err(StoreError::Conflict(format!(
            "only a disbursed loan can be settled; this one is {}",
            current.state
        )));
    }
    let state = disbursed_state(conn, &current, on)?;
    Ok(loan::settlement(&state, on))
}

/// Early settlement on `on`: the borrower pays the settlement amount, the later fees are waived,
/// and the loan is settled.
pub fn settle(
    conn: &mut DbConnection,
    context: &AuditContext,
    scope: &Scope,
    id: &str,
    on: NaiveDate,
    amount: i64,
    today: NaiveDate,
) -> Result<Loan, StoreError> {
    write_transaction(conn, |conn| {
        let current = locked(conn, scope, id, LoanState::Settled)?;
        if on > today {
            return Err(FieldError::new("on", "in_future", "must not be in the future").into());
        }
        let state = disbursed_state(conn, &current, on)?;
        let settlement = loan::settlement(&state, on);
        // The money handed over, checked against the quote: the ledger records what was paid.
        if amount != settlement.total() {
            return Err(FieldError::new(
                "amount",
                "settlement_differs",
                format!(
                    "settling on {on} takes {} rials (GET /loans/{{id}}/settlement?on={on})",
                    settlement.total()
                ),
            )
            .into());
        }
        post(
            conn,
            context,
            id,
            LoanEntryKind::Repayment,
            -settlement.total(),
            on,
            Some("early settlement".to_owned()),
        )?;
        post(
            conn,
            context,
            id,
            LoanEntryKind::FeeWaiver,
            -settlement.waived_fee,
            on,
            Some("fees after early settlement".to_owned()),
        )?;
        let row = save(conn, current, LoanState::Settled, |r| {
            r.closed_on = Some(on)
        })?;
        record(
            conn,
            context,
            "loan.settle",
            &row,
            Some(
                json!({"principal": settlement.principal, "fee": settlement.fee, "waived_fee": settlement.waived_fee}),
            ),
        )?;
        assemble(conn, row, today)
    })
}

/// One approval of writing the loan off; at the second, by another manager, what is owed is
/// written off in the ledger and the loan is closed.
pub fn write_off(
    conn: &mut DbConnection,
    context: &AuditContext,
    scope: &Scope,
    id: &str,
    approver: UserId,
    note: Option<String>,
    today: NaiveDate,
) -> Result<Loan, StoreError> {
    write_transaction(conn, |conn| {
        let current = locked(conn, scope, id, LoanState::WrittenOff)?;
        let approvals = add_approval(conn, id, "write_off", approver, note)?;
        let row = if u32::try_from(approvals.len()).unwrap_or(u32::MAX) >= loan::WRITE_OFF_APPROVALS
        {
            // Fees not yet earned are waived, not written off as a loss.
            let state = disbursed_state(conn, &current, today)?;
            let waived = loan::settlement(&state, today).waived_fee;
            post(
                conn,
                context,
                id,
                LoanEntryKind::FeeWaiver,
                -waived,
                today,
                Some("fees after the write-off".to_owned()),
            )?;
            let owed = balance(conn, id)?;
            post(
                conn,
                context,
                id,
                LoanEntryKind::WriteOff,
                -owed,
                today,
                None,
            )?;
            save(conn, current, LoanState::WrittenOff, |r| {
                r.closed_on = Some(today)
            })?
        } else {
            current
        };
        record(
            conn,
            context,
            "loan.write_off",
            &row,
            Some(json!({"approvals": approvals.len(), "needed": loan::WRITE_OFF_APPROVALS})),
        )?;
        assemble(conn, row, today)
    })
}

/// Portfolio at risk as of a day, overall and by neighbourhood and product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Portfolio {
    pub as_of: NaiveDate,
    pub days: i64,
    pub total: Par,
    pub loans: usize,
    pub by_neighbourhood: Vec<(String, Par)>,
    pub by_product: Vec<(String, Par)>,
}

/// PAR over the loans in scope that were out on `as_of`: disbursed by then and not yet settled
/// or written off by then. Each is replayed with the repayments made by that day.
pub fn portfolio(
    conn: &mut DbConnection,
    scope: &Scope,
    as_of: NaiveDate,
    days: i64,
) -> Result<Portfolio, StoreError> {
    let rows: Vec<(String, String, String, Option<NaiveDate>)> = scoped(scope)
        .filter(loans::disbursed_on.le(as_of))
        .filter(loans::closed_on.is_null().or(loans::closed_on.gt(as_of)))
        .select((
            loans::id,
            loans::neighbourhood_id,
            loans::product_id,
            loans::closed_on,
        ))
        .load(conn)?;
    let ids: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    let (schedules, repayments) = histories(conn, &ids)?;
    let mut all = Vec::new();
    let mut by_neighbourhood: HashMap<String, Vec<Exposure>> = HashMap::new();
    let mut by_product: HashMap<String, Vec<Exposure>> = HashMap::new();
    for (id, neighbourhood, product, _) in &rows {
        let state = loan::replay(
            schedules.get(id).map_or(&[][..], Vec::as_slice),
            repayments.get(id).map_or(&[][..], Vec::as_slice),
            as_of,
        );
        let exposure = Exposure {
            outstanding_principal: loan::outstanding_principal(&state),
            days_past_due: loan::arrears(&state, as_of).days_past_due,
        };
        all.push(exposure);
        by_neighbourhood
            .entry(neighbourhood.clone())
            .or_default()
            .push(exposure);
        by_product
            .entry(product.clone())
            .or_default()
            .push(exposure);
    }
    let sorted = |groups: HashMap<String, Vec<Exposure>>| {
        let mut out: Vec<(String, Par)> = groups
            .into_iter()
            .map(|(key, loans)| (key, loan::par(&loans, days)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    };
    Ok(Portfolio {
        as_of,
        days,
        total: loan::par(&all, days),
        loans: rows.len(),
        by_neighbourhood: sorted(by_neighbourhood),
        by_product: sorted(by_product),
    })
}
