//! `/api/v1/programmes`: the programmes households are enrolled in, and their targets.

use actix_web::{get, web};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use tavana_domain::calendar::to_jalali;
use tavana_domain::id::ProgrammeId;
use tavana_persistence::programmes::{self, Programme};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{Auth, perm};
use crate::enrolments::EnrolmentStateDto;
use crate::error::{ApiError, Problem};
use crate::{AppState, with_db};

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list).service(read);
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StageTarget {
    pub stage: EnrolmentStateDto,
    pub target: i32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProgrammeResponse {
    pub id: Uuid,
    #[schema(example = "WHH-1398")]
    pub code: String,
    #[schema(example = "بانوان سرپرست خانوار ۱۳۹۸")]
    pub name_fa: String,
    #[schema(example = "Women heads of household 1398")]
    pub name_en: String,
    #[schema(example = 1398)]
    pub jalali_year: i32,
    pub area_id: Option<String>,
    /// Households the programme aims to reach.
    #[schema(example = 600)]
    pub target_households: Option<i32>,
    pub starts_on: NaiveDate,
    pub ends_on: NaiveDate,
    pub starts_on_jalali: Option<String>,
    pub ends_on_jalali: Option<String>,
    pub targets: Vec<StageTarget>,
}

impl From<Programme> for ProgrammeResponse {
    fn from(p: Programme) -> Self {
        Self {
            id: p.id.as_uuid(),
            code: p.code,
            name_fa: p.name_fa,
            name_en: p.name_en,
            jalali_year: p.jalali_year,
            area_id: p.area_id,
            target_households: p.target_households,
            starts_on_jalali: to_jalali(p.starts_on).map(|j| j.to_string()),
            ends_on_jalali: to_jalali(p.ends_on).map(|j| j.to_string()),
            starts_on: p.starts_on,
            ends_on: p.ends_on,
            targets: p
                .targets
                .into_iter()
                .map(|(stage, target)| StageTarget {
                    stage: stage.into(),
                    target,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListProgrammesQuery {
    /// Only programmes of this Jalali year.
    pub year: Option<i32>,
}

/// List programmes.
#[utoipa::path(
    tag = "programmes",
    security(("bearer" = [])),
    params(ListProgrammesQuery),
    responses((status = 200, description = "Programmes", body = Vec<ProgrammeResponse>)),
)]
#[get("/programmes")]
pub async fn list(
    _auth: Auth<perm::ProgrammeRead>,
    state: web::Data<AppState>,
    query: web::Query<ListProgrammesQuery>,
) -> Result<web::Json<Vec<ProgrammeResponse>>, ApiError> {
    let year = query.into_inner().year;
    let found = with_db(&state, move |c| programmes::list(c, year)).await?;
    Ok(web::Json(found.into_iter().map(Into::into).collect()))
}

/// Read one programme.
#[utoipa::path(
    tag = "programmes",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The programme's id")),
    responses(
        (status = 200, description = "The programme", body = ProgrammeResponse),
        (status = 404, description = "No such programme", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/programmes/{id}")]
pub async fn read(
    _auth: Auth<perm::ProgrammeRead>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<ProgrammeResponse>, ApiError> {
    let id = ProgrammeId::from(id.into_inner());
    let programme = with_db(&state, move |c| programmes::get(c, id)).await?;
    Ok(web::Json(programme.into()))
}
