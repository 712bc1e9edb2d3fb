//! Producers' products and raw materials, and the purchase orders supporters place with them. An
//! order takes its total from the supporter's ledger when it is placed; a cancellation puts it
//! back with a reversing entry. Nothing is ever deleted.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde_json::json;
use tavana_domain::FieldError;
use tavana_domain::funds::{ItemKind, LedgerKind, Line, PurchaseState, purchase_total};
use tavana_domain::id::PersonId;

use crate::audit::{self, AuditContext, Event};
use crate::db::DbConnection;
use crate::error::StoreError;
use crate::schema::{persons, producer_links, products, purchase_lines, purchases};
use crate::scope::Scope;
use crate::supporters::{self, Access, Entry, Supporter};
use crate::tx::write_transaction;

/// A product or raw material of a producer.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = products)]
pub struct Product {
    pub id: String,
    pub person_id: String,
    pub kind: String,
    pub name: String,
    pub unit: String,
    pub reference_price: i64,
    pub created_at: NaiveDateTime,
}

/// Adds a product or raw material to a producer's list.
#[allow(clippy::too_many_arguments)]
pub fn add_product(
    conn: &mut DbConnection,
    context: &AuditContext,
    scope: &Scope,
    person: PersonId,
    kind: ItemKind,
    name: String,
    unit: String,
    reference_price: i64,
) -> Result<Product, StoreError> {
    write_transaction(conn, |conn| {
        crate::persons::get(conn, scope, person)?;
        if !supporters::has_valid_permit(conn, &person.to_string(), crate::now().date())? {
            return Err(FieldError::new(
                "person_id",
                "not_a_producer",
                "the person holds no valid home-business permit",
            )
            .into());
        }
        let product = Product {
            id: uuid::Uuid::now_v7().to_string(),
            person_id: person.to_string(),
            kind: kind.as_str().to_owned(),
            name,
            unit,
            reference_price,
            created_at: crate::now(),
        };
        diesel::insert_into(products::table)
            .values(&product)
            .execute(conn)?;
        audit::append(
            conn,
            context,
            Event {
                action: "product.create",
                entity: "product",
                entity_id: Some(product.id.clone()),
                before: None,
                after: Some(json!({"person_id": product.person_id, "name": product.name,
                                   "reference_price": product.reference_price})),
            },
        )?;
        Ok(product)
    })
}

pub fn products_of(
    conn: &mut DbConnection,
    scope: &Scope,
    person: PersonId,
) -> Result<Vec<Product>, StoreError> {
    crate::persons::get(conn, scope, person)?;
    Ok(products::table
        .filter(products::person_id.eq(person.to_string()))
        .select(Product::as_select())
        .order(products::id.asc())
        .load(conn)?)
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = purchases)]
pub struct PurchaseRow {
    pub id: String,
    pub supporter_id: String,
    pub producer_id: String,
    pub state: String,
    pub total: i64,
    pub ordered_on: NaiveDate,
    pub received_on: Option<NaiveDate>,
    pub paid_on: Option<NaiveDate>,
    pub cancelled_on: Option<NaiveDate>,
    pub cancel_reason: Option<String>,
    pub version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// The supporter's own order number, for an order imported from their book.
    pub reference: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = purchase_lines)]
pub struct LineRow {
    pub purchase_id: String,
    pub line_no: i32,
    pub product_id: Option<String>,
    pub kind: String,
    pub description: String,
    pub quantity: i64,
    pub unit_price: i64,
    pub amount: i64,
}

/// A purchase order with its lines and the supporter's balance after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purchase {
    pub purchase: PurchaseRow,
    pub lines: Vec<LineRow>,
}

/// One line as submitted: a product of the producer's list, or a described item.
#[derive(Debug, Clone)]
pub struct NewLine {
    pub product_id: Option<String>,
    pub kind: ItemKind,
    pub description: Option<String>,
    pub quantity: i64,
    pub unit_price: i64,
}

#[derive(Debug, Clone)]
pub struct NewPurchase {
    pub supporter_id: String,
    pub producer_id: PersonId,
    pub ordered_on: NaiveDate,
    pub lines: Vec<NewLine>,
    /// An imported order's number in the supporter's book.
    pub reference: Option<String>,
}

fn load(conn: &mut DbConnection, row: PurchaseRow) -> Result<Purchase, StoreError> {
    let lines = purchase_lines::table
        .filter(purchase_lines::purchase_id.eq(&row.id))
        .select(LineRow::as_select())
        .order(purchase_lines::line_no.asc())
        .load(conn)?;
    Ok(Purchase {
        purchase: row,
        lines,
    })
}

/// An order's day as `create` checks it, before its producer: not in the future, and the
/// supporter designated on it and today, so that a past date cannot reopen an ended designation.
pub(crate) fn check_day(
    supporter: &Supporter,
    ordered_on: NaiveDate,
    today: NaiveDate,
) -> Result<(), StoreError> {
    if ordered_on > today {
        return Err(FieldError::new("ordered_on", "in_future", "must not be in the future").into());
    }
    if !supporter.active_on(ordered_on) || !supporter.active_on(today) {
        return Err(FieldError::new(
            "ordered_on",
            "supporter_inactive",
            "the supporter is not designated on that day",
        )
        .into());
    }
    Ok(())
}

/// Places an order with a producer and takes its total from the supporter's funds: only from a
/// producer linked to the supporter, holding a permit valid on the day, and not of the
/// supporter's own household. Refused with the balance when the funds do not cover it.
pub fn create(
    conn: &mut DbConnection,
    context: &AuditContext,
    access: &Access,
    new: NewPurchase,
) -> Result<(Purchase, i64), StoreError> {
    let total = purchase_total(
        &new.lines
            .iter()
            .map(|l| Line {
                quantity: l.quantity,
                unit_price: l.unit_price,
            })
            .collect::<Vec<_>>(),
    )
    .map_err(StoreError::Invalid)?;
    write_transaction(conn, |conn| {
        let supporter = match supporters::get(conn, access, &new.supporter_id) {
            Err(StoreError::NotFound) => {
                return Err(FieldError::new(
                    "supporter_id",
                    "not_found",
                    "no such supporter acting for you",
                )
                .into());
            }
            other => other?,
        };
        let today = crate::now().date();
        check_day(&supporter, new.ordered_on, today)?;
        let producer = new.producer_id.to_string();
        let linked: i64 = producer_links::table
            .filter(producer_links::supporter_id.eq(&supporter.id))
            .filter(producer_links::person_id.eq(&producer))
            .count()
            .get_result(conn)?;
        if linked == 0 {
            return Err(FieldError::new(
                "producer_id",
                "not_linked",
                "the producer is not linked to this supporter",
            )
            .into());
        }
        // As the designation: valid on the order's day and now.
        if !supporters::has_valid_permit(conn, &producer, new.ordered_on)?
            || !supporters::has_valid_permit(conn, &producer, today)?
        {
            return Err(FieldError::new(
                "producer_id",
                "no_valid_permit",
                "the producer's permit is not valid on that day (expired, suspended or revoked)",
            )
            .into());
        }
        let producer_household: Option<String> = persons::table
            .find(&producer)
            .select(persons::household_id)
            .first::<Option<String>>(conn)?;
        if producer_household.is_some()
            && producer_household == supporters::household_of(conn, &supporter)?
        {
            return Err(FieldError::new(
                "producer_id",
                "own_household",
                "a supporter never buys from their own household",
            )
            .into());
        }
        for (i, line) in new.lines.iter().enumerate() {
            if let Some(product) = &line.product_id {
                let owner: Option<String> = products::table
                    .find(product)
                    .select(products::person_id)
                    .first(conn)
                    .optional()?;
                if owner.as_deref() != Some(producer.as_str()) {
                    return Err(FieldError::new(
                        format!("lines[{i}].product_id"),
                        "not_found",
                        "not a product of this producer",
                    )
                    .into());
                }
            } else if line.description.is_none() {
                return Err(FieldError::new(
                    format!("lines[{i}].description"),
                    "required",
                    "describe the item, or name one of the producer's products",
                )
                .into());
            }
        }
        let now = crate::now();
        let row = PurchaseRow {
            id: uuid::Uuid::now_v7().to_string(),
            supporter_id: supporter.id.clone(),
            producer_id: producer.clone(),
            state: PurchaseState::Ordered.as_str().to_owned(),
            total,
            ordered_on: new.ordered_on,
            received_on: None,
            paid_on: None,
            cancelled_on: None,
            cancel_reason: None,
            version: 1,
            created_at: now,
            updated_at: now,
            reference: new.reference.clone(),
        };
        diesel::insert_into(purchases::table)
            .values(&row)
            .execute(conn)?;
        for (i, line) in new.lines.iter().enumerate() {
            let description = match (&line.description, &line.product_id) {
                (Some(d), _) => d.clone(),
                (None, Some(product)) => products::table
                    .find(product)
                    .select(products::name)
                    .first(conn)?,
                (None, None) => String::new(),
            };
            diesel::insert_into(purchase_lines::table)
                .values(LineRow {
                    purchase_id: row.id.clone(),
                    line_no: i32::try_from(i + 1).unwrap_or(i32::MAX),
                    product_id: line.product_id.clone(),
                    kind: line.kind.as_str().to_owned(),
                    description,
                    quantity: line.quantity,
                    unit_price: line.unit_price,
                    amount: line.quantity * line.unit_price,
                })
                .execute(conn)?;
        }
        // Last, so that a refusal above writes nothing; an overdraft here rolls all of it back.
        let (_, balance) = supporters::post(
            conn,
            context,
            &supporter.id,
            LedgerKind::Purchase,
            -total,
            Some(&row.id),
            new.ordered_on,
            None,
        )?;
        audit::append(
            conn,
            context,
            Event {
                action: "purchase.create",
                entity: "purchase",
                entity_id: Some(row.id.clone()),
                before: None,
                after: Some(
                    json!({"supporter_id": row.supporter_id, "producer_id": row.producer_id,
                                   "total": total, "balance": balance}),
                ),
            },
        )?;
        Ok((load(conn, row)?, balance))
    })
}

pub fn get(conn: &mut DbConnection, access: &Access, id: &str) -> Result<Purchase, StoreError> {
    let row: PurchaseRow = purchases::table
        .find(id)
        .select(PurchaseRow::as_select())
        .first(conn)?;
    // Visible only with its supporter.
    supporters::get(conn, access, &row.supporter_id)?;
    load(conn, row)
}

pub fn list(
    conn: &mut DbConnection,
    access: &Access,
    supporter: &str,
) -> Result<Vec<Purchase>, StoreError> {
    supporters::get(conn, access, supporter)?;
    let rows: Vec<PurchaseRow> = purchases::table
        .filter(purchases::supporter_id.eq(supporter))
        .select(PurchaseRow::as_select())
        .order(purchases::id.asc())
        .load(conn)?;
    rows.into_iter().map(|row| load(conn, row)).collect()
}

/// A change of a purchase's state refused by the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub state: PurchaseState,
    pub allowed: Vec<PurchaseState>,
}

/// Records receipt, payment or cancellation on `on`. A cancellation posts the reversing entry.
#[allow(clippy::too_many_arguments)]
pub fn advance(
    conn: &mut DbConnection,
    context: &AuditContext,
    access: &Access,
    id: &str,
    expected_version: Option<i64>,
    to: PurchaseState,
    on: NaiveDate,
    reason: Option<String>,
) -> Result<Result<(Purchase, Option<Entry>), Refused>, StoreError> {
    write_transaction(conn, |conn| {
        let before = get(conn, access, id)?.purchase;
        // The purchase's supporter's ledger lock also orders changes to one purchase.
        crate::tx::lock(conn, &format!("ledger:{}", before.supporter_id))?;
        let before = get(conn, access, id)?.purchase;
        if let Some(expected) = expected_version
            && expected != before.version
        {
            return Err(StoreError::VersionMismatch {
                current: before.version,
            });
        }
        let state: PurchaseState = before
            .state
            .parse()
            .map_err(|_| StoreError::Internal(format!("purchases row {id}: bad state")))?;
        if !state.next().contains(&to) {
            return Ok(Err(Refused {
                state,
                allowed: state.next().to_vec(),
            }));
        }
        if on < before.ordered_on {
            return Err(FieldError::new("on", "before_order", "dated before the order").into());
        }
        if to == PurchaseState::Cancelled && reason.is_none() {
            return Err(FieldError::new("reason", "required", "say why it is cancelled").into());
        }
        let entry = if to == PurchaseState::Cancelled {
            Some(
                supporters::post(
                    conn,
                    context,
                    &before.supporter_id,
                    LedgerKind::Reversal,
                    before.total,
                    Some(id),
                    on,
                    reason.clone(),
                )?
                .0,
            )
        } else {
            None
        };
        let target = purchases::table
            .find(id)
            .filter(purchases::version.eq(before.version));
        let common = (
            purchases::state.eq(to.as_str()),
            purchases::version.eq(before.version + 1),
            purchases::updated_at.eq(crate::now()),
        );
        let updated = match to {
            PurchaseState::Received => diesel::update(target)
                .set((common, purchases::received_on.eq(on)))
                .execute(conn)?,
            PurchaseState::Paid => diesel::update(target)
                .set((common, purchases::paid_on.eq(on)))
                .execute(conn)?,
            PurchaseState::Cancelled => diesel::update(target)
                .set((
                    common,
                    purchases::cancelled_on.eq(on),
                    purchases::cancel_reason.eq(&reason),
                ))
                .execute(conn)?,
            PurchaseState::Ordered => 0,
        };
        if updated == 0 {
            return Err(StoreError::VersionMismatch {
                current: before.version + 1,
            });
        }
        audit::append(
            conn,
            context,
            Event {
                action: match to {
                    PurchaseState::Received => "purchase.receive",
                    PurchaseState::Paid => "purchase.pay",
                    _ => "purchase.cancel",
                },
                entity: "purchase",
                entity_id: Some(id.to_owned()),
                before: Some(json!({"state": before.state})),
                after: Some(json!({"state": to.as_str(), "on": on.to_string()})),
            },
        )?;
        Ok(Ok((get(conn, access, id)?, entry)))
    })
}
