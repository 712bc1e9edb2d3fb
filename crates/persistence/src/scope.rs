//! Data scope: which neighbourhoods a caller may see. Repositories apply it inside their queries,
//! so an object outside the scope is simply not found (the API answers 404), in lists, reads,
//! counts and reports alike.
//!
//! An area-scoped user's neighbourhoods are read from `user_areas` by the query itself (a
//! subquery of fixed shape, so statements stay cacheable), which also means that a change of
//! assignment applies to the very next request, whatever the user's token says.

use diesel::prelude::*;
use tavana_domain::id::{AreaId, UserId};

use crate::db::DbConnection;
use crate::error::StoreError;
use crate::schema::user_areas;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every neighbourhood (programme managers, administrators, …).
    All,
    /// The neighbourhoods assigned to this user (facilitators, trainers, supporters).
    UserAreas(UserId),
}

/// The neighbourhood ids a user is assigned, as a subquery.
pub(crate) type AssignedTo = diesel::dsl::Select<
    diesel::dsl::Filter<user_areas::table, diesel::dsl::Eq<user_areas::user_id, String>>,
    user_areas::area_id,
>;

pub(crate) fn assigned_to(user: UserId) -> AssignedTo {
    user_areas::table
        .filter(user_areas::user_id.eq(user.to_string()))
        .select(user_areas::area_id)
}

impl Scope {
    /// Whether `neighbourhood` is in the scope.
    pub fn covers(
        &self,
        conn: &mut DbConnection,
        neighbourhood: AreaId,
    ) -> Result<bool, StoreError> {
        match self {
            Scope::All => Ok(true),
            Scope::UserAreas(user) => {
                let count: i64 = user_areas::table
                    .filter(user_areas::user_id.eq(user.to_string()))
                    .filter(user_areas::area_id.eq(neighbourhood.to_string()))
                    .count()
                    .get_result(conn)?;
                Ok(count > 0)
            }
        }
    }
}
