//! Partner integration: `/organisations/{id}/policy` (the MoU data policy) and `/changes` (the
//! feed partners keep their copies with). See docs/partner-integration.md.

use actix_web::{HttpResponse, get, post, put, web};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tavana_domain::ValidationErrors;
use tavana_domain::calendar::parse_date;
use tavana_domain::id::{AreaId, OrganisationId, PersonId};
use tavana_domain::partner::{Policy, Resource, Withheld, parse_list};
use tavana_persistence::changes::{self, PartnerView, Viewer};
use tavana_persistence::partner_policies::{self, StoredPolicy};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::assessments::{self, AssessmentResponse, RecordAssessmentRequest};
use crate::auth::{Auth, Caller, Principal, perm};
use crate::error::{ApiError, Problem};
use crate::households::{self, CreateHouseholdRequest, HouseholdResponse};
use crate::idempotency::IdempotencyKey;
use crate::{AppState, with_db};

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(read_policy)
        .service(set_policy)
        .service(feed)
        .service(submit_household)
        .service(submit_assessment);
}

api_enum!(
    /// A kind of record shared with partners.
    ResourceDto => Resource {
        Persons => "persons",
        Households => "households",
        Enrolments => "enrolments",
        Assessments => "assessments",
    }
);

api_enum!(
    /// A field a policy withholds: `names` is first and last name, `address` includes the postal
    /// code, and a withheld `birth_date` is given as `birth_year`.
    WithheldDto => Withheld {
        NationalId => "national_id",
        Mobile => "mobile",
        Names => "names",
        Address => "address",
        BirthDate => "birth_date",
    }
);

/// An organisation's MoU data policy.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyRequest {
    /// What the data is for, as the MoU says.
    #[schema(example = "The programme's baseline and follow-up study")]
    pub purpose: String,
    /// The MoU's first day, Gregorian or Jalali (`1404-01-01`).
    #[schema(example = "1404-01-01")]
    pub starts_on: String,
    /// The MoU's last day; nothing is shared after it.
    #[schema(example = "1404-12-29")]
    pub ends_on: String,
    /// What it may read (the feed's `types`).
    pub resources: Vec<ResourceDto>,
    /// Fields withheld from what it reads.
    #[serde(default)]
    pub withheld: Vec<WithheldDto>,
    /// What it may submit: `households` and `assessments` only.
    #[serde(default)]
    pub writes: Vec<ResourceDto>,
    /// The areas (any level: city, district, neighbourhood) the MoU covers; none for the whole
    /// programme.
    #[serde(default)]
    pub areas: Vec<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyResponse {
    pub organisation_id: Uuid,
    pub purpose: String,
    pub starts_on: NaiveDate,
    pub ends_on: NaiveDate,
    pub resources: Vec<ResourceDto>,
    pub withheld: Vec<WithheldDto>,
    pub writes: Vec<ResourceDto>,
    pub areas: Vec<Uuid>,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
}

impl From<StoredPolicy> for PolicyResponse {
    fn from(s: StoredPolicy) -> Self {
        Self {
            organisation_id: s.organisation_id.as_uuid(),
            purpose: s.policy.purpose,
            starts_on: s.policy.starts_on,
            ends_on: s.policy.ends_on,
            resources: s.policy.resources.into_iter().map(Into::into).collect(),
            withheld: s.policy.withheld.into_iter().map(Into::into).collect(),
            writes: s.policy.writes.into_iter().map(Into::into).collect(),
            areas: s.policy.areas.into_iter().map(|a| a.as_uuid()).collect(),
            version: s.version,
            updated_at: s.updated_at.and_utc(),
        }
    }
}

/// An organisation's MoU data policy.
#[utoipa::path(
    tag = "partners",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The organisation's id")),
    responses(
        (status = 200, description = "The policy", body = PolicyResponse),
        (status = 404, description = "No such organisation, or it has no policy", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/organisations/{id}/policy")]
pub async fn read_policy(
    _auth: Auth<perm::PartnerPolicyRead>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<PolicyResponse>, ApiError> {
    let id = OrganisationId::from(id.into_inner());
    let policy = with_db(&state, move |c| partner_policies::find(c, id)).await?;
    policy
        .map(|p| web::Json(p.into()))
        .ok_or(ApiError::NotFound)
}

/// Set an organisation's MoU data policy, replacing the one it had. Takes effect on the next
/// request of its users and clients; the change is audited with both versions.
#[utoipa::path(
    tag = "partners",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The organisation's id")),
    request_body = PolicyRequest,
    responses(
        (status = 200, description = "The policy now in place", body = PolicyResponse),
        (status = 404, description = "No such organisation", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[put("/organisations/{id}/policy")]
pub async fn set_policy(
    auth: Auth<perm::PartnerPolicyWrite>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: web::Json<PolicyRequest>,
) -> Result<web::Json<PolicyResponse>, ApiError> {
    let id = OrganisationId::from(id.into_inner());
    let body = body.into_inner();
    let names = |list: &[ResourceDto]| -> Vec<String> {
        list.iter()
            .map(|r| Resource::from(*r).as_str().to_owned())
            .collect()
    };
    let withheld: Vec<String> = body
        .withheld
        .iter()
        .map(|w| Withheld::from(*w).as_str().to_owned())
        .collect();
    let mut errors = ValidationErrors::default();
    let starts_on = errors.check(parse_date("starts_on", &body.starts_on));
    let ends_on = errors.check(parse_date("ends_on", &body.ends_on));
    let resources = errors.check(parse_list("resources", &names(&body.resources)));
    let withheld = errors.check(parse_list("withheld", &withheld));
    let writes = errors.check(parse_list("writes", &names(&body.writes)));
    let (Some(starts_on), Some(ends_on), Some(resources), Some(withheld), Some(writes)) =
        (starts_on, ends_on, resources, withheld, writes)
    else {
        return Err(errors.into());
    };
    let policy = Policy {
        purpose: body.purpose,
        starts_on,
        ends_on,
        resources,
        withheld,
        writes,
        areas: body.areas.into_iter().map(AreaId::from).collect(),
    };
    let context = auth.audit();
    let stored = with_db(&state, move |c| {
        partner_policies::put(c, &context, id, policy)
    })
    .await?;
    Ok(web::Json(stored.into()))
}

/// The organisation whose policy limits this caller: a partner user's or any API client's.
pub(crate) fn partner_organisation(caller: &Caller) -> Option<OrganisationId> {
    match &caller.principal {
        Principal::Client {
            organisation_id, ..
        } => Some(*organisation_id),
        Principal::User {
            organisation_id, ..
        } if caller.is_partner() => Some(*organisation_id),
        Principal::User { .. } => None,
    }
}

/// How this caller sees shared records: staff whole, partners under their policy (refused with
/// 403 when it is missing or not in force today).
pub(crate) async fn viewer(state: &AppState, caller: &Caller) -> Result<Viewer, ApiError> {
    match partner_organisation(caller) {
        None => Ok(Viewer::Staff),
        Some(org) => {
            let today = Utc::now().date_naive();
            with_db(state, move |c| Viewer::partner(c, org, today)).await
        }
    }
}

/// The neighbourhoods the caller's aggregates may count, within its scope too: a partner's MoU
/// areas (refused, as `viewer`, while no MoU is in force); `None` for staff and for an MoU over
/// the whole programme.
pub(crate) async fn mou_neighbourhoods(
    state: &AppState,
    caller: &Caller,
) -> Result<Option<Vec<String>>, ApiError> {
    Ok(match viewer(state, caller).await? {
        Viewer::Staff => None,
        Viewer::Partner(p) => p.neighbourhoods,
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// The `next_cursor` of the previous page; `0` (the default) starts from the beginning.
    pub after: Option<String>,
    /// Comma-separated kinds of record (`persons,households,enrolments,assessments`); all the
    /// caller's policy allows when absent.
    pub types: Option<String>,
    /// Page size, 1–1000 (default 200).
    pub limit: Option<u32>,
}

/// One change in the feed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeResponse {
    /// Its number: changes are numbered in commit order.
    pub seq: i64,
    /// `persons`, `households`, `enrolments` or `assessments`.
    #[serde(rename = "type")]
    pub resource: ResourceDto,
    pub id: Uuid,
    /// `created`, `updated` or `deleted`. A record the caller may no longer see (merged away,
    /// consent withdrawn, out of the MoU's areas) comes as `deleted`.
    pub op: String,
    pub changed_at: DateTime<Utc>,
    /// The record as it is now, shaped by the caller's policy; `null` when deleted.
    #[schema(value_type = Option<Object>)]
    pub data: Option<Map<String, Value>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FeedPage {
    pub items: Vec<ChangeResponse>,
    /// Where to continue: pass it as `after` next time. Always present; keep it with the copy.
    pub next_cursor: String,
    /// Whether more changes are waiting now; when false, poll again later with `next_cursor`.
    pub has_more: bool,
}

const FEED_DEFAULT: u32 = 200;
const FEED_MAX: u32 = 1000;

/// The changes feed: what was created, updated or deleted after the cursor, in commit order, as
/// the caller's MoU data policy and areas allow. Paging with `next_cursor` misses nothing and
/// repeats nothing, however writes interleave.
#[utoipa::path(
    tag = "partners",
    security(("bearer" = [])),
    params(FeedQuery),
    responses(
        (status = 200, description = "One page of changes", body = FeedPage),
        (status = 403, description = "No MoU data policy in force, or a type outside it", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/changes")]
pub async fn feed(
    auth: Auth<perm::ChangesRead>,
    state: web::Data<AppState>,
    query: web::Query<FeedQuery>,
) -> Result<web::Json<FeedPage>, ApiError> {
    let query = query.into_inner();
    let after: i64 =
        match query.after.as_deref().map(str::trim) {
            None | Some("") => 0,
            Some(text) => text.parse().ok().filter(|n: &i64| *n >= 0).ok_or_else(|| {
                ApiError::BadRequest("after must be a cursor from this feed".into())
            })?,
        };
    let limit = match query.limit.unwrap_or(FEED_DEFAULT) {
        n @ 1..=FEED_MAX => i64::from(n),
        n => {
            return Err(ApiError::BadRequest(format!(
                "limit must be between 1 and {FEED_MAX}, not {n}"
            )));
        }
    };
    let resources: Vec<Resource> = query
        .types
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<Resource>().map_err(|_| {
                ApiError::BadRequest(format!(
                    "unknown type `{t}`: persons, households, enrolments or assessments"
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    let viewer = viewer(&state, &auth).await?;
    let rows = with_db(&state, move |c| {
        changes::feed(c, &viewer, after, &resources, limit + 1)
    })
    .await?;
    let has_more = rows.len() as i64 > limit;
    let page: Vec<changes::Change> = rows
        .into_iter()
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .collect();
    // The cursor passes hidden changes too, so that they are not read again.
    let next_cursor = page.last().map_or(after, |c| c.seq).to_string();
    let items: Vec<ChangeResponse> = page
        .into_iter()
        .filter(|c| !c.hidden)
        .map(|c| {
            Ok(ChangeResponse {
                seq: c.seq,
                resource: c.resource.into(),
                id: Uuid::parse_str(&c.id).map_err(ApiError::internal)?,
                op: c.op.as_str().to_owned(),
                changed_at: c.changed_at.and_utc(),
                data: c.data,
            })
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(web::Json(FeedPage {
        items,
        next_cursor,
        has_more,
    }))
}

/// The caller's partner view; staff have none here (these endpoints are the partners' own).
pub(crate) async fn partner_view(
    state: &AppState,
    caller: &Caller,
) -> Result<PartnerView, ApiError> {
    match viewer(state, caller).await? {
        Viewer::Partner(view) => Ok(view),
        Viewer::Staff => Err(ApiError::Forbidden(
            "only partners submit through this endpoint".to_owned(),
        )),
    }
}

/// Submit a household found in the field, in one of the MoU's areas, where the caller's policy
/// lets it submit households. Send an `Idempotency-Key` to make retries safe.
#[utoipa::path(
    tag = "partners",
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Retrying with the same key and body returns the first answer and creates nothing")),
    request_body = CreateHouseholdRequest,
    responses(
        (status = 201, description = "Created; `Location` points to it", body = HouseholdResponse),
        (status = 403, description = "No MoU data policy in force, or it does not allow submitting households", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields or a neighbourhood outside the MoU's areas", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/partner/households")]
pub async fn submit_household(
    auth: Auth<perm::PartnerSubmit>,
    state: web::Data<AppState>,
    key: IdempotencyKey,
    body: web::Json<CreateHouseholdRequest>,
) -> Result<HttpResponse, ApiError> {
    let view = partner_view(&state, &auth).await?;
    let context = auth.audit();
    households::register(
        &auth,
        &state,
        key,
        "POST /api/v1/partner/households",
        body.into_inner(),
        move |c, new| partner_policies::submit_household(c, &context, &view, new),
    )
    .await
}

/// Submit an assessment of a person the caller may see (consent and areas, as in the feed), where
/// its policy lets it submit assessments.
#[utoipa::path(
    tag = "partners",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The person's id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retrying with the same key and body returns the first answer and records nothing twice"),
    ),
    request_body = RecordAssessmentRequest,
    responses(
        (status = 201, description = "Recorded", body = AssessmentResponse),
        (status = 403, description = "No MoU data policy in force, or it does not allow submitting assessments", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such person the caller may see", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The person's record was merged into another meanwhile, or a baseline was recorded at the same time", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, or a second baseline", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/partner/persons/{id}/assessments")]
pub async fn submit_assessment(
    auth: Auth<perm::PartnerSubmit>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    key: IdempotencyKey,
    body: web::Json<RecordAssessmentRequest>,
) -> Result<HttpResponse, ApiError> {
    let person = PersonId::from(id.into_inner());
    let view = partner_view(&state, &auth).await?;
    let context = auth.audit();
    assessments::assess(
        &auth,
        &state,
        key,
        &format!("POST /api/v1/partner/persons/{person}/assessments"),
        person,
        body.into_inner(),
        move |c, new| partner_policies::submit_assessment(c, &context, &view, person, new),
    )
    .await
}
