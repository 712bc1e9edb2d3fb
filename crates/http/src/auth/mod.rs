//! Authentication (who is calling) and authorisation (may they do this).
//!
//! Every protected handler takes an [`Auth<P>`] as its first argument, where `P` names the
//! [`Action`] from the domain's role × action matrix. The check runs before the body is read, so
//! a caller who may not act gets 403 whatever they sent. Whether the token's account still stands
//! is read from the database after that: a request of a disabled account that is malformed too
//! may be told so (400, 422) before its 401.

pub mod bootstrap;
pub mod handlers;
pub mod jwt;
pub mod keys;
pub mod password;

use std::marker::PhantomData;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use chrono::Utc;
use futures_util::future::LocalBoxFuture;
use tavana_domain::access::{Action, ClientScope, Role, role_allows, scopes_allow};
use tavana_domain::id::{OrganisationId, UserId};
use tavana_persistence::{Actor, AuditContext, Scope, api_clients, users};

use crate::error::ApiError;
use crate::observe::RequestId;
use crate::{AppState, with_db};

/// Who is calling, from a verified access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    User {
        id: UserId,
        role: Role,
        organisation_id: OrganisationId,
    },
    Client {
        client_id: String,
        organisation_id: OrganisationId,
        scopes: Vec<ClientScope>,
    },
}

/// The authenticated caller of this request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub request_id: Option<String>,
}

impl Caller {
    /// Whether the caller sees persons' identifiers in full (`sees_identifiers`); API clients
    /// never do.
    pub fn sees_identifiers(&self) -> bool {
        match &self.principal {
            Principal::User { role, .. } => tavana_domain::access::sees_identifiers(*role),
            Principal::Client { .. } => false,
        }
    }

    pub fn may(&self, action: Action) -> bool {
        match &self.principal {
            Principal::User { role, .. } => role_allows(*role, action),
            Principal::Client { scopes, .. } => scopes_allow(scopes, action),
        }
    }

    pub fn require(&self, action: Action) -> Result<(), ApiError> {
        if self.may(action) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!("the caller may not {action}")))
        }
    }

    /// The audit context of writes made for this caller.
    pub fn audit(&self) -> AuditContext {
        AuditContext {
            actor: match &self.principal {
                Principal::User { id, .. } => Actor::User(id.to_string()),
                Principal::Client { client_id, .. } => Actor::Client(client_id.clone()),
            },
            request_id: self.request_id.clone(),
            batched: false,
        }
    }

    /// The neighbourhoods this caller's data access is limited to.
    pub fn scope(&self) -> Scope {
        match &self.principal {
            // Read from the user's assignments by each query, not from the token.
            Principal::User { id, role, .. } if role.is_area_scoped() => Scope::UserAreas(*id),
            Principal::User { .. } | Principal::Client { .. } => Scope::All,
        }
    }

    /// A partner agency's user or any API client: sees aggregates with small cells suppressed.
    pub fn is_partner(&self) -> bool {
        match &self.principal {
            Principal::User { role, .. } => *role == Role::Partner,
            Principal::Client { .. } => true,
        }
    }

    pub fn role(&self) -> Option<Role> {
        match &self.principal {
            Principal::User { role, .. } => Some(*role),
            Principal::Client { .. } => None,
        }
    }

    pub fn user_id(&self) -> Option<UserId> {
        match &self.principal {
            Principal::User { id, .. } => Some(*id),
            Principal::Client { .. } => None,
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header (the scheme in any case, RFC 9110).
pub(crate) fn bearer_token(value: &header::HeaderValue) -> Option<&str> {
    let (scheme, token) = value.to_str().ok()?.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn authenticate(req: &HttpRequest) -> Result<Caller, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::internal("application state missing"))?;
    let value = req.headers().get(header::AUTHORIZATION).ok_or_else(|| {
        ApiError::Unauthorized("send an access token: Authorization: Bearer …".to_owned())
    })?;
    let token = bearer_token(value).ok_or_else(|| {
        ApiError::Unauthorized("the Authorization header must be `Bearer <token>`".to_owned())
    })?;
    let claims = state.tokens.verify(token).map_err(|e| {
        tracing::debug!(error = %e, "access token refused");
        ApiError::Unauthorized("the access token is invalid or expired".to_owned())
    })?;
    let bad = || ApiError::Unauthorized("the access token is invalid or expired".to_owned());
    let organisation_id: OrganisationId = claims.org.parse().map_err(|_| bad())?;
    let principal = match claims.role {
        Some(role) => Principal::User {
            id: claims.sub.parse().map_err(|_| bad())?,
            role: role.parse().map_err(|_| bad())?,
            organisation_id,
        },
        None => Principal::Client {
            client_id: claims.sub,
            organisation_id,
            scopes: claims
                .scope
                .unwrap_or_default()
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()
                .map_err(|_| bad())?,
        },
    };
    let request_id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
    Ok(Caller {
        principal,
        request_id,
    })
}

/// Whether the account a token was issued to still stands as the token says: a user active, in
/// the same role and organisation; a client active, unexpired, of the same organisation. Read on
/// every request, so that disabling, demoting or revoking takes effect at once, not when the
/// token expires.
async fn still_stands(state: &AppState, principal: &Principal) -> Result<(), ApiError> {
    let stale = || {
        ApiError::Unauthorized(
            "the access token's account has changed or been disabled; get a new token".to_owned(),
        )
    };
    let stands = match principal.clone() {
        Principal::User {
            id,
            role,
            organisation_id,
        } => with_db(state, move |c| users::standing(c, id))
            .await?
            .is_some_and(|(now_role, now_organisation, active)| {
                active
                    && now_role == role.as_str()
                    && now_organisation == organisation_id.to_string()
            }),
        Principal::Client {
            client_id,
            organisation_id,
            ..
        } => with_db(state, move |c| api_clients::standing(c, &client_id))
            .await?
            .is_some_and(|(now_organisation, active, last_day)| {
                active
                    && last_day >= Utc::now().date_naive()
                    && now_organisation == organisation_id.to_string()
            }),
    };
    if stands { Ok(()) } else { Err(stale()) }
}

/// The caller of a request, allowed to perform `action` (when one is named) and whose account
/// still stands. What the token says decides first: a refusal reads nothing.
async fn caller_of(req: HttpRequest, action: Option<Action>) -> Result<Caller, ApiError> {
    let caller = authenticate(&req)?;
    if let Some(action) = action {
        caller.require(action)?;
    }
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::internal("application state missing"))?;
    still_stands(state, &caller.principal).await?;
    Ok(caller)
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(caller_of(req.clone(), None))
    }
}

/// A permission: names the action a handler performs.
pub trait Permission {
    const ACTION: Action;
}

/// An authenticated caller allowed to perform `P::ACTION`.
#[derive(Debug, Clone)]
pub struct Auth<P: Permission> {
    pub caller: Caller,
    _permission: PhantomData<P>,
}

impl<P: Permission> std::ops::Deref for Auth<P> {
    type Target = Caller;

    fn deref(&self) -> &Caller {
        &self.caller
    }
}

impl<P: Permission> FromRequest for Auth<P> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let caller = caller_of(req.clone(), Some(P::ACTION));
        Box::pin(async move {
            Ok(Auth {
                caller: caller.await?,
                _permission: PhantomData,
            })
        })
    }
}

/// One marker type per action, so a handler's signature says what it needs.
pub mod perm {
    use super::{Action, Permission};

    macro_rules! permissions {
        ($($name:ident),* $(,)?) => {
            $(
                #[derive(Debug, Clone, Copy)]
                pub struct $name;
                impl Permission for $name {
                    const ACTION: Action = Action::$name;
                }
            )*
        };
    }

    permissions!(
        AreaRead,
        AreaWrite,
        OrganisationRead,
        OrganisationWrite,
        UserRead,
        UserWrite,
        ApiClientManage,
        AuditRead,
        HouseholdRead,
        HouseholdWrite,
        PersonRead,
        PersonWrite,
        ProgrammeRead,
        EnrolmentRead,
        EnrolmentWrite,
        OutcomeVerify,
        DuplicateReview,
        ProgrammeWrite,
        CourseRead,
        CourseWrite,
        CohortRead,
        CohortWrite,
        AttendanceWrite,
        TrainingStatistics,
        PermitRead,
        PermitApply,
        PermitReview,
        SupporterRead,
        SupporterManage,
        FundsAllocate,
        ProductWrite,
        PurchaseWrite,
        ReportRead,
        ImportWrite,
        LoanRead,
        LoanWrite,
        LoanApprove,
        LoanProductWrite,
        PartnerPolicyRead,
        PartnerPolicyWrite,
        ChangesRead,
        WebhookManage,
        ResearchRead,
        PartnerSubmit,
    );
}
