//! `/api/v1/programmes/{id}/progress` and `/api/v1/statistics`: progress toward the target and the
//! baseline statistics, as JSON, CSV (`Accept: text/csv`) or, for the burn-up, an SVG chart.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, get, web};
use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use tavana_domain::calendar::{parse_date, to_jalali};
use tavana_domain::id::ProgrammeId;
use tavana_domain::progress::{
    FunnelStage, HEADLINE, StageTotals, forecast, months, percent, shown_to_partners,
};
use tavana_persistence::progress::{self, NeighbourhoodStatistics, ProgressData};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{Auth, perm};
use crate::conventions::csv_response;
use crate::error::{ApiError, Problem};
use crate::{AppState, with_db};

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(show).service(chart).service(statistics);
}

/// Households per funnel stage; `null` where the cell is suppressed for partners (< 5).
#[derive(Debug, Serialize, ToSchema, Clone, Copy, PartialEq)]
pub struct StageCounts {
    pub identified: Option<i64>,
    pub assessed: Option<i64>,
    pub enrolled: Option<i64>,
    /// Entered training.
    pub trained: Option<i64>,
    pub permitted: Option<i64>,
    pub financed: Option<i64>,
    /// Reached `employed` with a member's employment outcome verified.
    pub employed_verified: Option<i64>,
}

impl StageCounts {
    fn new(totals: &StageTotals, suppress: bool) -> Self {
        let cell = |stage| {
            let n = totals.get(stage);
            (!suppress || shown_to_partners(n)).then_some(n)
        };
        Self {
            identified: cell(FunnelStage::Identified),
            assessed: cell(FunnelStage::Assessed),
            enrolled: cell(FunnelStage::Enrolled),
            trained: cell(FunnelStage::Trained),
            permitted: cell(FunnelStage::Permitted),
            financed: cell(FunnelStage::Financed),
            employed_verified: cell(FunnelStage::EmployedVerified),
        }
    }

    fn cells(&self) -> [Option<i64>; 7] {
        [
            self.identified,
            self.assessed,
            self.enrolled,
            self.trained,
            self.permitted,
            self.financed,
            self.employed_verified,
        ]
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StageLine {
    #[schema(example = "enrolled")]
    pub stage: String,
    #[schema(example = "ثبت‌نام")]
    pub label_fa: String,
    pub households: i64,
    /// The programme's target for this stage, else its household target.
    pub target: Option<i64>,
    pub percent_of_target: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NeighbourhoodLine {
    pub neighbourhood_id: String,
    pub name_fa: String,
    pub name_en: String,
    pub counts: StageCounts,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OfficeLine {
    pub office_id: String,
    pub name: String,
    /// The neighbourhoods it covers (in the caller's scope).
    pub neighbourhoods: Vec<String>,
    pub counts: StageCounts,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MonthLine {
    /// Jalali `YYYY-MM`.
    #[schema(example = "1398-07")]
    pub month: String,
    /// The last day counted: the month's last day, or `as_of` in its month.
    pub until: NaiveDate,
    /// Cumulative households per stage (the burn-up).
    pub counts: StageCounts,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ForecastResponse {
    /// The stage forecast: `enrolled`.
    pub stage: String,
    pub households_now: i64,
    /// At the pace so far, on the programme's last day.
    pub expected_at_end: i64,
    pub target: Option<i64>,
    pub on_track: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProgressResponse {
    pub programme_id: Uuid,
    pub code: String,
    pub name_fa: String,
    pub name_en: String,
    pub jalali_year: i32,
    pub starts_on: NaiveDate,
    pub ends_on: NaiveDate,
    pub as_of: NaiveDate,
    pub as_of_jalali: Option<String>,
    #[schema(example = 600)]
    pub target_households: Option<i64>,
    /// Households enrolled as a percentage of `target_households`.
    pub percent_of_target: Option<f64>,
    pub stages: Vec<StageLine>,
    pub by_neighbourhood: Vec<NeighbourhoodLine>,
    pub by_office: Vec<OfficeLine>,
    /// From the programme's first Jalali month to the month of `as_of`.
    pub months: Vec<MonthLine>,
    pub forecast: ForecastResponse,
    /// Whether cells under 5 households were suppressed (partners).
    pub suppressed_small_cells: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProgressQuery {
    /// Answer for a past day (Gregorian or Jalali) from the transition history; default today.
    pub as_of: Option<String>,
    /// With `Accept: text/csv`: which table — `stages` (default), `neighbourhoods`, `offices` or
    /// `months`.
    pub table: Option<String>,
}

/// First entries `(stage, day, households)`, of one neighbourhood or all.
fn entries<'a>(
    reached: &'a [tavana_persistence::progress::Reached],
    hood: Option<&'a str>,
) -> impl Iterator<Item = (FunnelStage, NaiveDate, i64)> + 'a {
    reached
        .iter()
        .filter(move |r| hood.is_none_or(|h| r.neighbourhood_id == h))
        .map(|r| (r.stage, r.day, r.households))
}

fn build(data: ProgressData, as_of: NaiveDate, suppress: bool) -> ProgressResponse {
    let p = &data.programme;
    let target = p.target_households.map(i64::from);
    let totals = StageTotals::until(entries(&data.reached, None), as_of);
    let stages = FunnelStage::ALL
        .iter()
        .map(|stage| {
            let stage_target = p
                .targets
                .iter()
                .find(|(s, _)| *s == stage.state() && *stage != FunnelStage::EmployedVerified)
                .map(|(_, t)| i64::from(*t))
                .or(target);
            StageLine {
                stage: stage.as_str().to_owned(),
                label_fa: stage.label_fa().to_owned(),
                households: totals.get(*stage),
                target: stage_target,
                percent_of_target: percent(totals.get(*stage), stage_target),
            }
        })
        .collect();
    let per_hood: Vec<(String, StageTotals)> = data
        .neighbourhoods
        .iter()
        .map(|(id, _, _)| {
            (
                id.clone(),
                StageTotals::until(entries(&data.reached, Some(id)), as_of),
            )
        })
        .collect();
    let by_neighbourhood = data
        .neighbourhoods
        .iter()
        .zip(&per_hood)
        .map(|((id, fa, en), (_, totals))| NeighbourhoodLine {
            neighbourhood_id: id.clone(),
            name_fa: fa.clone(),
            name_en: en.clone(),
            counts: StageCounts::new(totals, suppress),
        })
        .collect();
    let by_office = data
        .offices
        .iter()
        .map(|office| {
            let mut sum = StageTotals::default();
            for (_, totals) in per_hood
                .iter()
                .filter(|(h, _)| office.neighbourhoods.contains(h))
            {
                for stage in FunnelStage::ALL {
                    sum.add(*stage, totals.get(*stage));
                }
            }
            OfficeLine {
                office_id: office.id.clone(),
                name: office.name.clone(),
                neighbourhoods: office.neighbourhoods.clone(),
                counts: StageCounts::new(&sum, suppress),
            }
        })
        .collect();
    let month_lines = if as_of < p.starts_on {
        Vec::new()
    } else {
        months(p.starts_on, as_of)
            .into_iter()
            .map(|m| {
                let until = m.last_day.min(as_of);
                MonthLine {
                    month: m.label,
                    until,
                    counts: StageCounts::new(
                        &StageTotals::until(entries(&data.reached, None), until),
                        suppress,
                    ),
                }
            })
            .collect()
    };
    let now = totals.get(HEADLINE);
    let f = forecast(now, p.starts_on, p.ends_on, as_of, target);
    ProgressResponse {
        programme_id: p.id.as_uuid(),
        code: p.code.clone(),
        name_fa: p.name_fa.clone(),
        name_en: p.name_en.clone(),
        jalali_year: p.jalali_year,
        starts_on: p.starts_on,
        ends_on: p.ends_on,
        as_of,
        as_of_jalali: to_jalali(as_of).map(|j| j.to_string()),
        target_households: target,
        percent_of_target: percent(now, target),
        stages,
        by_neighbourhood,
        by_office,
        months: month_lines,
        forecast: ForecastResponse {
            stage: HEADLINE.as_str().to_owned(),
            households_now: now,
            expected_at_end: f.expected_at_end,
            target,
            on_track: f.on_track,
        },
        suppressed_small_cells: suppress,
    }
}

/// What the client asked for in `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
    Svg,
}

fn format_of(req: &HttpRequest) -> Format {
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // The first of the types we make that the client names, in its order.
    for part in accept.split(',') {
        let media = part.split(';').next().unwrap_or("").trim();
        match media {
            "text/csv" => return Format::Csv,
            "image/svg+xml" => return Format::Svg,
            "application/json" | "application/*" | "*/*" => return Format::Json,
            _ => {}
        }
    }
    Format::Json
}

async fn load(
    auth: &crate::auth::Caller,
    state: &web::Data<AppState>,
    id: Uuid,
    as_of: Option<&str>,
) -> Result<ProgressResponse, ApiError> {
    // A partner reads aggregates too only while its MoU is in force, and of its areas only.
    let mou = crate::partners::mou_neighbourhoods(state, auth).await?;
    let as_of = match as_of {
        Some(day) => parse_date("as_of", day)?,
        None => Utc::now().date_naive(),
    };
    let programme = ProgrammeId::from(id);
    let scope = auth.scope();
    let data = with_db(state, move |c| {
        progress::data(c, &scope, mou.as_deref(), programme, as_of)
    })
    .await?;
    Ok(build(data, as_of, auth.is_partner()))
}

/// Progress toward the programme's target: households per funnel stage, percent of target, by
/// neighbourhood and facilitation office, the cumulative burn-up by Jalali month, and a forecast
/// to the end of the programme year. `as_of` answers for a past day. A facilitator's report covers
/// their neighbourhoods only. Partners get cells under 5 households suppressed and the
/// neighbourhoods of their MoU's areas only, and nothing (403) while their organisation has no MoU
/// data policy in force.
///
/// `Accept: text/csv` returns one table as CSV (`table=`); `Accept: image/svg+xml` returns the
/// burn-up chart (also at `/progress.svg`).
#[utoipa::path(
    tag = "progress",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The programme's id"), ProgressQuery),
    responses(
        (status = 200, description = "The report",
         content(
            (ProgressResponse = "application/json"),
            (String = "text/csv"),
            (String = "image/svg+xml"),
         )),
        (status = 404, description = "No such programme", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/programmes/{id}/progress")]
pub async fn show(
    auth: Auth<perm::ReportRead>,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<Uuid>,
    query: web::Query<ProgressQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let format = format_of(&req);
    if format != Format::Csv && query.table.is_some() {
        return Err(ApiError::BadRequest(
            "`table` chooses a CSV table: send Accept: text/csv".to_owned(),
        ));
    }
    let report = load(&auth, &state, id.into_inner(), query.as_of.as_deref()).await?;
    match format {
        Format::Json => Ok(HttpResponse::Ok().json(report)),
        Format::Svg => Ok(svg_response(&report)),
        Format::Csv => csv_response(&progress_table(&report, query.table.as_deref())?),
    }
}

/// The burn-up chart of the headline stage against the target line, as SVG.
#[utoipa::path(
    tag = "progress",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The programme's id"), ("as_of" = Option<String>, Query, description = "A past day (default today)")),
    responses(
        (status = 200, description = "SVG", body = String, content_type = "image/svg+xml"),
        (status = 404, description = "No such programme", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/programmes/{id}/progress.svg")]
pub async fn chart(
    auth: Auth<perm::ReportRead>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    query: web::Query<ChartQuery>,
) -> Result<HttpResponse, ApiError> {
    let report = load(&auth, &state, id.into_inner(), query.as_of.as_deref()).await?;
    Ok(svg_response(&report))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChartQuery {
    pub as_of: Option<String>,
}

fn stage_header() -> Vec<String> {
    FunnelStage::ALL
        .iter()
        .map(|s| s.as_str().to_owned())
        .collect()
}

fn cells(counts: &StageCounts) -> Vec<String> {
    counts
        .cells()
        .iter()
        .map(|c| c.map(|n| n.to_string()).unwrap_or_default())
        .collect()
}

fn progress_table(
    report: &ProgressResponse,
    table: Option<&str>,
) -> Result<Vec<Vec<String>>, ApiError> {
    let mut rows: Vec<Vec<String>> = Vec::new();
    match table.unwrap_or("stages") {
        "stages" => {
            rows.push(
                [
                    "stage",
                    "label_fa",
                    "households",
                    "target",
                    "percent_of_target",
                ]
                .map(str::to_owned)
                .to_vec(),
            );
            for s in &report.stages {
                rows.push(vec![
                    s.stage.clone(),
                    s.label_fa.clone(),
                    s.households.to_string(),
                    s.target.map(|t| t.to_string()).unwrap_or_default(),
                    s.percent_of_target
                        .map(|p| p.to_string())
                        .unwrap_or_default(),
                ]);
            }
        }
        "neighbourhoods" => {
            let mut header = ["neighbourhood_id", "name_fa", "name_en"]
                .map(str::to_owned)
                .to_vec();
            header.extend(stage_header());
            rows.push(header);
            for n in &report.by_neighbourhood {
                let mut row = vec![
                    n.neighbourhood_id.clone(),
                    n.name_fa.clone(),
                    n.name_en.clone(),
                ];
                row.extend(cells(&n.counts));
                rows.push(row);
            }
        }
        "offices" => {
            let mut header = ["office_id", "name"].map(str::to_owned).to_vec();
            header.extend(stage_header());
            rows.push(header);
            for o in &report.by_office {
                let mut row = vec![o.office_id.clone(), o.name.clone()];
                row.extend(cells(&o.counts));
                rows.push(row);
            }
        }
        "months" => {
            let mut header = ["month", "until"].map(str::to_owned).to_vec();
            header.extend(stage_header());
            rows.push(header);
            for m in &report.months {
                let mut row = vec![m.month.clone(), m.until.to_string()];
                row.extend(cells(&m.counts));
                rows.push(row);
            }
        }
        other => {
            return Err(ApiError::BadRequest(format!(
                "unknown table `{other}`: stages, neighbourhoods, offices or months"
            )));
        }
    }
    Ok(rows)
}

fn svg_response(report: &ProgressResponse) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("image/svg+xml; charset=utf-8"),
        ))
        .body(burn_up_svg(report))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Western digits to Persian ones, for labels people read.
fn persian_digits(text: &str) -> String {
    text.chars()
        .map(|c| match c.to_digit(10) {
            Some(d) => char::from_u32(0x06F0 + d).unwrap_or(c),
            None => c,
        })
        .collect()
}

/// The burn-up of households enrolled by Jalali month, against the target line. Self-contained
/// (no scripts, no external fonts): a front end can embed it as is.
fn burn_up_svg(report: &ProgressResponse) -> String {
    let (width, height) = (800.0_f64, 420.0_f64);
    let (left, right, top, bottom) = (70.0, 30.0, 60.0, 70.0);
    let plot_w = width - left - right;
    let plot_h = height - top - bottom;
    let series: Vec<(String, i64)> = report
        .months
        .iter()
        .map(|m| (m.month.clone(), m.counts.enrolled.unwrap_or(0)))
        .collect();
    let target = report.target_households.unwrap_or(0);
    let highest = series
        .iter()
        .map(|(_, n)| *n)
        .max()
        .unwrap_or(0)
        .max(target)
        .max(1);
    let scale = (highest as f64 * 1.1).ceil();
    let slots = series.len().max(12) as f64;
    let x = |i: usize| left + plot_w * (i as f64 + 0.5) / slots;
    let y = |n: i64| top + plot_h - plot_h * (n as f64) / scale;
    let mut svg = String::new();
    svg.push_str(&format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" \
         width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" xml:lang=\"fa\" \
         font-family=\"Vazirmatn, 'Noto Sans Arabic', Tahoma, sans-serif\" role=\"img\">\n"
    ));
    let title = format!(
        "پیشرفت {} — خانوارهای ثبت‌نام‌شده تا {}",
        report.name_fa,
        report.as_of_jalali.clone().unwrap_or_default()
    );
    svg.push_str(&format!(
        "<title>{}</title>\n",
        escape(&persian_digits(&title))
    ));
    svg.push_str(&format!(
        "<rect x=\"0\" y=\"0\" width=\"{width}\" height=\"{height}\" fill=\"#ffffff\"/>\n"
    ));
    svg.push_str(&format!(
        "<text x=\"{}\" y=\"32\" text-anchor=\"middle\" direction=\"rtl\" unicode-bidi=\"embed\" \
         font-size=\"18\" fill=\"#222\">{}</text>\n",
        width / 2.0,
        escape(&persian_digits(&title))
    ));
    // Axes.
    svg.push_str(&format!(
        "<line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#888\"/>\n",
        top + plot_h,
        left + plot_w,
        top + plot_h
    ));
    svg.push_str(&format!(
        "<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{}\" stroke=\"#888\"/>\n",
        top + plot_h
    ));
    for step in 0..=4 {
        let n = (scale as i64) * step / 4;
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"12\" fill=\"#555\">{}</text>\n",
            left - 8.0,
            y(n) + 4.0,
            persian_digits(&n.to_string())
        ));
    }
    for (i, (month, _)) in series.iter().enumerate() {
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\" fill=\"#555\">{}</text>\n",
            x(i),
            top + plot_h + 18.0,
            escape(&persian_digits(month))
        ));
    }
    // The target line.
    if target > 0 {
        svg.push_str(&format!(
            "<line id=\"target-line\" x1=\"{left}\" y1=\"{:.1}\" x2=\"{}\" y2=\"{:.1}\" \
             stroke=\"#c0392b\" stroke-width=\"2\" stroke-dasharray=\"8 4\"/>\n",
            y(target),
            left + plot_w,
            y(target)
        ));
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" direction=\"rtl\" unicode-bidi=\"embed\" \
             font-size=\"13\" fill=\"#c0392b\">{}</text>\n",
            left + plot_w,
            y(target) - 6.0,
            escape(&persian_digits(&format!("هدف: {target} خانوار")))
        ));
    }
    // The burn-up.
    let points: Vec<String> = series
        .iter()
        .enumerate()
        .map(|(i, (_, n))| format!("{:.1},{:.1}", x(i), y(*n)))
        .collect();
    svg.push_str(&format!(
        "<polyline id=\"burn-up\" points=\"{}\" fill=\"none\" stroke=\"#2471a3\" stroke-width=\"3\"/>\n",
        points.join(" ")
    ));
    for (i, (month, n)) in series.iter().enumerate() {
        svg.push_str(&format!(
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"#2471a3\"><title>{}</title></circle>\n",
            x(i),
            y(*n),
            escape(&persian_digits(&format!("{month}: {n}")))
        ));
    }
    svg.push_str(&format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" direction=\"rtl\" unicode-bidi=\"embed\" \
         font-size=\"13\" fill=\"#2471a3\">{}</text>\n",
        width / 2.0,
        height - 20.0,
        escape(&persian_digits(&format!(
            "پیش‌بینی پایان سال: {} خانوار",
            report.forecast.expected_at_end
        )))
    ));
    svg.push_str("</svg>\n");
    svg
}

/// Baseline figures of a neighbourhood. Partners get `null` for any figure resting on fewer than 5
/// people (and for the counts themselves).
#[derive(Debug, Serialize, ToSchema)]
pub struct StatisticsLine {
    pub neighbourhood_id: String,
    pub name_fa: String,
    pub name_en: String,
    /// People whose latest assessment is counted.
    pub assessed: Option<i64>,
    /// Employed or unemployed: what the unemployment rate rests on.
    pub labour_force: Option<i64>,
    /// Unemployed / labour force, percent to one decimal.
    pub unemployment_rate: Option<f64>,
    /// Insured / assessed, percent.
    pub social_insurance_coverage: Option<f64>,
    /// Receiving at least one welfare service / assessed, percent.
    pub welfare_coverage: Option<f64>,
    /// Whether some figure of this line was suppressed.
    pub suppressed: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatisticsResponse {
    pub as_of: NaiveDate,
    pub neighbourhoods: Vec<StatisticsLine>,
    pub suppressed_small_cells: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatisticsQuery {
    /// From the latest assessments on or before this day (default today).
    pub as_of: Option<String>,
}

fn statistics_line(
    s: &NeighbourhoodStatistics,
    names: Option<&(String, String, String)>,
    suppress: bool,
) -> StatisticsLine {
    let keep = |n: i64| !suppress || shown_to_partners(n);
    let (assessed_ok, labour_ok) = (keep(s.assessed), keep(s.labour_force));
    StatisticsLine {
        neighbourhood_id: s.neighbourhood_id.clone(),
        name_fa: names.map(|n| n.1.clone()).unwrap_or_default(),
        name_en: names.map(|n| n.2.clone()).unwrap_or_default(),
        assessed: assessed_ok.then_some(s.assessed),
        labour_force: labour_ok.then_some(s.labour_force),
        unemployment_rate: labour_ok
            .then(|| percent(s.unemployed, Some(s.labour_force)))
            .flatten(),
        social_insurance_coverage: assessed_ok
            .then(|| percent(s.insured, Some(s.assessed)))
            .flatten(),
        welfare_coverage: assessed_ok
            .then(|| percent(s.welfare, Some(s.assessed)))
            .flatten(),
        suppressed: !(assessed_ok && labour_ok),
    }
}

/// Unemployment rate, social-insurance coverage and welfare-service coverage per neighbourhood,
/// from each person's latest assessment, with the number of people each figure rests on. Partners
/// get figures resting on fewer than 5 people suppressed and the neighbourhoods of their MoU's
/// areas only, and nothing (403) while their organisation has no MoU data policy in force.
/// `Accept: text/csv` for CSV.
#[utoipa::path(
    tag = "progress",
    security(("bearer" = [])),
    params(StatisticsQuery),
    responses((status = 200, description = "Per neighbourhood",
        content((StatisticsResponse = "application/json"), (String = "text/csv")))),
)]
#[get("/statistics")]
pub async fn statistics(
    auth: Auth<perm::ReportRead>,
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<StatisticsQuery>,
) -> Result<HttpResponse, ApiError> {
    // A partner reads aggregates too only while its MoU is in force, and of its areas only.
    let mou = crate::partners::mou_neighbourhoods(&state, &auth).await?;
    let as_of = match query.into_inner().as_of {
        Some(day) => parse_date("as_of", &day)?,
        None => Utc::now().date_naive(),
    };
    let scope = auth.scope();
    let (figures, names) = with_db(&state, move |c| {
        let figures = progress::statistics(c, &scope, mou.as_deref(), as_of)?;
        let names = tavana_persistence::areas::neighbourhood_names(c)?;
        Ok((figures, names))
    })
    .await?;
    let suppress = auth.is_partner();
    let lines: Vec<StatisticsLine> = figures
        .iter()
        .map(|s| {
            statistics_line(
                s,
                names.iter().find(|n| n.0 == s.neighbourhood_id),
                suppress,
            )
        })
        .collect();
    match format_of(&req) {
        Format::Csv => {
            let mut rows = vec![
                [
                    "neighbourhood_id",
                    "name_fa",
                    "name_en",
                    "assessed",
                    "labour_force",
                    "unemployment_rate",
                    "social_insurance_coverage",
                    "welfare_coverage",
                ]
                .map(str::to_owned)
                .to_vec(),
            ];
            let text = |v: Option<f64>| v.map(|n| n.to_string()).unwrap_or_default();
            for l in &lines {
                rows.push(vec![
                    l.neighbourhood_id.clone(),
                    l.name_fa.clone(),
                    l.name_en.clone(),
                    l.assessed.map(|n| n.to_string()).unwrap_or_default(),
                    l.labour_force.map(|n| n.to_string()).unwrap_or_default(),
                    text(l.unemployment_rate),
                    text(l.social_insurance_coverage),
                    text(l.welfare_coverage),
                ]);
            }
            csv_response(&rows)
        }
        _ => Ok(HttpResponse::Ok().json(StatisticsResponse {
            as_of,
            neighbourhoods: lines,
            suppressed_small_cells: suppress,
        })),
    }
}
