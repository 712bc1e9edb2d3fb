//! Home-business supporters of a neighbourhood, the producers linked to them, and their funds: an
//! append-only ledger whose sum is the balance, which can never go below zero.
//!
//! How the balance stays non-negative under concurrency, on both backends and with any number of
//! server workers or replicas: every ledger entry is posted by [`post`] inside the caller's write
//! transaction, which first takes a lock on the supporter's ledger (a transaction-scoped advisory
//! lock on PostgreSQL; SQLite's write transactions are serial already), then reads the balance,
//! checks it, and writes the entry and the new balance together. The `supporter_balances` row
//! also carries `CHECK (balance >= 0)`, so even a writer that forgot the lock could not commit an
//! overdraft.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde_json::json;
use tavana_domain::FieldError;
use tavana_domain::access::Role;
use tavana_domain::funds::{LedgerKind, MAX_AMOUNT, concentrated, take};
use tavana_domain::id::{AreaId, OrganisationId, PersonId, ProgrammeId, UserId};

use crate::audit::{self, AuditContext, Event};
use crate::db::{DbConnection, MultiBackend};
use crate::error::StoreError;
use crate::schema::{
    areas, ledger_entries, permits, persons, producer_links, purchases, supporter_balances,
    supporters,
};
use crate::scope::{Scope, assigned_to};
use crate::tx::{lock, write_transaction};

/// A supporter: who (a person or an organisation), the account acting for them, where, and when.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = supporters)]
pub struct Supporter {
    pub id: String,
    pub user_id: String,
    pub person_id: Option<String>,
    pub organisation_id: Option<String>,
    pub programme_id: String,
    pub neighbourhood_id: String,
    pub starts_on: NaiveDate,
    pub ends_on: Option<NaiveDate>,
    pub created_at: NaiveDateTime,
}

impl Supporter {
    pub fn active_on(&self, day: NaiveDate) -> bool {
        self.starts_on <= day && self.ends_on.is_none_or(|end| end >= day)
    }
}

/// Who may see which supporters: the caller's neighbourhoods, and for a supporter's own account
/// only the supporter records it acts for.
#[derive(Debug, Clone)]
pub struct Access {
    pub scope: Scope,
    pub own_user: Option<UserId>,
}

impl Access {
    pub fn new(scope: Scope, role: Option<Role>, user: Option<UserId>) -> Self {
        Access {
            scope,
            own_user: user.filter(|_| role == Some(Role::Supporter)),
        }
    }
}

fn scoped<'a>(access: &Access) -> supporters::BoxedQuery<'a, MultiBackend> {
    let mut query = supporters::table.into_boxed();
    if let Scope::UserAreas(user) = &access.scope {
        query = query.filter(supporters::neighbourhood_id.eq_any(assigned_to(*user)));
    }
    if let Some(user) = access.own_user {
        query = query.filter(supporters::user_id.eq(user.to_string()));
    }
    query
}

pub fn get(conn: &mut DbConnection, access: &Access, id: &str) -> Result<Supporter, StoreError> {
    Ok(scoped(access)
        .filter(supporters::id.eq(id.to_owned()))
        .select(Supporter::as_select())
        .first(conn)?)
}

/// A supporter as submitted.
#[derive(Debug, Clone)]
pub struct NewSupporter {
    pub user_id: UserId,
    pub person_id: Option<PersonId>,
    pub organisation_id: Option<OrganisationId>,
    pub programme_id: ProgrammeId,
    pub neighbourhood_id: AreaId,
    pub starts_on: NaiveDate,
    pub ends_on: Option<NaiveDate>,
}

fn not_found(field: &str, message: &str) -> StoreError {
    FieldError::new(field, "not_found", message).into()
}

/// Designates a supporter for a neighbourhood. No more than the programme's limit may overlap.
pub fn create(
    conn: &mut DbConnection,
    context: &AuditContext,
    scope: &Scope,
    new: NewSupporter,
) -> Result<Supporter, StoreError> {
    write_transaction(conn, |conn| {
        crate::households::check_neighbourhood(conn, scope, new.neighbourhood_id)?;
        let programme = match crate::programmes::get(conn, new.programme_id) {
            Err(StoreError::NotFound) => {
                return Err(not_found("programme_id", "no such programme"));
            }
            other => other?,
        };
        match crate::users::get(conn, new.user_id) {
            Ok(user) if user.role == Role::Supporter && user.active => {
                if !Scope::UserAreas(new.user_id).covers(conn, new.neighbourhood_id)? {
                    return Err(FieldError::new(
                        "user_id",
                        "outside_neighbourhood",
                        "the supporter's account is not assigned to this neighbourhood",
                    )
                    .into());
                }
            }
            Ok(_) | Err(StoreError::NotFound) => {
                return Err(FieldError::new(
                    "user_id",
                    "not_a_supporter",
                    "no active user with the supporter role has this id",
                )
                .into());
            }
            Err(other) => return Err(other),
        }
        match (new.person_id, new.organisation_id) {
            (Some(person), None) => {
                if let Err(StoreError::NotFound) = crate::persons::get(conn, scope, person) {
                    return Err(not_found("person_id", "no such person in your scope"));
                }
            }
            (None, Some(organisation)) => {
                if let Err(StoreError::NotFound) = crate::organisations::get(conn, organisation) {
                    return Err(not_found("organisation_id", "no such organisation"));
                }
            }
            _ => {
                return Err(FieldError::new(
                    "person_id",
                    "one_of",
                    "a supporter is a person or an organisation: give exactly one of person_id and organisation_id",
                )
                .into());
            }
        }
        if new.ends_on.is_some_and(|end| end < new.starts_on) {
            return Err(FieldError::new("ends_on", "before_start", "ends before it starts").into());
        }
        let hood = new.neighbourhood_id.to_string();
        lock(conn, &format!("supporters:{hood}"))?;
        let mut overlapping = supporters::table
            .filter(supporters::neighbourhood_id.eq(&hood))
            .filter(supporters::programme_id.eq(new.programme_id.to_string()))
            .filter(
                supporters::ends_on
                    .is_null()
                    .or(supporters::ends_on.ge(new.starts_on)),
            )
            .select((supporters::starts_on, supporters::ends_on))
            .into_boxed();
        if let Some(end) = new.ends_on {
            overlapping = overlapping.filter(supporters::starts_on.le(end));
        }
        let periods: Vec<(NaiveDate, Option<NaiveDate>)> = overlapping.load(conn)?;
        // The most supporters active at once during the new period; the count peaks on a day
        // some period starts.
        let peak = std::iter::once(new.starts_on)
            .chain(
                periods
                    .iter()
                    .map(|(start, _)| *start)
                    .filter(|d| *d > new.starts_on),
            )
            .map(|day| {
                periods
                    .iter()
                    .filter(|(start, end)| *start <= day && end.is_none_or(|e| e >= day))
                    .count()
            })
            .max()
            .unwrap_or(0);
        let limit = programme.supporters_per_neighbourhood;
        if i64::try_from(peak).unwrap_or(i64::MAX) >= i64::from(limit) {
            return Err(StoreError::Conflict(format!(
                "the neighbourhood would have more than {limit} supporters at once in this period"
            )));
        }
        let supporter = Supporter {
            id: uuid::Uuid::now_v7().to_string(),
            user_id: new.user_id.to_string(),
            person_id: new.person_id.map(|p| p.to_string()),
            organisation_id: new.organisation_id.map(|o| o.to_string()),
            programme_id: new.programme_id.to_string(),
            neighbourhood_id: hood,
            starts_on: new.starts_on,
            ends_on: new.ends_on,
            created_at: crate::now(),
        };
        diesel::insert_into(supporters::table)
            .values(&supporter)
            .execute(conn)?;
        diesel::insert_into(supporter_balances::table)
            .values((
                supporter_balances::supporter_id.eq(&supporter.id),
                supporter_balances::balance.eq(0_i64),
            ))
            .execute(conn)?;
        audit::append(
            conn,
            context,
            Event {
                action: "supporter.create",
                entity: "supporter",
                entity_id: Some(supporter.id.clone()),
                before: None,
                after: Some(json!({
                    "user_id": supporter.user_id,
                    "person_id": supporter.person_id,
                    "organisation_id": supporter.organisation_id,
                    "neighbourhood_id": supporter.neighbourhood_id,
                    "starts_on": supporter.starts_on.to_string(),
                    "ends_on": supporter.ends_on.map(|d| d.to_string()),
                })),
            },
        )?;
        Ok(supporter)
    })
}

/// Ends a supporter's designation on `on`.
pub fn end(
    conn: &mut DbConnection,
    context: &AuditContext,
    access: &Access,
    id: &str,
    on: NaiveDate,
) -> Result<Supporter, StoreError> {
    write_transaction(conn, |conn| {
        let before = get(conn, access, id)?;
        if on < before.starts_on {
            return Err(FieldError::new("ends_on", "before_start", "ends before it starts").into());
        }
        // Only ever brought forward: extending an ended designation could exceed the limit.
        if let Some(end) = before.ends_on
            && on > end
        {
            return Err(FieldError::new(
                "ends_on",
                "after_end",
                format!("the designation ended on {end}; designate the supporter anew instead"),
            )
            .into());
        }
        diesel::update(supporters::table.find(id))
            .set(supporters::ends_on.eq(on))
            .execute(conn)?;
        audit::append(
            conn,
            context,
            Event {
                action: "supporter.end",
                entity: "supporter",
                entity_id: Some(id.to_owned()),
                before: Some(json!({"ends_on": before.ends_on.map(|d| d.to_string())})),
                after: Some(json!({"ends_on": on.to_string()})),
            },
        )?;
        get(conn, access, id)
    })
}

pub fn list(
    conn: &mut DbConnection,
    access: &Access,
    neighbourhood: Option<AreaId>,
    after: Option<String>,
    limit: usize,
) -> Result<(Vec<Supporter>, bool), StoreError> {
    let mut query = scoped(access).select(Supporter::as_select());
    if let Some(hood) = neighbourhood {
        query = query.filter(supporters::neighbourhood_id.eq(hood.to_string()));
    }
    if let Some(after) = after {
        query = query.filter(supporters::id.gt(after));
    }
    let rows = query
        .order(supporters::id.asc())
        .limit(crate::page::fetch(limit))
        .load(conn)?;
    Ok(crate::page::split(rows, limit))
}

/// The neighbourhoods in scope with no supporter of `programme` active on `on`.
pub fn neighbourhoods_without(
    conn: &mut DbConnection,
    scope: &Scope,
    programme: ProgrammeId,
    on: NaiveDate,
) -> Result<Vec<(String, String, String)>, StoreError> {
    let covered: Vec<String> = supporters::table
        .filter(supporters::programme_id.eq(programme.to_string()))
        .filter(supporters::starts_on.le(on))
        .filter(supporters::ends_on.is_null().or(supporters::ends_on.ge(on)))
        .select(supporters::neighbourhood_id)
        .load(conn)?;
    let query = areas::table
        .filter(areas::level.eq("neighbourhood"))
        .filter(areas::id.ne_all(covered))
        .select((areas::id, areas::name_fa, areas::name_en))
        .order(areas::code.asc());
    Ok(match scope {
        Scope::All => query.load(conn)?,
        Scope::UserAreas(user) => query
            .filter(areas::id.eq_any(assigned_to(*user)))
            .load(conn)?,
    })
}

/// Whether `person` holds a permit valid on `on`: what makes them a producer.
pub fn has_valid_permit(
    conn: &mut DbConnection,
    person: &str,
    on: NaiveDate,
) -> Result<bool, StoreError> {
    let n: i64 = permits::table
        .filter(permits::person_id.eq(person))
        .filter(permits::state.eq("issued"))
        .filter(permits::valid_from.le(on))
        .filter(permits::valid_until.ge(on))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Links a producer (a person of the supporter's neighbourhood holding a valid permit) to a
/// supporter.
pub fn link_producer(
    conn: &mut DbConnection,
    context: &AuditContext,
    access: &Access,
    supporter: &str,
    person: PersonId,
    on: NaiveDate,
) -> Result<(), StoreError> {
    write_transaction(conn, |conn| {
        let supporter = get(conn, access, supporter)?;
        let producer = match crate::persons::get(conn, &access.scope, person) {
            Err(StoreError::NotFound) => {
                return Err(not_found("person_id", "no such person in your scope"));
            }
            other => other?,
        };
        if producer.neighbourhood_id.map(|n| n.to_string())
            != Some(supporter.neighbourhood_id.clone())
        {
            return Err(FieldError::new(
                "person_id",
                "other_neighbourhood",
                "a supporter is linked only to producers of their own neighbourhood",
            )
            .into());
        }
        if !has_valid_permit(conn, &person.to_string(), on)? {
            return Err(FieldError::new(
                "person_id",
                "not_a_producer",
                "the person holds no home-business permit valid on that day",
            )
            .into());
        }
        let exists: i64 = producer_links::table
            .filter(producer_links::supporter_id.eq(&supporter.id))
            .filter(producer_links::person_id.eq(person.to_string()))
            .count()
            .get_result(conn)?;
        if exists > 0 {
            return Err(StoreError::Conflict(
                "the producer is linked to this supporter already".to_owned(),
            ));
        }
        diesel::insert_into(producer_links::table)
            .values((
                producer_links::supporter_id.eq(&supporter.id),
                producer_links::person_id.eq(person.to_string()),
                producer_links::linked_on.eq(on),
                producer_links::linked_by.eq(context.actor.id()),
            ))
            .execute(conn)?;
        audit::append(
            conn,
            context,
            Event {
                action: "supporter.link_producer",
                entity: "supporter",
                entity_id: Some(supporter.id),
                before: None,
                after: Some(json!({"person_id": person.to_string(), "linked_on": on.to_string()})),
            },
        )
    })
}

/// The producers linked to a supporter: (person id, linked on).
pub fn producers(
    conn: &mut DbConnection,
    access: &Access,
    supporter: &str,
) -> Result<Vec<(String, NaiveDate)>, StoreError> {
    get(conn, access, supporter)?;
    Ok(producer_links::table
        .filter(producer_links::supporter_id.eq(supporter))
        .select((producer_links::person_id, producer_links::linked_on))
        .order(producer_links::person_id.asc())
        .load(conn)?)
}

/// One ledger entry.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = ledger_entries)]
pub struct Entry {
    pub id: String,
    /// The account: a supporter's funds, or (`loan_id`) what a borrower owes.
    pub supporter_id: Option<String>,
    pub kind: String,
    pub amount: i64,
    pub purchase_id: Option<String>,
    pub effective_on: NaiveDate,
    pub note: Option<String>,
    pub recorded_by: Option<String>,
    pub recorded_at: NaiveDateTime,
    pub loan_id: Option<String>,
}

/// Posts one entry to a supporter's ledger and returns the new balance. Must run inside a write
/// transaction; see the module's comment for why this cannot overdraw.
#[allow(clippy::too_many_arguments)]
pub(crate) fn post(
    conn: &mut DbConnection,
    context: &AuditContext,
    supporter: &str,
    kind: LedgerKind,
    amount: i64,
    purchase: Option<&str>,
    on: NaiveDate,
    note: Option<String>,
) -> Result<(Entry, i64), StoreError> {
    lock(conn, &format!("ledger:{supporter}"))?;
    let balance: i64 = supporter_balances::table
        .find(supporter)
        .select(supporter_balances::balance)
        .first(conn)?;
    let after = if amount < 0 {
        take(balance, amount.saturating_neg()).map_err(|o| StoreError::Overdraft {
            balance: o.balance,
            amount: o.amount,
        })?
    } else {
        balance
            .checked_add(amount)
            .filter(|b| *b <= MAX_AMOUNT)
            .ok_or_else(|| FieldError::new("amount", "too_large", "beyond any plausible balance"))?
    };
    let entry = Entry {
        id: uuid::Uuid::now_v7().to_string(),
        supporter_id: Some(supporter.to_owned()),
        kind: kind.as_str().to_owned(),
        amount,
        purchase_id: purchase.map(str::to_owned),
        effective_on: on,
        note,
        recorded_by: context.actor.id(),
        recorded_at: crate::now(),
        loan_id: None,
    };
    diesel::insert_into(ledger_entries::table)
        .values(&entry)
        .execute(conn)?;
    diesel::update(supporter_balances::table.find(supporter))
        .set(supporter_balances::balance.eq(after))
        .execute(conn)?;
    Ok((entry, after))
}

/// Allocates funds to a supporter (`Allocation`, positive) or corrects them (`Adjustment`, either
/// sign, never below zero).
#[allow(clippy::too_many_arguments)]
pub fn fund(
    conn: &mut DbConnection,
    context: &AuditContext,
    access: &Access,
    supporter: &str,
    kind: LedgerKind,
    amount: i64,
    on: NaiveDate,
    note: Option<String>,
) -> Result<(Entry, i64), StoreError> {
    write_transaction(conn, |conn| {
        let supporter = get(conn, access, supporter)?;
        let posted = post(conn, context, &supporter.id, kind, amount, None, on, note)?;
        audit::append(
            conn,
            context,
            Event {
                action: match kind {
                    LedgerKind::Allocation => "funds.allocate",
                    _ => "funds.adjust",
                },
                entity: "supporter",
                entity_id: Some(supporter.id),
                before: None,
                after: Some(
                    json!({"entry_id": posted.0.id, "amount": amount, "balance": posted.1}),
                ),
            },
        )?;
        Ok(posted)
    })
}

/// The supporter's balance and every ledger entry, oldest first.
pub fn ledger(
    conn: &mut DbConnection,
    access: &Access,
    supporter: &str,
) -> Result<(i64, Vec<Entry>), StoreError> {
    get(conn, access, supporter)?;
    // Under the ledger's lock, so that no purchase commits between the two reads.
    write_transaction(conn, |conn| {
        lock(conn, &format!("ledger:{supporter}"))?;
        let balance: i64 = supporter_balances::table
            .find(supporter)
            .select(supporter_balances::balance)
            .first(conn)?;
        let entries = ledger_entries::table
            .filter(ledger_entries::supporter_id.eq(supporter))
            .select(Entry::as_select())
            .order(ledger_entries::id.asc())
            .load(conn)?;
        Ok((balance, entries))
    })
}

/// A supporter's figures for a period, from the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupporterReport {
    pub supporter: Supporter,
    /// Allocations in the period.
    pub allocated: i64,
    /// Adjustments in the period (either sign).
    pub adjusted: i64,
    /// Purchases less their reversals in the period.
    pub spent: i64,
    /// The balance now (the sum of the whole ledger).
    pub balance: i64,
    /// Spending per producer in the period: (person id, spent, more than half of all).
    pub producers: Vec<(String, i64, bool)>,
}

/// Figures of one supporter between `from` and `to` (inclusive, by effective day).
pub fn report(
    conn: &mut DbConnection,
    access: &Access,
    supporter: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<SupporterReport, StoreError> {
    let supporter = get(conn, access, supporter)?;
    let (balance, entries) = ledger(conn, access, &supporter.id)?;
    let in_period: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.effective_on >= from && e.effective_on <= to)
        .collect();
    let sum = |kinds: &[&str]| -> i64 {
        in_period
            .iter()
            .filter(|e| kinds.contains(&e.kind.as_str()))
            .map(|e| e.amount)
            .sum()
    };
    let spent = -sum(&["purchase", "reversal"]);
    let producer_of: std::collections::HashMap<String, String> = purchases::table
        .filter(purchases::supporter_id.eq(&supporter.id))
        .select((purchases::id, purchases::producer_id))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect();
    let mut by_producer: Vec<(String, i64)> = Vec::new();
    for entry in &in_period {
        let Some(producer) = entry.purchase_id.as_ref().and_then(|p| producer_of.get(p)) else {
            continue;
        };
        match by_producer.iter_mut().find(|(p, _)| p == producer) {
            Some((_, amount)) => *amount -= entry.amount,
            None => by_producer.push((producer.clone(), -entry.amount)),
        }
    }
    by_producer.sort();
    Ok(SupporterReport {
        allocated: sum(&["allocation"]),
        adjusted: sum(&["adjustment"]),
        spent,
        balance,
        producers: by_producer
            .into_iter()
            .filter(|(_, amount)| *amount != 0)
            .map(|(producer, amount)| (producer, amount, concentrated(amount, spent)))
            .collect(),
        supporter,
    })
}

/// A producer's sales in one month (`YYYY-MM`, Gregorian) to one supporter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sales {
    pub month: String,
    pub supporter_id: String,
    pub purchases: i64,
    pub amount: i64,
}

/// What a producer (in scope) sold, by month and buyer: paid, received or ordered purchases,
/// cancelled ones left out.
pub fn producer_sales(
    conn: &mut DbConnection,
    access: &Access,
    person: PersonId,
) -> Result<Vec<Sales>, StoreError> {
    crate::persons::get(conn, &access.scope, person)?;
    // A supporter sees only what they bought themselves.
    let buyers: Vec<String> = scoped(access).select(supporters::id).load(conn)?;
    let rows: Vec<(NaiveDate, String, i64)> = purchases::table
        .filter(purchases::producer_id.eq(person.to_string()))
        .filter(purchases::state.ne("cancelled"))
        .filter(purchases::supporter_id.eq_any(buyers))
        .select((
            purchases::ordered_on,
            purchases::supporter_id,
            purchases::total,
        ))
        .order(purchases::ordered_on.asc())
        .load(conn)?;
    let mut sales: Vec<Sales> = Vec::new();
    for (day, supporter, total) in rows {
        let month = day.format("%Y-%m").to_string();
        match sales
            .iter_mut()
            .find(|s| s.month == month && s.supporter_id == supporter)
        {
            Some(line) => {
                line.purchases += 1;
                line.amount += total;
            }
            None => sales.push(Sales {
                month,
                supporter_id: supporter,
                purchases: 1,
                amount: total,
            }),
        }
    }
    sales.sort_by(|a, b| (&a.month, &a.supporter_id).cmp(&(&b.month, &b.supporter_id)));
    Ok(sales)
}

/// A neighbourhood's funds: its supporters' allocations, spending and balances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighbourhoodFunds {
    pub neighbourhood_id: String,
    pub supporters: i64,
    pub allocated: i64,
    pub spent: i64,
    pub balance: i64,
}

/// Per neighbourhood in scope: supporters and their money, from the ledger.
/// A supporter's own account sees only its own records' figures.
pub fn neighbourhood_funds(
    conn: &mut DbConnection,
    access: &Access,
) -> Result<Vec<NeighbourhoodFunds>, StoreError> {
    let all: Vec<Supporter> = scoped(access).select(Supporter::as_select()).load(conn)?;
    // SUM of a BIGINT is NUMERIC on PostgreSQL, which the two-backend connection cannot read.
    let sums: Vec<(Option<String>, String, Option<i64>)> = ledger_entries::table
        .filter(ledger_entries::supporter_id.is_not_null())
        .group_by((ledger_entries::supporter_id, ledger_entries::kind))
        .select((
            ledger_entries::supporter_id,
            ledger_entries::kind,
            diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::BigInt>>(
                "CAST(SUM(ledger_entries.amount) AS BIGINT)",
            ),
        ))
        .load(conn)?;
    let mut out: Vec<NeighbourhoodFunds> = Vec::new();
    for supporter in all {
        let of = |kinds: &[&str]| -> i64 {
            sums.iter()
                .filter(|(s, k, _)| {
                    s.as_deref() == Some(supporter.id.as_str()) && kinds.contains(&k.as_str())
                })
                .map(|(_, _, n)| n.unwrap_or(0))
                .sum()
        };
        let (allocated, spent, balance) = (
            of(&["allocation"]),
            -of(&["purchase", "reversal"]),
            of(&["allocation", "purchase", "reversal", "adjustment"]),
        );
        match out
            .iter_mut()
            .find(|n| n.neighbourhood_id == supporter.neighbourhood_id)
        {
            Some(line) => {
                line.supporters += 1;
                line.allocated += allocated;
                line.spent += spent;
                line.balance += balance;
            }
            None => out.push(NeighbourhoodFunds {
                neighbourhood_id: supporter.neighbourhood_id.clone(),
                supporters: 1,
                allocated,
                spent,
                balance,
            }),
        }
    }
    out.sort_by(|a, b| a.neighbourhood_id.cmp(&b.neighbourhood_id));
    Ok(out)
}

/// The household of a supporter who is a person (a supporter never buys from it).
pub(crate) fn household_of(
    conn: &mut DbConnection,
    supporter: &Supporter,
) -> Result<Option<String>, StoreError> {
    let Some(person) = &supporter.person_id else {
        return Ok(None);
    };
    Ok(persons::table
        .find(person)
        .select(persons::household_id)
        .first::<Option<String>>(conn)
        .optional()?
        .flatten())
}
