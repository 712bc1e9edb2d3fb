//! `/api/v1/users`: staff accounts, managed by administrators.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tavana_domain::access::Role;
use tavana_domain::id::{AreaId, OrganisationId, UserId};
use tavana_domain::organisation::{User, check_password, parse_name, parse_username};
use tavana_domain::{FieldError, ValidationErrors};
use tavana_persistence::idempotency;
use tavana_persistence::users::{self, NewUser, UserChanges, UserFilter};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::password::{gated, hash_password};
use crate::auth::{Auth, perm};
use crate::conventions::{etag, if_match};
use crate::error::{ApiError, Problem};
use crate::idempotency::{IdempotencyKey, created, respond};
use crate::pagination::{self, Page};
use crate::{AppState, with_db};

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list)
        .service(create)
        .service(read)
        .service(update)
        .service(deactivate);
}

api_enum!(
    /// A staff member's role.
    RoleDto => Role {
        Admin => "admin",
        ProgrammeManager => "programme_manager",
        Facilitator => "facilitator",
        Trainer => "trainer",
        PermitOfficer => "permit_officer",
        Supporter => "supporter",
        Partner => "partner",
        Auditor => "auditor",
    }
);

/// A user as the API shows it: never the password or its hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserResponse {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub role: RoleDto,
    pub organisation_id: Uuid,
    /// The areas an area-scoped role (facilitator, trainer, supporter) is limited to.
    pub areas: Vec<Uuid>,
    pub active: bool,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<User> for UserResponse {
    fn from(user: User) -> Self {
        Self {
            id: user.id.as_uuid(),
            username: user.username,
            display_name: user.display_name,
            role: user.role.into(),
            organisation_id: user.organisation_id.as_uuid(),
            areas: user.areas.iter().map(AreaId::as_uuid).collect(),
            active: user.active,
            version: user.version,
            created_at: user.created_at.and_utc(),
            updated_at: user.updated_at.and_utc(),
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// 3–64 Latin letters, digits, `.`, `_`, `-`; case-insensitive.
    #[schema(example = "f.rezaei")]
    pub username: String,
    #[schema(example = "فاطمه رضایی")]
    pub display_name: String,
    /// At least 12 characters, not the username. Never stored or shown: only its argon2id hash is.
    /// (Left out of the Idempotency-Key request hash, so not even a fast hash of it is kept.)
    #[serde(skip_serializing)]
    pub password: String,
    pub role: RoleDto,
    pub organisation_id: Uuid,
    /// Required for facilitators, trainers and supporters: the areas they work in.
    #[serde(default)]
    pub areas: Vec<Uuid>,
}

/// Fields to change; absent fields stay as they are. Send the current `version` in `If-Match`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    pub display_name: Option<String>,
    pub role: Option<RoleDto>,
    pub organisation_id: Option<Uuid>,
    pub areas: Option<Vec<Uuid>>,
    pub active: Option<bool>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListUsersQuery {
    pub role: Option<RoleDto>,
    pub organisation_id: Option<Uuid>,
    pub active: Option<bool>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

fn check_area_scope(role: Role, areas: &[Uuid]) -> Result<(), FieldError> {
    if role.is_area_scoped() && areas.is_empty() {
        return Err(FieldError::new(
            "areas",
            "required",
            format!("a {role} must be assigned at least one area"),
        ));
    }
    Ok(())
}

/// List users.
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    params(ListUsersQuery),
    responses((status = 200, description = "One page of users", body = Page<UserResponse>)),
)]
#[get("/users")]
pub async fn list(
    _auth: Auth<perm::UserRead>,
    state: web::Data<AppState>,
    query: web::Query<ListUsersQuery>,
) -> Result<web::Json<Page<UserResponse>>, ApiError> {
    let query = query.into_inner();
    let limit = pagination::limit(query.limit)?;
    let after: Option<UserId> = query
        .cursor
        .as_deref()
        .map(pagination::decode_cursor)
        .transpose()?;
    let filter = UserFilter {
        role: query.role.map(Into::into),
        organisation_id: query.organisation_id.map(OrganisationId::from),
        active: query.active,
    };
    let (items, more) = with_db(&state, move |c| users::list(c, &filter, after, limit)).await?;
    let next_cursor = pagination::next_cursor(more, items.last().map(|u| u.id.to_string()));
    Ok(web::Json(Page {
        items: items.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// Read one user.
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The user's id")),
    responses(
        (status = 200, description = "The user; `ETag` carries the version", body = UserResponse),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/users/{id}")]
pub async fn read(
    _auth: Auth<perm::UserRead>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = UserId::from(id.into_inner());
    let user = with_db(&state, move |c| users::get(c, id)).await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(user.version))
        .json(UserResponse::from(user)))
}

/// Create a user.
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Retrying with the same key and body returns the first answer and creates nothing")),
    request_body = CreateUserRequest,
    responses(
        (status = 201, description = "Created", body = UserResponse),
        (status = 409, description = "The username is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/users")]
pub async fn create(
    auth: Auth<perm::UserWrite>,
    state: web::Data<AppState>,
    key: IdempotencyKey,
    body: web::Json<CreateUserRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let request = key.request(&auth, "POST /api/v1/users", &body)?;
    let role: Role = body.role.into();
    let mut errors = ValidationErrors::default();
    let username = errors.check(parse_username(&body.username));
    let display_name = errors.check(parse_name("display_name", &body.display_name));
    errors.check(check_password("password", &body.password, &body.username));
    errors.check(check_area_scope(role, &body.areas));
    errors.clone().into_result()?;
    let (Some(username), Some(display_name)) = (username, display_name) else {
        return Err(errors.into());
    };
    let password = body.password;
    let password_hash = gated(move || hash_password(&password))
        .await?
        .map_err(ApiError::internal)?;
    let new = NewUser {
        username,
        display_name,
        password_hash,
        role,
        organisation_id: body.organisation_id.into(),
        areas: body.areas.into_iter().map(AreaId::from).collect(),
    };
    let context = auth.audit();
    let render = |user: &User| {
        created(
            format!("/api/v1/users/{}", user.id),
            &UserResponse::from(user.clone()),
        )
    };
    let outcome = with_db(&state, move |c| {
        idempotency::run(
            c,
            request.as_ref(),
            |c| users::create(c, &context, new),
            render,
        )
    })
    .await?;
    respond(outcome, render)
}

/// Change a user's name, role, organisation, areas or active flag. Honours `If-Match`.
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The user's id"),
        ("If-Match" = Option<String>, Header, description = "The ETag last read; the change is refused with 412 if the user changed since"),
    ),
    request_body = UpdateUserRequest,
    responses(
        (status = 200, description = "Updated", body = UserResponse),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "The user changed since the ETag was read", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[patch("/users/{id}")]
pub async fn update(
    auth: Auth<perm::UserWrite>,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<Uuid>,
    body: web::Json<UpdateUserRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = UserId::from(id.into_inner());
    let expected = if_match(&req)?;
    let body = body.into_inner();
    let display_name = body
        .display_name
        .as_deref()
        .map(|n| parse_name("display_name", n))
        .transpose()?;
    let changes = UserChanges {
        display_name,
        role: body.role.map(Into::into),
        organisation_id: body.organisation_id.map(Into::into),
        areas: body
            .areas
            .map(|a| a.into_iter().map(AreaId::from).collect()),
        active: body.active,
    };
    let context = auth.audit();
    let user = with_db(&state, move |c| {
        let current = users::get(c, id)?;
        let role = changes.role.unwrap_or(current.role);
        let areas: Vec<Uuid> = changes
            .areas
            .clone()
            .unwrap_or_else(|| current.areas.clone())
            .iter()
            .map(AreaId::as_uuid)
            .collect();
        check_area_scope(role, &areas)?;
        users::update(c, &context, id, expected, changes)
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(user.version))
        .json(UserResponse::from(user)))
}

/// Deactivate a user: they can no longer log in and their sessions end. Users are never deleted,
/// so the audit log keeps pointing at them.
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The user's id")),
    responses(
        (status = 200, description = "Deactivated", body = UserResponse),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[delete("/users/{id}")]
pub async fn deactivate(
    auth: Auth<perm::UserWrite>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = UserId::from(id.into_inner());
    let context = auth.audit();
    let changes = UserChanges {
        active: Some(false),
        ..UserChanges::default()
    };
    let user = with_db(&state, move |c| {
        users::update(c, &context, id, None, changes)
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(user.version))
        .json(UserResponse::from(user)))
}
