//! `/api/v1/loan-products`, `/api/v1/loans` and `/api/v1/loan-portfolio`: micro-loans for home
//! workshops, from application to settlement or write-off, and portfolio at risk.

use actix_web::{HttpResponse, get, post, web};
use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use tavana_domain::calendar::to_jalali;
use tavana_domain::id::{OrganisationId, PersonId};
use tavana_domain::loan::{self, Bucket, LoanState, Par, Requirement, Terms};
use tavana_persistence::idempotency;
use tavana_persistence::loans::{self, ApplyOutcome, Loan, LoanRow, NewLoan, NewProduct, Product};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{Auth, Caller, perm};
use crate::conventions::{OptionalJson, day_or_today, etag, optional_text};
use crate::error::{ApiError, Problem};
use crate::idempotency::{IdempotencyKey, created, respond};
use crate::{AppState, with_db};

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list_products)
        .service(create_product)
        .service(list)
        .service(apply)
        .service(portfolio)
        .service(read)
        .service(approve)
        .service(reject)
        .service(disburse)
        .service(repay)
        .service(settlement)
        .service(settle)
        .service(write_off);
}

api_enum!(
    /// What a product requires of an applicant besides enrolment.
    RequirementDto => Requirement {
        None => "none",
        Permit => "permit",
        TechnicalCourse => "technical_course",
        PermitOrCourse => "permit_or_course",
    }
);
api_enum!(
    /// `applied` → `approved` (enough approvals) → `disbursed` → `settled` or `written_off`;
    /// `rejected` before the money leaves.
    LoanStateDto => LoanState {
        Applied => "applied",
        Approved => "approved",
        Rejected => "rejected",
        Disbursed => "disbursed",
        Settled => "settled",
        WrittenOff => "written_off",
    }
);

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProductRequest {
    pub name: String,
    /// Rials.
    pub min_amount: i64,
    /// Rials.
    pub max_amount: i64,
    /// Monthly instalments of principal, after the grace months.
    pub term_months: u32,
    /// Months before the principal is repaid; they carry only their fee (none at a zero rate).
    #[serde(default)]
    pub grace_months: u32,
    /// Annual service fee on the declining balance, in basis points (400 = 4 %); 0 for none.
    #[serde(default)]
    pub fee_rate_bp: u32,
    pub requirement: RequirementDto,
    /// The organisation funding the loans.
    pub funder_id: Uuid,
    /// Loans above this amount (rials) need a second, different approver.
    pub second_approval_above: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProductResponse {
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
}

impl From<Product> for ProductResponse {
    fn from(p: Product) -> Self {
        Self {
            id: p.id,
            name: p.name,
            min_amount: p.min_amount,
            max_amount: p.max_amount,
            term_months: p.term_months,
            grace_months: p.grace_months,
            fee_rate_bp: p.fee_rate_bp,
            requirement: p.requirement,
            funder_id: p.funder_id,
            second_approval_above: p.second_approval_above,
        }
    }
}

/// The loan products.
#[utoipa::path(
    tag = "loans",
    security(("bearer" = [])),
    responses((status = 200, description = "Products by name", body = Vec<ProductResponse>)),
)]
#[get("/loan-products")]
pub async fn list_products(
    _auth: Auth<perm::LoanRead>,
    state: web::Data<AppState>,
) -> Result<web::Json<Vec<ProductResponse>>, ApiError> {
    let found = with_db(&state, loans::products).await?;
    Ok(web::Json(found.into_iter().map(Into::into).collect()))
}

/// Configure a loan product.
#[utoipa::path(
    tag = "loans",
    security(("bearer" = [])),
    request_body = CreateProductRequest,
    responses(
        (status = 201, description = "Created", body = ProductResponse),
        (status = 409, description = "A product has this name (`existing_id`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid terms", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/loan-products")]
pub async fn create_product(
    auth: Auth<perm::LoanProductWrite>,
    state: web::Data<AppState>,
    body: web::Json<CreateProductRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let mut errors = tavana_domain::ValidationErrors::default();
    let name = optional_text(Some(body.name));
    if name.as_ref().is_none_or(|n| n.chars().count() > 200) {
        errors.push(tavana_domain::FieldError::new(
            "name",
            "length",
            "a name of 1 to 200 characters",
        ));
    }
    let terms = Terms {
        min_amount: body.min_amount,
        max_amount: body.max_amount,
        term_months: body.term_months,
        grace_months: body.grace_months,
        fee_rate_bp: body.fee_rate_bp,
    };
    if let Err(more) = loan::check_terms(&terms) {
        errors.0.extend(more.0);
    }
    if !(1..=tavana_domain::funds::MAX_AMOUNT).contains(&body.second_approval_above) {
        errors.push(tavana_domain::FieldError::new(
            "second_approval_above",
            "out_of_range",
            "a positive number of rials",
        ));
    }
    errors.into_result()?;
    let new = NewProduct {
        name: name.unwrap_or_default(),
        terms,
        requirement: body.requirement.into(),
        funder_id: OrganisationId::from(body.funder_id),
        second_approval_above: body.second_approval_above,
    };
    let context = auth.audit();
    let product = with_db(&state, move |c| loans::create_product(c, &context, new)).await?;
    Ok(HttpResponse::Created()
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("/api/v1/loan-products/{}", product.id),
        ))
        .json(ProductResponse::from(product)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InstalmentResponse {
    pub number: u32,
    pub due_on: NaiveDate,
    /// The due day in the Jalali calendar (YYYY-MM-DD).
    pub due_on_jalali: Option<String>,
    pub principal: i64,
    pub fee: i64,
    pub total: i64,
    /// Paid of it by `as_of`.
    pub paid_principal: i64,
    pub paid_fee: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoanResponse {
    pub id: String,
    pub product_id: String,
    pub person_id: String,
    pub neighbourhood_id: String,
    /// Rials.
    pub amount: i64,
    pub purpose: String,
    pub state: String,
    /// For a disbursed loan: `current` or `in_arrears` as of `as_of`.
    pub standing: Option<String>,
    pub term_months: i32,
    pub grace_months: i32,
    pub fee_rate_bp: i32,
    pub approvals_needed: i32,
    /// User ids of the approvers so far.
    pub approvals: Vec<String>,
    pub write_off_approvals: Vec<String>,
    pub applied_on: NaiveDate,
    pub disbursed_on: Option<NaiveDate>,
    pub closed_on: Option<NaiveDate>,
    pub rejection_reason: Option<String>,
    /// What the borrower owes by the ledger: the amount and the schedule's fees, less repayments,
    /// waived fees and a write-off.
    pub balance: i64,
    /// The day the arrears and the paid amounts are computed for.
    pub as_of: NaiveDate,
    pub days_past_due: i64,
    /// `1_30`, `31_60`, `61_90` or `90_plus` days past due; null when nothing is overdue.
    pub bucket: Option<String>,
    /// Rials due before `as_of` and unpaid.
    pub overdue: i64,
    pub schedule: Vec<InstalmentResponse>,
    pub version: i64,
}

impl From<Loan> for LoanResponse {
    fn from(l: Loan) -> Self {
        let state = l.row.state.clone();
        let standing = (state == LoanState::Disbursed.as_str())
            .then(|| loan::standing(&l.arrears).as_str().to_owned());
        Self {
            standing,
            schedule: l
                .schedule
                .iter()
                .map(|(due, paid)| InstalmentResponse {
                    number: due.number,
                    due_on: due.due_on,
                    due_on_jalali: to_jalali(due.due_on).map(|d| d.to_string()),
                    principal: due.principal,
                    fee: due.fee,
                    total: due.principal.saturating_add(due.fee),
                    paid_principal: paid.principal,
                    paid_fee: paid.fee,
                })
                .collect(),
            approvals: l.approvals,
            write_off_approvals: l.write_off_approvals,
            balance: l.balance,
            as_of: l.as_of,
            days_past_due: l.arrears.days_past_due,
            bucket: l.arrears.bucket.map(|b: Bucket| b.as_str().to_owned()),
            overdue: l.arrears.overdue,
            id: l.row.id,
            product_id: l.row.product_id,
            person_id: l.row.person_id,
            neighbourhood_id: l.row.neighbourhood_id,
            amount: l.row.amount,
            purpose: l.row.purpose,
            state,
            term_months: l.row.term_months,
            grace_months: l.row.grace_months,
            fee_rate_bp: l.row.fee_rate_bp,
            approvals_needed: l.row.approvals_needed,
            applied_on: l.row.applied_on,
            disbursed_on: l.row.disbursed_on,
            closed_on: l.row.closed_on,
            rejection_reason: l.row.rejection_reason,
            version: l.row.version,
        }
    }
}

/// A loan in a list: its stored fields.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoanSummary {
    pub id: String,
    pub product_id: String,
    pub person_id: String,
    pub neighbourhood_id: String,
    pub amount: i64,
    pub state: String,
    pub applied_on: NaiveDate,
    pub disbursed_on: Option<NaiveDate>,
    pub closed_on: Option<NaiveDate>,
}

impl From<LoanRow> for LoanSummary {
    fn from(r: LoanRow) -> Self {
        Self {
            id: r.id,
            product_id: r.product_id,
            person_id: r.person_id,
            neighbourhood_id: r.neighbourhood_id,
            amount: r.amount,
            state: r.state,
            applied_on: r.applied_on,
            disbursed_on: r.disbursed_on,
            closed_on: r.closed_on,
        }
    }
}

fn ok(l: Loan) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(etag(l.row.version))
        .json(LoanResponse::from(l))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    pub state: Option<LoanStateDto>,
    pub person_id: Option<Uuid>,
    /// At most this many, newest first (default 100, at most 1000).
    pub limit: Option<i64>,
}

/// Loans in the caller's neighbourhoods, newest first.
#[utoipa::path(
    tag = "loans",
    security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, description = "Loans", body = Vec<LoanSummary>)),
)]
#[get("/loans")]
pub async fn list(
    auth: Auth<perm::LoanRead>,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<web::Json<Vec<LoanSummary>>, ApiError> {
    let query = query.into_inner();
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let scope = auth.scope();
    let found = with_db(&state, move |c| {
        loans::list(
            c,
            &scope,
            query.state.map(Into::into),
            query.person_id.map(PersonId::from),
            limit,
        )
    })
    .await?;
    Ok(web::Json(found.into_iter().map(Into::into).collect()))
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyRequest {
    pub person_id: Uuid,
    pub product_id: Uuid,
    /// Rials, within the product's range.
    pub amount: i64,
    pub purpose: String,
    /// Default today.
    pub applied_on: Option<String>,
}

/// Apply for a loan for a person in the caller's neighbourhoods. Eligibility is checked and,
/// when it fails, explained rule by rule (`enrolled`, the product's `permit`,
/// `technical_training` or `permit_or_technical_training`, `no_arrears`).
#[utoipa::path(
    tag = "loans",
    security(("bearer" = [])),
    request_body = ApplyRequest,
    responses(
        (status = 201, description = "Applied", body = LoanResponse),
        (status = 422, description = "Not eligible: `errors` names each failed rule (`code` is the rule); or invalid fields", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/loans")]
pub async fn apply(
    auth: Auth<perm::LoanWrite>,
    state: web::Data<AppState>,
    body: web::Json<ApplyRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let on = day_or_today("applied_on", body.applied_on.as_deref())?;
    let Some(purpose) = optional_text(Some(body.purpose)) else {
        return Err(tavana_domain::FieldError::new(
            "purpose",
            "required",
            "say what the loan is for",
        )
        .into());
    };
    let new = NewLoan {
        person_id: PersonId::from(body.person_id),
        product_id: body.product_id.to_string(),
        amount: body.amount,
        purpose,
        on,
    };
    let (context, scope) = (auth.audit(), auth.scope());
    match with_db(&state, move |c| {
        loans::apply(c, &context, &scope, new, today())
    })
    .await?
    {
        ApplyOutcome::Applied(l) => Ok(HttpResponse::Created()
            .insert_header((
                actix_web::http::header::LOCATION,
                format!("/api/v1/loans/{}", l.row.id),
            ))
            .insert_header(etag(l.row.version))
            .json(LoanResponse::from(*l))),
        ApplyOutcome::Ineligible(checks) => {
            let mut errors = tavana_domain::ValidationErrors::default();
            for check in checks.into_iter().filter(|c| !c.passed) {
                errors.push(tavana_domain::FieldError::new(
                    check.rule.field(),
                    check.rule.as_str(),
                    check.explanation,
                ));
            }
            Err(errors.into())
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AsOfQuery {
    /// The day to compute arrears and payments for (default today), Gregorian or Jalali.
    pub as_of: Option<String>,
}

/// A loan with its schedule, balance and arrears as of a day.
#[utoipa::path(
    tag = "loans",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The loan's id"), AsOfQuery),
    responses(
        (status = 200, description = "The loan; `ETag` carries its version", body = LoanResponse),
        (status = 404, description = "No such loan in the caller's neighbourhoods", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/loans/{id}")]
pub async fn read(
    auth: Auth<perm::LoanRead>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    query: web::Query<AsOfQuery>,
) -> Result<HttpResponse, ApiError> {
    let as_of = day_or_today("as_of", query.as_of.as_deref())?;
    let (id, scope) = (id.into_inner().to_string(), auth.scope());
    let l = with_db(&state, move |c| loans::get(c, &scope, &id, as_of)).await?;
    Ok(ok(l))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteRequest {
    pub note: Option<String>,
}

fn approver(auth: &Caller) -> Result<tavana_domain::id::UserId, ApiError> {
    auth.user_id()
        .ok_or_else(|| ApiError::Forbidden("approvals are given by staff accounts".to_owned()))
}

/// Approve an application (programme managers). Above the product's threshold a second,
/// different manager must approve too; the loan is `approved` with the last approval needed.
#[utoipa::path(
    tag = "loans",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The loan's id")),
    request_body = NoteRequest,
    responses(
        (status = 200, description = "Approval recorded", body = LoanResponse),
        (status = 404, description = "No such loan", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not an application", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The same manager approved already (`same_approver`)", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/loans/{id}/approve")]
pub async fn approve(
    auth: Auth<perm::LoanApprove>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: OptionalJson<NoteRequest>,
) -> Result<HttpResponse, ApiError> {
    let note = optional_text(body.0.and_then(|b| b.note));
    let (id, scope, context, user) = (
        id.into_inner().to_string(),
        auth.scope(),
        auth.audit(),
        approver(&auth)?,
    );
    let l = with_db(&state, move |c| {
        loans::approve(c, &context, &scope, &id, user, note, today())
    })
    .await?;
    Ok(ok(l))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectRequest {
    pub reason: String,
}

/// Reject an application, or cancel an approved loan before it is paid out.
#[utoipa::path(
    tag = "loans",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The loan's id")),
    request_body = RejectRequest,
    responses(
        (status = 200, description = "Rejected", body = LoanResponse),
        (status = 404, description = "No such loan", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Disbursed or closed already", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No reason", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/loans/{id}/reject")]
pub async fn reject(
    auth: Auth<perm::LoanApprove>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: web::Json<RejectRequest>,
) -> Result<HttpResponse, ApiError> {
    let Some(reason) = optional_text(Some(body.into_inner().reason)) else {
        return Err(
            tavana_domain::FieldError::new("reason", "required", "say why it is rejected").into(),
        );
    };
    let (id, scope, context) = (id.into_inner().to_string(), auth.scope(), auth.audit());
    let l = with_db(&state, move |c| {
        loans::reject(c, &context, &scope, &id, reason, today())
    })
    .await?;
    Ok(ok(l))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisburseRequest {
    /// Default today; not before the application.
    pub disbursed_on: Option<String>,
}

/// Pay an approved loan out: the repayment schedule is made, the amount and the schedule's fees
/// are posted to the ledger, and the household's enrolment moves to `financed` where the
/// programme's `advance_on_loan` rule says so.
#[utoipa::path(
    tag = "loans",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The loan's id")),
    request_body = DisburseRequest,
    responses(
        (status = 200, description = "Disbursed, with its schedule", body = LoanResponse),
        (status = 404, description = "No such loan", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not approved", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/loans/{id}/disburse")]
pub async fn disburse(
    auth: Auth<perm::LoanApprove>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: OptionalJson<DisburseRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0.unwrap_or_default();
    let on = day_or_today("disbursed_on", body.disbursed_on.as_deref())?;
    let (id, scope, context) = (id.into_inner().to_string(), auth.scope(), auth.audit());
    let l = with_db(&state, move |c| {
        loans::disburse(c, &context, &scope, &id, on, today())
    })
    .await?;
    Ok(ok(l))
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RepaymentRequest {
    /// Rials; at most what is still owed.
    pub amount: i64,
    /// Default today.
    pub paid_on: Option<String>,
}

/// Record a repayment. It pays the oldest instalment first, its fee before its principal, and
/// may pay ahead; more than is still owed is refused (`overpayment`: no credit is kept). The loan
/// is `settled` when nothing is owed. `Idempotency-Key` is required: a retry records it once.
#[utoipa::path(
    tag = "loans",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The loan's id"),
        ("Idempotency-Key" = String, Header, description = "Required. Retrying with the same key and body returns the first answer and records nothing more"),
    ),
    request_body = RepaymentRequest,
    responses(
        (status = 201, description = "Recorded; the loan after it", body = LoanResponse),
        (status = 400, description = "No Idempotency-Key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such loan", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not disbursed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Overpayment, a date before the disbursement or in the future", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/loans/{id}/repayments")]
pub async fn repay(
    auth: Auth<perm::LoanWrite>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    key: IdempotencyKey,
    body: web::Json<RepaymentRequest>,
) -> Result<HttpResponse, ApiError> {
    if key.0.is_none() {
        return Err(ApiError::BadRequest(
            "repayments need an Idempotency-Key header, so that a retry never records twice"
                .to_owned(),
        ));
    }
    let id = id.into_inner().to_string();
    let body = body.into_inner();
    let request = key.request(&auth, &format!("POST /api/v1/loans/{id}/repayments"), &body)?;
    let on = day_or_today("paid_on", body.paid_on.as_deref())?;
    let (scope, context, amount) = (auth.scope(), auth.audit(), body.amount);
    let render = |l: &Loan| {
        created(
            format!("/api/v1/loans/{}", l.row.id),
            &LoanResponse::from(l.clone()),
        )
    };
    let outcome = with_db(&state, move |c| {
        idempotency::run(
            c,
            request.as_ref(),
            |c| loans::repay(c, &context, &scope, &id, amount, on, today()),
            render,
        )
    })
    .await?;
    respond(outcome, render)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SettlementQuery {
    /// The day of settlement (default today).
    pub on: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SettlementResponse {
    pub on: NaiveDate,
    /// Unpaid principal.
    pub principal: i64,
    /// Unpaid fees due by the day, and the fee of the month running.
    pub fee: i64,
    /// What settling takes.
    pub total: i64,
    /// Later fees, waived on settling.
    pub waived_fee: i64,
}

/// What settling a disbursed loan early would take on a day: all unpaid principal, the unpaid
/// fees due by then and the fee of the month running; later fees are waived.
#[utoipa::path(
    tag = "loans",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The loan's id"), SettlementQuery),
    responses(
        (status = 200, description = "The settlement", body = SettlementResponse),
        (status = 404, description = "No such loan", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not disbursed", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/loans/{id}/settlement")]
pub async fn settlement(
    auth: Auth<perm::LoanRead>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    query: web::Query<SettlementQuery>,
) -> Result<web::Json<SettlementResponse>, ApiError> {
    let on = day_or_today("on", query.on.as_deref())?;
    let (id, scope) = (id.into_inner().to_string(), auth.scope());
    let s = with_db(&state, move |c| loans::settlement_quote(c, &scope, &id, on)).await?;
    Ok(web::Json(SettlementResponse {
        on,
        principal: s.principal,
        fee: s.fee,
        total: s.total(),
        waived_fee: s.waived_fee,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettleRequest {
    /// Default today.
    pub on: Option<String>,
    /// The rials paid: must be the settlement's total for that day (see `GET .../settlement`).
    pub amount: i64,
}

/// Settle a loan early: the amount paid, which must be the settlement's total for the day
/// (`settlement_differs` otherwise), is recorded, later fees are waived, and the loan is
/// `settled`.
#[utoipa::path(
    tag = "loans",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The loan's id")),
    request_body = SettleRequest,
    responses(
        (status = 200, description = "Settled", body = LoanResponse),
        (status = 404, description = "No such loan", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not disbursed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The amount is not the settlement's total", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/loans/{id}/settle")]
pub async fn settle(
    auth: Auth<perm::LoanWrite>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: web::Json<SettleRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let on = day_or_today("on", body.on.as_deref())?;
    let (id, scope, context, amount) = (
        id.into_inner().to_string(),
        auth.scope(),
        auth.audit(),
        body.amount,
    );
    let l = with_db(&state, move |c| {
        loans::settle(c, &context, &scope, &id, on, amount, today())
    })
    .await?;
    Ok(ok(l))
}

/// Approve writing a disbursed loan off. Two different programme managers must approve; at the
/// second, what is owed is written off in the ledger and the loan is `written_off`.
#[utoipa::path(
    tag = "loans",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The loan's id")),
    request_body = NoteRequest,
    responses(
        (status = 200, description = "Approval recorded (written off at the second)", body = LoanResponse),
        (status = 404, description = "No such loan", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not disbursed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The same manager approved already (`same_approver`)", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/loans/{id}/write-off")]
pub async fn write_off(
    auth: Auth<perm::LoanApprove>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: OptionalJson<NoteRequest>,
) -> Result<HttpResponse, ApiError> {
    let note = optional_text(body.0.and_then(|b| b.note));
    let (id, scope, context, user) = (
        id.into_inner().to_string(),
        auth.scope(),
        auth.audit(),
        approver(&auth)?,
    );
    let l = with_db(&state, move |c| {
        loans::write_off(c, &context, &scope, &id, user, note, today())
    })
    .await?;
    Ok(ok(l))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PortfolioQuery {
    /// Default today.
    pub as_of: Option<String>,
    /// Days past due beyond which a loan is at risk (default 30: PAR30).
    pub days: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ParResponse {
    /// Outstanding principal of the loans more than `days` past due.
    pub at_risk: i64,
    /// Outstanding principal of all loans out.
    pub outstanding: i64,
    /// at_risk / outstanding in basis points (1/100 of a percent); null when nothing is out.
    pub basis_points: Option<i64>,
}

impl From<Par> for ParResponse {
    fn from(p: Par) -> Self {
        Self {
            at_risk: p.at_risk,
            outstanding: p.outstanding,
            basis_points: p.basis_points,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupPar {
    pub id: String,
    #[serde(flatten)]
    pub par: ParResponse,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PortfolioResponse {
    pub as_of: NaiveDate,
    pub days: i64,
    /// Loans out on `as_of`: disbursed by then, not settled or written off by then.
    pub loans: usize,
    pub total: ParResponse,
    pub by_neighbourhood: Vec<GroupPar>,
    pub by_product: Vec<GroupPar>,
}

/// Portfolio at risk of the loans in the caller's neighbourhoods as of a day, overall, by
/// neighbourhood and by product. Computed from the schedules and repayments, never stored.
#[utoipa::path(
    tag = "loans",
    security(("bearer" = [])),
    params(PortfolioQuery),
    responses((status = 200, description = "PAR", body = PortfolioResponse)),
)]
#[get("/loan-portfolio")]
pub async fn portfolio(
    auth: Auth<perm::LoanRead>,
    state: web::Data<AppState>,
    query: web::Query<PortfolioQuery>,
) -> Result<web::Json<PortfolioResponse>, ApiError> {
    let as_of = day_or_today("as_of", query.as_of.as_deref())?;
    let days = query.days.unwrap_or(30).clamp(0, 3650);
    let scope = auth.scope();
    let p = with_db(&state, move |c| loans::portfolio(c, &scope, as_of, days)).await?;
    let groups = |g: Vec<(String, Par)>| {
        g.into_iter()
            .map(|(id, par)| GroupPar {
                id,
                par: par.into(),
            })
            .collect()
    };
    Ok(web::Json(PortfolioResponse {
        as_of: p.as_of,
        days: p.days,
        loans: p.loans,
        total: p.total.into(),
        by_neighbourhood: groups(p.by_neighbourhood),
        by_product: groups(p.by_product),
    }))
}
