//! Data scope: which neighbourhoods a caller may see. Repositories apply it inside their queries,
//! so an object outside the scope is simply not found (the API answers 404), in lists, reads,
//! counts and reports alike.

use tavana_domain::id::AreaId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every neighbourhood (programme managers, administrators, …).
    All,
    /// Only these neighbourhoods (facilitators, trainers, supporters).
    Neighbourhoods(Vec<AreaId>),
}

impl Scope {
    /// The neighbourhood ids as stored, or `None` for [`Scope::All`].
    pub fn neighbourhood_ids(&self) -> Option<Vec<String>> {
        match self {
            Scope::All => None,
            Scope::Neighbourhoods(ids) => Some(ids.iter().map(ToString::to_string).collect()),
        }
    }

    pub fn covers(&self, neighbourhood: AreaId) -> bool {
        match self {
            Scope::All => true,
            Scope::Neighbourhoods(ids) => ids.contains(&neighbourhood),
        }
    }
}
