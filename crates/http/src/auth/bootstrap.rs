//! The first administrator, and accounts made at the command line (`tavana create-user`).

use tavana_domain::access::Role;
use tavana_domain::id::AreaId;
use tavana_domain::organisation::{
    OrganisationKind, User, check_password, parse_name, parse_username,
};
use tavana_persistence::users::NewUser;
use tavana_persistence::{AuditContext, Database, organisations, users};

use super::password::{hash_password, random_secret};

/// The organisation the first administrator belongs to.
pub const LABOUR_OFFICE: &str =
    "Office of Labour, Cooperatives and Social Welfare of Khorasan Razavi";

/// A user to create from the command line.
pub struct CliUser {
    pub username: String,
    pub display_name: String,
    pub role: Role,
    /// Created (with `organisation_kind`) if no organisation of this name exists.
    pub organisation: String,
    pub organisation_kind: OrganisationKind,
    pub areas: Vec<AreaId>,
    /// `None`: a random password is made and returned.
    pub password: Option<String>,
}

/// Creates the user; returns it and the password when one was generated.
pub fn create_user(db: &Database, new: CliUser) -> Result<(User, Option<String>), String> {
    let username = parse_username(&new.username).map_err(|e| e.to_string())?;
    let display_name = parse_name("display_name", &new.display_name).map_err(|e| e.to_string())?;
    let organisation = parse_name("organisation", &new.organisation).map_err(|e| e.to_string())?;
    if new.role.is_area_scoped() && new.areas.is_empty() {
        return Err(format!("a {} needs at least one --area", new.role));
    }
    let (password, generated) = match new.password {
        Some(password) => {
            check_password("password", &password, &username).map_err(|e| e.to_string())?;
            (password, false)
        }
        None => (random_secret().map_err(|e| e.to_string())?, true),
    };
    let password_hash = hash_password(&password).map_err(|e| e.to_string())?;
    let context = AuditContext::system();
    let mut conn = db.get().map_err(|e| e.to_string())?;
    let org = match organisations::find_by_name(&mut conn, &organisation)
        .map_err(|e| e.to_string())?
    {
        Some(org) => org,
        None => organisations::create(&mut conn, &context, &organisation, new.organisation_kind)
            .map_err(|e| e.to_string())?,
    };
    let user = users::create(
        &mut conn,
        &context,
        NewUser {
            username,
            display_name,
            password_hash,
            role: new.role,
            organisation_id: org.id,
            areas: new.areas,
        },
    )
    .map_err(|e| e.to_string())?;
    Ok((user, generated.then_some(password)))
}

/// On a database with no users, creates `admin` in the labour office. Returns the password when
/// it was generated, so it can be shown once.
pub fn ensure_admin(
    db: &Database,
    password: Option<String>,
) -> Result<Option<(User, Option<String>)>, String> {
    let mut conn = db.get().map_err(|e| e.to_string())?;
    if users::count(&mut conn).map_err(|e| e.to_string())? > 0 {
        return Ok(None);
    }
    drop(conn);
    let created = create_user(
        db,
        CliUser {
            username: "admin".to_owned(),
            display_name: "Administrator".to_owned(),
            role: Role::Admin,
            organisation: LABOUR_OFFICE.to_owned(),
            organisation_kind: OrganisationKind::LabourOffice,
            areas: Vec::new(),
            password,
        },
    );
    match created {
        Ok(created) => Ok(Some(created)),
        // Another replica starting at the same moment created it first.
        Err(e) => {
            let mut conn = db.get().map_err(|e| e.to_string())?;
            if users::count(&mut conn).map_err(|e| e.to_string())? > 0 {
                Ok(None)
            } else {
                Err(e)
            }
        }
    }
}
