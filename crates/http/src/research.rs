//! `/research/aggregates`: the study's tables — people of a programme's enrolled households by
//! neighbourhood, age band, household type and stage — with cells under 5 people suppressed for
//! every caller. Partners count only people who consented to sharing, in their MoU's areas.

use actix_web::{get, web};
use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tavana_domain::calendar::parse_date;
use tavana_domain::id::ProgrammeId;
use tavana_domain::progress::MIN_CELL;
use tavana_domain::research::{Dimension, tabulate};
use tavana_persistence::research;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{Auth, perm};
use crate::error::{ApiError, Problem};
use crate::partners::viewer;
use crate::{AppState, with_db};

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(aggregates);
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AggregatesQuery {
    pub programme_id: Uuid,
    /// Comma-separated breakdowns: `neighbourhood`, `age_band`, `household_type`, `stage`; none
    /// gives the total.
    pub by: Option<String>,
    /// Ages on this day (Gregorian or Jalali; default today).
    pub as_of: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AggregatesResponse {
    pub programme_id: Uuid,
    pub as_of: NaiveDate,
    pub by: Vec<String>,
    /// Cells smaller than this are suppressed.
    pub min_cell: i64,
    /// Each cell has a field per breakdown asked for (`neighbourhood`, `age_band`,
    /// `household_type`, `stage`) and `people`, `women` and `in_sensitive_courses` (registered in
    /// an addiction or divorce prevention course): `null` when suppressed.
    #[schema(value_type = Vec<Object>)]
    pub cells: Vec<Map<String, Value>>,
    pub suppressed_cells: usize,
}

/// The study's tables, with small cells suppressed.
#[utoipa::path(
    tag = "partners",
    security(("bearer" = [])),
    params(AggregatesQuery),
    responses(
        (status = 200, description = "The tables", body = AggregatesResponse),
        (status = 403, description = "No MoU data policy in force", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/research/aggregates")]
pub async fn aggregates(
    auth: Auth<perm::ResearchRead>,
    state: web::Data<AppState>,
    query: web::Query<AggregatesQuery>,
) -> Result<web::Json<AggregatesResponse>, ApiError> {
    let query = query.into_inner();
    let as_of = match query.as_of {
        Some(day) => parse_date("as_of", &day)?,
        None => Utc::now().date_naive(),
    };
    let mut dimensions: Vec<Dimension> = Vec::new();
    for name in query.by.as_deref().unwrap_or_default().split(',') {
        let name = name.trim();
        if name.is_empty() {
            continue;
        }
        let dimension = name.parse::<Dimension>().map_err(|_| {
            ApiError::BadRequest(format!(
                "unknown breakdown `{name}`: neighbourhood, age_band, household_type or stage"
            ))
        })?;
        if !dimensions.contains(&dimension) {
            dimensions.push(dimension);
        }
    }
    let viewer = viewer(&state, &auth).await?;
    let programme = ProgrammeId::from(query.programme_id);
    // 404 for an unknown programme, as its other reports do.
    let subjects = with_db(&state, move |c| {
        tavana_persistence::programmes::get(c, programme)?;
        research::subjects(c, &viewer, programme, as_of)
    })
    .await?;
    let (cells, suppressed_cells) = tabulate(&subjects, &dimensions);
    let cells = cells
        .into_iter()
        .map(|cell| {
            let mut out = Map::new();
            for (dimension, value) in cell.key {
                out.insert(dimension.as_str().to_owned(), Value::from(value));
            }
            out.insert("people".to_owned(), cell.people.into());
            out.insert("women".to_owned(), cell.women.into());
            out.insert(
                "in_sensitive_courses".to_owned(),
                cell.in_sensitive_courses.into(),
            );
            out
        })
        .collect();
    Ok(web::Json(AggregatesResponse {
        programme_id: query.programme_id,
        as_of,
        by: dimensions.iter().map(|d| d.as_str().to_owned()).collect(),
        min_cell: MIN_CELL,
        cells,
        suppressed_cells,
    }))
}
