//! `/api/v1/supporters`, `/api/v1/purchases` and the funds reports: home-business supporters, the
//! producers linked to them, their products, the funds ledger and purchase orders.

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use tavana_domain::calendar::parse_date;
use tavana_domain::funds::{ItemKind, LedgerKind, PurchaseState};
use tavana_domain::id::{AreaId, OrganisationId, PersonId, ProgrammeId, UserId};
use tavana_persistence::purchases::{self, LineRow, NewLine, NewPurchase, Product, Purchase};
use tavana_persistence::supporters::{
    self, Access, Entry, NeighbourhoodFunds, NewSupporter, Sales, Supporter, SupporterReport,
};
use tavana_persistence::{StoreError, idempotency};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{Auth, Caller, perm};
use crate::conventions::{day_or_today, etag, if_match, optional_text};
use crate::error::{ApiError, Problem};
use crate::idempotency::{IdempotencyKey, created, respond};
use crate::pagination::{self, Page};
use crate::{AppState, with_db};

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list)
        .service(create)
        .service(read)
        .service(end)
        .service(list_producers)
        .service(link_producer)
        .service(allocate)
        .service(adjust)
        .service(ledger)
        .service(report)
        .service(list_purchases)
        .service(without_supporters)
        .service(neighbourhood_funds)
        .service(list_products)
        .service(add_product)
        .service(sales)
        .service(create_purchase)
        .service(read_purchase)
        .service(advance_purchase);
}

api_enum!(
    /// What a purchase line buys.
    ItemKindDto => ItemKind { Product => "product", RawMaterial => "raw_material" }
);

api_enum!(
    /// A purchase order's progress.
    PurchaseStateDto => PurchaseState {
        Ordered => "ordered", Received => "received", Paid => "paid", Cancelled => "cancelled"
    }
);

fn access(caller: &Caller) -> Access {
    Access::new(caller.scope(), caller.role(), caller.user_id())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SupporterResponse {
    pub id: String,
    /// The account (role `supporter`) acting for the supporter.
    pub user_id: String,
    pub person_id: Option<String>,
    pub organisation_id: Option<String>,
    pub programme_id: String,
    pub neighbourhood_id: String,
    pub starts_on: NaiveDate,
    pub ends_on: Option<NaiveDate>,
    /// Whether designated today.
    pub active: bool,
    pub created_at: DateTime<Utc>,
}

impl From<Supporter> for SupporterResponse {
    fn from(s: Supporter) -> Self {
        Self {
            active: s.active_on(Utc::now().date_naive()),
            id: s.id,
            user_id: s.user_id,
            person_id: s.person_id,
            organisation_id: s.organisation_id,
            programme_id: s.programme_id,
            neighbourhood_id: s.neighbourhood_id,
            starts_on: s.starts_on,
            ends_on: s.ends_on,
            created_at: s.created_at.and_utc(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSupporterRequest {
    /// A user with the `supporter` role assigned to the neighbourhood.
    pub user_id: Uuid,
    /// Who the supporter is: a person …
    pub person_id: Option<Uuid>,
    /// … or an organisation (exactly one of the two).
    pub organisation_id: Option<Uuid>,
    pub programme_id: Uuid,
    pub neighbourhood_id: Uuid,
    /// Gregorian or Jalali (default today).
    pub starts_on: Option<String>,
    pub ends_on: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndSupporterRequest {
    /// The last day, Gregorian or Jalali (default today).
    pub ends_on: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListSupportersQuery {
    pub neighbourhood_id: Option<Uuid>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProducerLinkResponse {
    pub person_id: String,
    pub linked_on: NaiveDate,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkProducerRequest {
    /// A person of the supporter's neighbourhood with a valid home-business permit.
    pub person_id: Uuid,
    /// Gregorian or Jalali (default today).
    pub linked_on: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FundsRequest {
    /// Whole rials: positive for an allocation; either sign for an adjustment.
    pub amount: i64,
    /// Gregorian or Jalali (default today).
    pub on: Option<String>,
    /// Required for an adjustment.
    pub note: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EntryResponse {
    pub id: String,
    pub kind: String,
    /// Rials; negative takes from the balance.
    pub amount: i64,
    pub purchase_id: Option<String>,
    pub effective_on: NaiveDate,
    pub note: Option<String>,
    pub recorded_by: Option<String>,
    pub recorded_at: DateTime<Utc>,
}

impl From<Entry> for EntryResponse {
    fn from(e: Entry) -> Self {
        Self {
            id: e.id,
            kind: e.kind,
            amount: e.amount,
            purchase_id: e.purchase_id,
            effective_on: e.effective_on,
            note: e.note,
            recorded_by: e.recorded_by,
            recorded_at: e.recorded_at.and_utc(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PostedResponse {
    pub entry: EntryResponse,
    /// The balance after the entry, in rials.
    pub balance: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerResponse {
    /// The sum of every entry, in rials.
    pub balance: i64,
    pub entries: Vec<EntryResponse>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PeriodQuery {
    /// First day, Gregorian or Jalali (default: the beginning).
    pub from: Option<String>,
    /// Last day (default: today).
    pub to: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProducerSpending {
    pub person_id: String,
    pub spent: i64,
    /// More than half of the supporter's spending in the period went to this producer.
    pub concentrated: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SupporterReportResponse {
    pub supporter_id: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub allocated: i64,
    pub adjusted: i64,
    /// Purchases less cancellations in the period.
    pub spent: i64,
    /// Now.
    pub balance: i64,
    pub producers: Vec<ProducerSpending>,
    /// Whether any producer took more than half of the spending.
    pub concentrated: bool,
}

impl SupporterReportResponse {
    fn new(r: SupporterReport, from: NaiveDate, to: NaiveDate) -> Self {
        Self {
            supporter_id: r.supporter.id,
            from,
            to,
            allocated: r.allocated,
            adjusted: r.adjusted,
            spent: r.spent,
            balance: r.balance,
            concentrated: r.producers.iter().any(|(_, _, c)| *c),
            producers: r
                .producers
                .into_iter()
                .map(|(person_id, spent, concentrated)| ProducerSpending {
                    person_id,
                    spent,
                    concentrated,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WithoutSupportersQuery {
    pub programme_id: Uuid,
    /// The day (default today).
    pub on: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NeighbourhoodRef {
    pub id: String,
    pub name_fa: String,
    pub name_en: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NeighbourhoodFundsResponse {
    pub neighbourhood_id: String,
    pub supporters: i64,
    pub allocated: i64,
    pub spent: i64,
    pub balance: i64,
}

impl From<NeighbourhoodFunds> for NeighbourhoodFundsResponse {
    fn from(n: NeighbourhoodFunds) -> Self {
        Self {
            neighbourhood_id: n.neighbourhood_id,
            supporters: n.supporters,
            allocated: n.allocated,
            spent: n.spent,
            balance: n.balance,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProductResponse {
    pub id: String,
    pub person_id: String,
    pub kind: String,
    pub name: String,
    pub unit: String,
    /// Rials per unit.
    pub reference_price: i64,
}

impl From<Product> for ProductResponse {
    fn from(p: Product) -> Self {
        Self {
            id: p.id,
            person_id: p.person_id,
            kind: p.kind,
            name: p.name,
            unit: p.unit,
            reference_price: p.reference_price,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProductRequest {
    pub kind: ItemKindDto,
    pub name: String,
    #[schema(example = "عدد")]
    pub unit: String,
    /// Whole rials per unit.
    pub reference_price: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SalesResponse {
    /// `YYYY-MM` (Gregorian).
    pub month: String,
    /// The buyer.
    pub supporter_id: String,
    pub purchases: i64,
    pub amount: i64,
}

impl From<Sales> for SalesResponse {
    fn from(s: Sales) -> Self {
        Self {
            month: s.month,
            supporter_id: s.supporter_id,
            purchases: s.purchases,
            amount: s.amount,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurchaseLineRequest {
    /// One of the producer's products, or leave out and describe the item.
    pub product_id: Option<String>,
    pub kind: ItemKindDto,
    pub description: Option<String>,
    /// Whole units.
    pub quantity: i64,
    /// Whole rials per unit.
    pub unit_price: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePurchaseRequest {
    /// A supporter record the caller acts for.
    pub supporter_id: String,
    /// A producer linked to that supporter.
    pub producer_id: Uuid,
    /// Gregorian or Jalali (default today).
    pub ordered_on: Option<String>,
    pub lines: Vec<PurchaseLineRequest>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PurchaseLineResponse {
    pub line_no: i32,
    pub product_id: Option<String>,
    pub kind: String,
    pub description: String,
    pub quantity: i64,
    pub unit_price: i64,
    pub amount: i64,
}

impl From<LineRow> for PurchaseLineResponse {
    fn from(l: LineRow) -> Self {
        Self {
            line_no: l.line_no,
            product_id: l.product_id,
            kind: l.kind,
            description: l.description,
            quantity: l.quantity,
            unit_price: l.unit_price,
            amount: l.amount,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PurchaseResponse {
    pub id: String,
    pub supporter_id: String,
    pub producer_id: String,
    pub state: String,
    /// Rials: the sum of the lines.
    pub total: i64,
    pub ordered_on: NaiveDate,
    pub received_on: Option<NaiveDate>,
    pub paid_on: Option<NaiveDate>,
    pub cancelled_on: Option<NaiveDate>,
    pub cancel_reason: Option<String>,
    pub lines: Vec<PurchaseLineResponse>,
    pub version: i64,
    /// The supporter's balance after this change, when it changed the balance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balance: Option<i64>,
}

impl PurchaseResponse {
    fn new(p: Purchase, balance: Option<i64>) -> Self {
        let row = p.purchase;
        Self {
            id: row.id,
            supporter_id: row.supporter_id,
            producer_id: row.producer_id,
            state: row.state,
            total: row.total,
            ordered_on: row.ordered_on,
            received_on: row.received_on,
            paid_on: row.paid_on,
            cancelled_on: row.cancelled_on,
            cancel_reason: row.cancel_reason,
            lines: p.lines.into_iter().map(Into::into).collect(),
            version: row.version,
            balance,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurchaseTransitionRequest {
    /// `received`, `paid` or `cancelled`.
    pub to: PurchaseStateDto,
    /// Gregorian or Jalali (default today).
    pub on: Option<String>,
    /// Required to cancel.
    pub reason: Option<String>,
}

/// Supporters in the caller's neighbourhoods (a supporter sees only their own records).
#[utoipa::path(
    tag = "supporters",
    security(("bearer" = [])),
    params(ListSupportersQuery),
    responses((status = 200, description = "One page of supporters", body = Page<SupporterResponse>)),
)]
#[get("/supporters")]
pub async fn list(
    auth: Auth<perm::SupporterRead>,
    state: web::Data<AppState>,
    query: web::Query<ListSupportersQuery>,
) -> Result<web::Json<Page<SupporterResponse>>, ApiError> {
    let query = query.into_inner();
    let limit = pagination::limit(query.limit)?;
    let after: Option<String> = query
        .cursor
        .as_deref()
        .map(pagination::decode_cursor::<Uuid>)
        .transpose()?
        .map(|u| u.to_string());
    let hood = query.neighbourhood_id.map(AreaId::from);
    let access = access(&auth);
    let (items, more) = with_db(&state, move |c| {
        supporters::list(c, &access, hood, after, limit)
    })
    .await?;
    let next_cursor = pagination::next_cursor(more, items.last().map(|s| s.id.clone()));
    Ok(web::Json(Page {
        items: items.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// Designate a supporter for a neighbourhood (at most the programme's limit at once, two by
/// default).
#[utoipa::path(
    tag = "supporters",
    security(("bearer" = [])),
    request_body = CreateSupporterRequest,
    responses(
        (status = 201, description = "Designated", body = SupporterResponse),
        (status = 409, description = "The neighbourhood has as many supporters as the programme allows in that period", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, or references outside the caller's scope", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/supporters")]
pub async fn create(
    auth: Auth<perm::SupporterManage>,
    state: web::Data<AppState>,
    body: web::Json<CreateSupporterRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let new = NewSupporter {
        user_id: UserId::from(body.user_id),
        person_id: body.person_id.map(PersonId::from),
        organisation_id: body.organisation_id.map(OrganisationId::from),
        programme_id: ProgrammeId::from(body.programme_id),
        neighbourhood_id: AreaId::from(body.neighbourhood_id),
        starts_on: day_or_today("starts_on", body.starts_on.as_deref())?,
        ends_on: body
            .ends_on
            .as_deref()
            .map(|d| parse_date("ends_on", d))
            .transpose()?,
    };
    let (context, scope) = (auth.audit(), auth.scope());
    let supporter = with_db(&state, move |c| {
        supporters::create(c, &context, &scope, new)
    })
    .await?;
    Ok(HttpResponse::Created()
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("/api/v1/supporters/{}", supporter.id),
        ))
        .json(SupporterResponse::from(supporter)))
}

/// Read one supporter.
#[utoipa::path(
    tag = "supporters",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The supporter's id")),
    responses(
        (status = 200, description = "The supporter", body = SupporterResponse),
        (status = 404, description = "No such supporter visible to the caller", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/supporters/{id}")]
pub async fn read(
    auth: Auth<perm::SupporterRead>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<SupporterResponse>, ApiError> {
    let id = id.into_inner().to_string();
    let access = access(&auth);
    let supporter = with_db(&state, move |c| supporters::get(c, &access, &id)).await?;
    Ok(web::Json(supporter.into()))
}

/// End a supporter's designation.
#[utoipa::path(
    tag = "supporters",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The supporter's id")),
    request_body = EndSupporterRequest,
    responses(
        (status = 200, description = "Ended", body = SupporterResponse),
        (status = 404, description = "No such supporter in the caller's scope", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Before the start", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/supporters/{id}/end")]
pub async fn end(
    auth: Auth<perm::SupporterManage>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: web::Json<EndSupporterRequest>,
) -> Result<web::Json<SupporterResponse>, ApiError> {
    let id = id.into_inner().to_string();
    let on = day_or_today("ends_on", body.into_inner().ends_on.as_deref())?;
    let (context, access) = (auth.audit(), access(&auth));
    let supporter = with_db(&state, move |c| {
        supporters::end(c, &context, &access, &id, on)
    })
    .await?;
    Ok(web::Json(supporter.into()))
}

/// The producers linked to a supporter.
#[utoipa::path(
    tag = "supporters",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The supporter's id")),
    responses(
        (status = 200, description = "Linked producers", body = Vec<ProducerLinkResponse>),
        (status = 404, description = "No such supporter visible to the caller", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/supporters/{id}/producers")]
pub async fn list_producers(
    auth: Auth<perm::SupporterRead>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<Vec<ProducerLinkResponse>>, ApiError> {
    let id = id.into_inner().to_string();
    let access = access(&auth);
    let links = with_db(&state, move |c| supporters::producers(c, &access, &id)).await?;
    Ok(web::Json(
        links
            .into_iter()
            .map(|(person_id, linked_on)| ProducerLinkResponse {
                person_id,
                linked_on,
            })
            .collect(),
    ))
}

/// Link a producer of the supporter's neighbourhood (a permit holder) to the supporter.
#[utoipa::path(
    tag = "supporters",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The supporter's id")),
    request_body = LinkProducerRequest,
    responses(
        (status = 204, description = "Linked"),
        (status = 404, description = "No such supporter in the caller's scope", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Linked already", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a producer of the supporter's neighbourhood", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/supporters/{id}/producers")]
pub async fn link_producer(
    auth: Auth<perm::SupporterManage>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: web::Json<LinkProducerRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner().to_string();
    let body = body.into_inner();
    let on = day_or_today("linked_on", body.linked_on.as_deref())?;
    let person = PersonId::from(body.person_id);
    let (context, access) = (auth.audit(), access(&auth));
    with_db(&state, move |c| {
        supporters::link_producer(c, &context, &access, &id, person, on)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn post_funds(
    auth: &Caller,
    state: &web::Data<AppState>,
    id: String,
    kind: LedgerKind,
    body: FundsRequest,
) -> Result<HttpResponse, ApiError> {
    let on = day_or_today("on", body.on.as_deref())?;
    let note = optional_text(body.note);
    let valid = match kind {
        LedgerKind::Allocation => body.amount > 0,
        _ => body.amount != 0,
    };
    if !valid {
        return Err(tavana_domain::FieldError::new(
            "amount",
            "out_of_range",
            "an allocation is a positive number of rials; an adjustment is not zero",
        )
        .into());
    }
    if kind == LedgerKind::Adjustment && note.is_none() {
        return Err(
            tavana_domain::FieldError::new("note", "required", "say why the funds change").into(),
        );
    }
    let (context, access) = (auth.audit(), access(auth));
    let amount = body.amount;
    let (entry, balance) = with_db(state, move |c| {
        supporters::fund(c, &context, &access, &id, kind, amount, on, note)
    })
    .await?;
    Ok(HttpResponse::Created().json(PostedResponse {
        entry: entry.into(),
        balance,
    }))
}

/// Allocate funds to a supporter (programme managers).
#[utoipa::path(
    tag = "supporters",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The supporter's id")),
    request_body = FundsRequest,
    responses(
        (status = 201, description = "Posted", body = PostedResponse),
        (status = 404, description = "No such supporter in the caller's scope", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a positive amount", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/supporters/{id}/allocations")]
pub async fn allocate(
    auth: Auth<perm::FundsAllocate>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: web::Json<FundsRequest>,
) -> Result<HttpResponse, ApiError> {
    post_funds(
        &auth,
        &state,
        id.into_inner().to_string(),
        LedgerKind::Allocation,
        body.into_inner(),
    )
    .await
}

/// Correct a supporter's funds with a reason (programme managers). Never below zero.
#[utoipa::path(
    tag = "supporters",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The supporter's id")),
    request_body = FundsRequest,
    responses(
        (status = 201, description = "Posted", body = PostedResponse),
        (status = 404, description = "No such supporter in the caller's scope", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "It would overdraw the balance; `balance` gives it", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Zero, or no reason", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/supporters/{id}/adjustments")]
pub async fn adjust(
    auth: Auth<perm::FundsAllocate>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: web::Json<FundsRequest>,
) -> Result<HttpResponse, ApiError> {
    post_funds(
        &auth,
        &state,
        id.into_inner().to_string(),
        LedgerKind::Adjustment,
        body.into_inner(),
    )
    .await
}

/// The supporter's ledger, oldest first, and its balance (the sum of the entries).
#[utoipa::path(
    tag = "supporters",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The supporter's id")),
    responses(
        (status = 200, description = "Ledger", body = LedgerResponse),
        (status = 404, description = "No such supporter visible to the caller", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/supporters/{id}/ledger")]
pub async fn ledger(
    auth: Auth<perm::SupporterRead>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<LedgerResponse>, ApiError> {
    let id = id.into_inner().to_string();
    let access = access(&auth);
    let (balance, entries) = with_db(&state, move |c| supporters::ledger(c, &access, &id)).await?;
    Ok(web::Json(LedgerResponse {
        balance,
        entries: entries.into_iter().map(Into::into).collect(),
    }))
}

/// A supporter's figures for a period: allocated, spent, balance, spending per producer, and
/// whether one producer took more than half of it.
#[utoipa::path(
    tag = "supporters",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The supporter's id"), PeriodQuery),
    responses(
        (status = 200, description = "Report", body = SupporterReportResponse),
        (status = 404, description = "No such supporter visible to the caller", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/supporters/{id}/report")]
pub async fn report(
    auth: Auth<perm::SupporterRead>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    query: web::Query<PeriodQuery>,
) -> Result<web::Json<SupporterReportResponse>, ApiError> {
    let id = id.into_inner().to_string();
    let query = query.into_inner();
    let from = query
        .from
        .as_deref()
        .map(|d| parse_date("from", d))
        .transpose()?
        .unwrap_or(NaiveDate::MIN);
    let to = day_or_today("to", query.to.as_deref())?;
    let access = access(&auth);
    let report = with_db(&state, move |c| {
        supporters::report(c, &access, &id, from, to)
    })
    .await?;
    Ok(web::Json(SupporterReportResponse::new(report, from, to)))
}

/// The supporter's purchase orders.
#[utoipa::path(
    tag = "supporters",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The supporter's id")),
    responses(
        (status = 200, description = "Purchases", body = Vec<PurchaseResponse>),
        (status = 404, description = "No such supporter visible to the caller", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/supporters/{id}/purchases")]
pub async fn list_purchases(
    auth: Auth<perm::SupporterRead>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<Vec<PurchaseResponse>>, ApiError> {
    let id = id.into_inner().to_string();
    let access = access(&auth);
    let found = with_db(&state, move |c| purchases::list(c, &access, &id)).await?;
    Ok(web::Json(
        found
            .into_iter()
            .map(|p| PurchaseResponse::new(p, None))
            .collect(),
    ))
}

/// Neighbourhoods of the caller's with no supporter of the programme on the day.
#[utoipa::path(
    tag = "supporters",
    security(("bearer" = [])),
    params(WithoutSupportersQuery),
    responses((status = 200, description = "Neighbourhoods", body = Vec<NeighbourhoodRef>)),
)]
#[get("/reports/neighbourhoods-without-supporters")]
pub async fn without_supporters(
    auth: Auth<perm::SupporterRead>,
    state: web::Data<AppState>,
    query: web::Query<WithoutSupportersQuery>,
) -> Result<web::Json<Vec<NeighbourhoodRef>>, ApiError> {
    let query = query.into_inner();
    let on = day_or_today("on", query.on.as_deref())?;
    let programme = ProgrammeId::from(query.programme_id);
    let scope = auth.scope();
    let found = with_db(&state, move |c| {
        supporters::neighbourhoods_without(c, &scope, programme, on)
    })
    .await?;
    Ok(web::Json(
        found
            .into_iter()
            .map(|(id, name_fa, name_en)| NeighbourhoodRef {
                id,
                name_fa,
                name_en,
            })
            .collect(),
    ))
}

/// Per neighbourhood of the caller's: supporters, allocated, spent and balance, from the ledger.
#[utoipa::path(
    tag = "supporters",
    security(("bearer" = [])),
    responses((status = 200, description = "Per neighbourhood", body = Vec<NeighbourhoodFundsResponse>)),
)]
#[get("/reports/neighbourhood-funds")]
pub async fn neighbourhood_funds(
    auth: Auth<perm::SupporterRead>,
    state: web::Data<AppState>,
) -> Result<web::Json<Vec<NeighbourhoodFundsResponse>>, ApiError> {
    let access = access(&auth);
    let found = with_db(&state, move |c| supporters::neighbourhood_funds(c, &access)).await?;
    Ok(web::Json(found.into_iter().map(Into::into).collect()))
}

/// A producer's products and raw materials.
#[utoipa::path(
    tag = "supporters",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The person's id")),
    responses(
        (status = 200, description = "Products", body = Vec<ProductResponse>),
        (status = 404, description = "No such person in the caller's scope", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/persons/{id}/products")]
pub async fn list_products(
    auth: Auth<perm::SupporterRead>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<Vec<ProductResponse>>, ApiError> {
    let person = PersonId::from(id.into_inner());
    let scope = auth.scope();
    let found = with_db(&state, move |c| purchases::products_of(c, &scope, person)).await?;
    Ok(web::Json(found.into_iter().map(Into::into).collect()))
}

/// Add a product or raw material to a producer's list (a holder of a valid permit).
#[utoipa::path(
    tag = "supporters",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The person's id")),
    request_body = CreateProductRequest,
    responses(
        (status = 201, description = "Added", body = ProductResponse),
        (status = 404, description = "No such person in the caller's scope", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, or not a producer", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/persons/{id}/products")]
pub async fn add_product(
    auth: Auth<perm::ProductWrite>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: web::Json<CreateProductRequest>,
) -> Result<HttpResponse, ApiError> {
    let person = PersonId::from(id.into_inner());
    let body = body.into_inner();
    let mut errors = tavana_domain::ValidationErrors::default();
    let name = optional_text(Some(body.name));
    let unit = optional_text(Some(body.unit));
    if name.is_none() {
        errors.push(tavana_domain::FieldError::new(
            "name", "required", "name it",
        ));
    }
    if unit.is_none() {
        errors.push(tavana_domain::FieldError::new(
            "unit",
            "required",
            "give the unit",
        ));
    }
    if !(1..=tavana_domain::funds::MAX_AMOUNT).contains(&body.reference_price) {
        errors.push(tavana_domain::FieldError::new(
            "reference_price",
            "out_of_range",
            "a positive whole number of rials",
        ));
    }
    errors.into_result()?;
    let (Some(name), Some(unit)) = (name, unit) else {
        return Err(ApiError::internal("checked above"));
    };
    let kind = body.kind.into();
    let (context, scope) = (auth.audit(), auth.scope());
    let product = with_db(&state, move |c| {
        purchases::add_product(
            c,
            &context,
            &scope,
            person,
            kind,
            name,
            unit,
            body.reference_price,
        )
    })
    .await?;
    Ok(HttpResponse::Created().json(ProductResponse::from(product)))
}

/// What a producer sold, by month and buyer (cancelled purchases left out).
#[utoipa::path(
    tag = "supporters",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The person's id")),
    responses(
        (status = 200, description = "Sales by month and buyer", body = Vec<SalesResponse>),
        (status = 404, description = "No such person in the caller's scope", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/persons/{id}/sales")]
pub async fn sales(
    auth: Auth<perm::SupporterRead>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<Vec<SalesResponse>>, ApiError> {
    let person = PersonId::from(id.into_inner());
    let access = access(&auth);
    let found = with_db(&state, move |c| {
        supporters::producer_sales(c, &access, person)
    })
    .await?;
    Ok(web::Json(found.into_iter().map(Into::into).collect()))
}

/// Place a purchase order with a producer (the supporter's own account). Its total is taken from
/// the supporter's funds at once; an order the funds do not cover is a 409 giving the balance.
/// `Idempotency-Key` is required: a retried order is charged once.
#[utoipa::path(
    tag = "purchases",
    security(("bearer" = [])),
    params(("Idempotency-Key" = String, Header, description = "Required. Retrying with the same key and body returns the first answer and charges nothing more")),
    request_body = CreatePurchaseRequest,
    responses(
        (status = 201, description = "Ordered; `balance` is the supporter's balance after it", body = PurchaseResponse),
        (status = 400, description = "No Idempotency-Key", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The funds do not cover it; `balance` gives the balance", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid lines; a producer not linked, without a valid permit, or of the supporter's own household", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/purchases")]
pub async fn create_purchase(
    auth: Auth<perm::PurchaseWrite>,
    state: web::Data<AppState>,
    key: IdempotencyKey,
    body: web::Json<CreatePurchaseRequest>,
) -> Result<HttpResponse, ApiError> {
    if key.0.is_none() {
        return Err(ApiError::BadRequest(
            "purchases need an Idempotency-Key header, so that a retry never charges twice"
                .to_owned(),
        ));
    }
    let body = body.into_inner();
    let request = key.request(&auth, "POST /api/v1/purchases", &body)?;
    let new = NewPurchase {
        supporter_id: body.supporter_id.clone(),
        producer_id: PersonId::from(body.producer_id),
        ordered_on: day_or_today("ordered_on", body.ordered_on.as_deref())?,
        lines: body
            .lines
            .iter()
            .map(|l| NewLine {
                product_id: l.product_id.clone(),
                kind: l.kind.into(),
                description: optional_text(l.description.clone()),
                quantity: l.quantity,
                unit_price: l.unit_price,
            })
            .collect(),
        reference: None,
    };
    let (context, access) = (auth.audit(), access(&auth));
    let render = |(p, balance): &(Purchase, i64)| {
        created(
            format!("/api/v1/purchases/{}", p.purchase.id),
            &PurchaseResponse::new(p.clone(), Some(*balance)),
        )
    };
    let outcome = with_db(&state, move |c| {
        idempotency::run(
            c,
            request.as_ref(),
            |c| purchases::create(c, &context, &access, new),
            render,
        )
    })
    .await?;
    respond(outcome, render)
}

/// Read one purchase order.
#[utoipa::path(
    tag = "purchases",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The purchase's id")),
    responses(
        (status = 200, description = "The purchase; `ETag` carries its version", body = PurchaseResponse),
        (status = 404, description = "No such purchase visible to the caller", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/purchases/{id}")]
pub async fn read_purchase(
    auth: Auth<perm::SupporterRead>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner().to_string();
    let access = access(&auth);
    let purchase = with_db(&state, move |c| purchases::get(c, &access, &id)).await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(purchase.purchase.version))
        .json(PurchaseResponse::new(purchase, None)))
}

/// Record the purchase's receipt, its payment to the producer, or its cancellation (with a
/// reason; a reversing entry restores the funds). Paid and cancelled are final.
#[utoipa::path(
    tag = "purchases",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The purchase's id"),
        ("If-Match" = Option<String>, Header, description = "The ETag last read; refused with 412 if the purchase changed since"),
    ),
    request_body = PurchaseTransitionRequest,
    responses(
        (status = 200, description = "Done", body = PurchaseResponse),
        (status = 404, description = "No such purchase visible to the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not allowed now; `allowed` lists what is", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "Changed since the ETag was read", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No reason to cancel, or dated before the order", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/purchases/{id}/transitions")]
pub async fn advance_purchase(
    auth: Auth<perm::PurchaseWrite>,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<Uuid>,
    body: web::Json<PurchaseTransitionRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner().to_string();
    let expected = if_match(&req)?;
    let body = body.into_inner();
    let on = day_or_today("on", body.on.as_deref())?;
    let to: PurchaseState = body.to.into();
    let reason = optional_text(body.reason);
    let (context, access) = (auth.audit(), access(&auth));
    let outcome = with_db(&state, move |c| {
        let done = purchases::advance(c, &context, &access, &id, expected, to, on, reason)?;
        let balance = match &done {
            Ok((p, Some(_))) => Some(supporters::ledger(c, &access, &p.purchase.supporter_id)?.0),
            _ => None,
        };
        Ok::<_, StoreError>((done, balance))
    })
    .await?;
    match outcome {
        (Ok((purchase, _)), balance) => Ok(HttpResponse::Ok()
            .insert_header(etag(purchase.purchase.version))
            .json(PurchaseResponse::new(purchase, balance))),
        (Err(refused), _) => Err(ApiError::NotAllowed {
            message: format!("a {} purchase cannot become {to}", refused.state),
            allowed: refused
                .allowed
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect(),
        }),
    }
}
