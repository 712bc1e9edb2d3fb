//! The OpenAPI document: general information here; paths and schemas come from the handlers as
//! they are registered (utoipa-actix-web), so the document cannot drift from the routes.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as OpenApiDoc, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::error::PROBLEM_JSON;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tavana API",
        description = "Back end of the Khorasan Razavi Office of Labour, Cooperatives and Social \
Welfare's programme to empower the residents of Mashhad's marginal neighbourhoods.\n\n\
Conventions: JSON with snake_case fields; errors are RFC 9457 `application/problem+json` \
documents carrying a `request_id` (also in the `X-Request-Id` header); lists use cursor \
pagination (`limit` ≤ 200, opaque `cursor`, answer `{items, next_cursor}`); unknown query \
parameters are refused with 400; text holding the NUL character (U+0000), in a URL or a JSON \
body, is refused with 422 (`nul_character`), and in an import file fails its row.",
        license(name = "AGPL-3.0-or-later", identifier = "AGPL-3.0-or-later"),
    ),
    components(schemas(crate::error::Problem, crate::error::ProblemField)),
    modifiers(&BearerAuth),
    tags(
        (name = "operations", description = "Health probes and metrics"),
        (name = "auth", description = "Access tokens for staff (password grant) and API clients (client credentials)"),
        (name = "areas", description = "Province → city → district → neighbourhood"),
        (name = "organisations", description = "Organisations taking part in the programme"),
        (name = "users", description = "Staff accounts (administrators)"),
        (name = "api-clients", description = "Machine credentials for partner agencies and scripts (administrators)"),
        (name = "households", description = "Households in the caller's neighbourhoods"),
        (name = "persons", description = "Persons in the caller's neighbourhoods and their household history"),
        (name = "programmes", description = "Programmes and their targets"),
        (name = "enrolments", description = "Households in programmes and their transitions"),
        (name = "training", description = "Courses, cohorts, sessions, registrations with a waitlist, attendance and certificates"),
        (name = "permits", description = "Home-business permits: applications, review, issue, renewal, monitoring, and public verification by number"),
        (name = "supporters", description = "Home-business supporters, their producers and products, funds (an append-only ledger in rials) and reports"),
        (name = "purchases", description = "Purchase orders of supporters from producers"),
        (name = "progress", description = "Progress toward the targets (JSON, CSV, SVG) and baseline statistics"),
        (name = "loans", description = "Micro-loans for home workshops: products, applications, approvals, disbursement with its schedule, repayments, arrears and portfolio at risk"),
        (name = "imports", description = "Batch imports of CSV and JSON Lines files: validated, resumable, idempotent"),
        (name = "webhooks", description = "Partner endpoints that changes are pushed to, signed with HMAC-SHA256, with every delivery and attempt on record"),
        (name = "audit", description = "The hash-chained audit log (auditors, administrators)"),
    ),
)]
pub struct ApiDoc;

/// Declares the bearer-token scheme that protected operations name in their `security`.
pub struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from POST /api/v1/auth/token, sent as `Authorization: Bearer <token>`.",
                    ))
                    .build(),
            ),
        );
    }
}

/// What the handlers' attributes cannot say: the answers every operation can give, and the
/// import's columns, listed from the table the import reads files by.
pub fn complete(doc: &mut OpenApiDoc) {
    CommonResponses.modify(doc);
    import_columns(doc);
}

fn import_columns(doc: &mut OpenApiDoc) {
    use tavana_domain::import::{ImportKind, columns};
    let Some(operation) = doc
        .paths
        .paths
        .get_mut("/api/v1/imports")
        .and_then(|item| item.post.as_mut())
    else {
        return;
    };
    let mut text = operation.description.take().unwrap_or_default();
    text.push_str("\n\nThe columns of each kind (required ones marked *):\n");
    for kind in ImportKind::ALL {
        text.push_str(&format!("\n- `{kind}`:"));
        for column in columns(*kind) {
            let required = if column.required { " *" } else { "" };
            text.push_str(&format!(
                "\n  - `{}`{required}: {}",
                column.name, column.description
            ));
        }
    }
    operation.description = Some(text);
}

/// Adds the answers every operation can give to each operation that does not document them
/// itself: 400 for a malformed request, 500, and 503 when the database is unavailable.
pub struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                add_common(operation);
            }
        }
    }
}

fn add_common(operation: &mut Operation) {
    let protected = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    let mut common = vec![
        ("400", "Malformed request: bad JSON, query string or path"),
        (
            "500",
            "Internal error; the answer holds only the request id",
        ),
        (
            "503",
            "The database is unavailable; retry after `Retry-After` seconds",
        ),
    ];
    if protected {
        common.push((
            "401",
            "No valid access token: missing, malformed, expired or signed by another key",
        ));
        common.push((
            "403",
            "The caller's role or scopes do not allow this operation",
        ));
    }
    for (status, description) in common {
        if operation.responses.responses.contains_key(status) {
            continue;
        }
        let response = ResponseBuilder::new()
            .description(description)
            .content(
                PROBLEM_JSON,
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build();
        operation
            .responses
            .responses
            .insert(status.to_owned(), response.into());
    }
}
