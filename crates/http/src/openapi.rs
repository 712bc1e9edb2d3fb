//! The OpenAPI document: general information here; paths and schemas come from the handlers as
//! they are registered (utoipa-actix-web), so the document cannot drift from the routes.

use utoipa::openapi::path::Operation;
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
parameters are refused with 400.",
        license(name = "AGPL-3.0-or-later", identifier = "AGPL-3.0-or-later"),
    ),
    components(schemas(crate::error::Problem, crate::error::ProblemField)),
    tags(
        (name = "operations", description = "Health probes and metrics"),
        (name = "areas", description = "Province → city → district → neighbourhood"),
    ),
)]
pub struct ApiDoc;

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
    let common = [
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
