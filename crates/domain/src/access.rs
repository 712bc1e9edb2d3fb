//! Who may do what: roles, API-client scopes, and the role × action matrix, kept as data.
//!
//! Every handler names one [`Action`]; the http crate's guard checks it against [`MATRIX`] (for
//! users) or [`Action::client_scope`] (for API clients). Data scope (which neighbourhoods) is
//! enforced separately, inside the persistence queries.

use std::fmt;
use std::str::FromStr;

/// A staff member's role (DESIGN.md §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Admin,
    ProgrammeManager,
    Facilitator,
    Trainer,
    PermitOfficer,
    Supporter,
    Partner,
    Auditor,
}

impl Role {
    pub const ALL: [Role; 8] = [
        Role::Admin,
        Role::ProgrammeManager,
        Role::Facilitator,
        Role::Trainer,
        Role::PermitOfficer,
        Role::Supporter,
        Role::Partner,
        Role::Auditor,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::ProgrammeManager => "programme_manager",
            Role::Facilitator => "facilitator",
            Role::Trainer => "trainer",
            Role::PermitOfficer => "permit_officer",
            Role::Supporter => "supporter",
            Role::Partner => "partner",
            Role::Auditor => "auditor",
        }
    }

    /// Roles whose data access is limited to the neighbourhoods assigned to the user.
    pub fn is_area_scoped(self) -> bool {
        matches!(self, Role::Facilitator | Role::Trainer | Role::Supporter)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}`")]
pub struct UnknownName {
    pub kind: &'static str,
    pub value: String,
}

impl FromStr for Role {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownName {
                kind: "role",
                value: s.to_owned(),
            })
    }
}

/// What an API client (a partner's or a script's machine) was granted, OAuth-style.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClientScope {
    RegistryRead,
    RegistryWrite,
    ImportsWrite,
    ReportsRead,
    WebhooksManage,
}

impl ClientScope {
    pub const ALL: [ClientScope; 5] = [
        ClientScope::RegistryRead,
        ClientScope::RegistryWrite,
        ClientScope::ImportsWrite,
        ClientScope::ReportsRead,
        ClientScope::WebhooksManage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ClientScope::RegistryRead => "registry:read",
            ClientScope::RegistryWrite => "registry:write",
            ClientScope::ImportsWrite => "imports:write",
            ClientScope::ReportsRead => "reports:read",
            ClientScope::WebhooksManage => "webhooks:manage",
        }
    }
}

impl fmt::Display for ClientScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ClientScope {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ClientScope::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownName {
                kind: "scope",
                value: s.to_owned(),
            })
    }
}

/// Every protected operation of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
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
}

impl Action {
    pub const ALL: [Action; 44] = [
        Action::AreaRead,
        Action::AreaWrite,
        Action::OrganisationRead,
        Action::OrganisationWrite,
        Action::UserRead,
        Action::UserWrite,
        Action::ApiClientManage,
        Action::AuditRead,
        Action::HouseholdRead,
        Action::HouseholdWrite,
        Action::PersonRead,
        Action::PersonWrite,
        Action::ProgrammeRead,
        Action::EnrolmentRead,
        Action::EnrolmentWrite,
        Action::OutcomeVerify,
        Action::DuplicateReview,
        Action::ProgrammeWrite,
        Action::CourseRead,
        Action::CourseWrite,
        Action::CohortRead,
        Action::CohortWrite,
        Action::AttendanceWrite,
        Action::TrainingStatistics,
        Action::PermitRead,
        Action::PermitApply,
        Action::PermitReview,
        Action::SupporterRead,
        Action::SupporterManage,
        Action::FundsAllocate,
        Action::ProductWrite,
        Action::PurchaseWrite,
        Action::ReportRead,
        Action::ImportWrite,
        Action::LoanRead,
        Action::LoanWrite,
        Action::LoanApprove,
        Action::LoanProductWrite,
        Action::PartnerPolicyRead,
        Action::PartnerPolicyWrite,
        Action::ChangesRead,
        Action::WebhookManage,
        Action::ResearchRead,
        Action::PartnerSubmit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::AreaRead => "area:read",
            Action::AreaWrite => "area:write",
            Action::OrganisationRead => "organisation:read",
            Action::OrganisationWrite => "organisation:write",
            Action::UserRead => "user:read",
            Action::UserWrite => "user:write",
            Action::ApiClientManage => "api_client:manage",
            Action::AuditRead => "audit:read",
            Action::HouseholdRead => "household:read",
            Action::HouseholdWrite => "household:write",
            Action::PersonRead => "person:read",
            Action::PersonWrite => "person:write",
            Action::ProgrammeRead => "programme:read",
            Action::EnrolmentRead => "enrolment:read",
            Action::EnrolmentWrite => "enrolment:write",
            Action::OutcomeVerify => "outcome:verify",
            Action::DuplicateReview => "duplicate:review",
            Action::ProgrammeWrite => "programme:write",
            Action::CourseRead => "course:read",
            Action::CourseWrite => "course:write",
            Action::CohortRead => "cohort:read",
            Action::CohortWrite => "cohort:write",
            Action::AttendanceWrite => "attendance:write",
            Action::TrainingStatistics => "training:statistics",
            Action::PermitRead => "permit:read",
            Action::PermitApply => "permit:apply",
            Action::PermitReview => "permit:review",
            Action::SupporterRead => "supporter:read",
            Action::SupporterManage => "supporter:manage",
            Action::FundsAllocate => "funds:allocate",
            Action::ProductWrite => "product:write",
            Action::PurchaseWrite => "purchase:write",
            Action::ReportRead => "report:read",
            Action::ImportWrite => "import:write",
            Action::LoanRead => "loan:read",
            Action::LoanWrite => "loan:write",
            Action::LoanApprove => "loan:approve",
            Action::LoanProductWrite => "loan_product:write",
            Action::PartnerPolicyRead => "partner_policy:read",
            Action::PartnerPolicyWrite => "partner_policy:write",
            Action::ChangesRead => "changes:read",
            Action::WebhookManage => "webhook:manage",
            Action::ResearchRead => "research:read",
            Action::PartnerSubmit => "partner:submit",
        }
    }

    /// The scope an API client needs for this action; `None` when no client may do it.
    pub fn client_scope(self) -> Option<ClientScope> {
        match self {
            Action::AreaRead | Action::OrganisationRead => Some(ClientScope::RegistryRead),
            Action::AreaWrite
            | Action::OrganisationWrite
            | Action::UserRead
            | Action::UserWrite
            | Action::ApiClientManage
            | Action::AuditRead
            // Partner machines read the registry only under an MoU data policy (not yet built).
            | Action::HouseholdRead
            | Action::HouseholdWrite
            | Action::PersonRead
            | Action::PersonWrite
            | Action::EnrolmentRead
            | Action::EnrolmentWrite
            | Action::OutcomeVerify
            | Action::DuplicateReview
            | Action::ProgrammeWrite => None,
            Action::ProgrammeRead | Action::CourseRead => Some(ClientScope::RegistryRead),
            // Partners get training only as aggregates; sensitive courses never otherwise.
            Action::TrainingStatistics | Action::ReportRead => Some(ClientScope::ReportsRead),
            Action::ImportWrite => Some(ClientScope::ImportsWrite),
            Action::CourseWrite
            | Action::CohortRead
            | Action::CohortWrite
            | Action::AttendanceWrite
            | Action::PermitRead
            | Action::PermitApply
            | Action::PermitReview
            | Action::SupporterRead
            | Action::SupporterManage
            | Action::FundsAllocate
            | Action::ProductWrite
            | Action::PurchaseWrite
            | Action::LoanRead
            | Action::LoanWrite
            | Action::LoanApprove
            | Action::LoanProductWrite
            | Action::PartnerPolicyRead
            | Action::PartnerPolicyWrite => None,
            // Partner machines, always within their organisation's MoU data policy.
            Action::ChangesRead => Some(ClientScope::RegistryRead),
            Action::WebhookManage => Some(ClientScope::WebhooksManage),
            Action::ResearchRead => Some(ClientScope::ReportsRead),
            // What the study finds in the field, where the policy lets it write.
            Action::PartnerSubmit => Some(ClientScope::RegistryWrite),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

use Role::*;

/// All staff roles: reference data everybody working in the programme needs.
const STAFF: &[Role] = &[
    Admin,
    ProgrammeManager,
    Facilitator,
    Trainer,
    PermitOfficer,
    Supporter,
    Partner,
    Auditor,
];

/// The role × action matrix. One row per action; a role not listed is refused (403).
pub const MATRIX: &[(Action, &[Role])] = &[
    (Action::AreaRead, STAFF),
    (Action::AreaWrite, &[Admin, ProgrammeManager]),
    (Action::OrganisationRead, STAFF),
    (Action::OrganisationWrite, &[Admin]),
    (Action::UserRead, &[Admin, Auditor]),
    (Action::UserWrite, &[Admin]),
    (Action::ApiClientManage, &[Admin]),
    (Action::AuditRead, &[Admin, Auditor]),
    (
        Action::HouseholdRead,
        &[Admin, ProgrammeManager, Facilitator, Auditor],
    ),
    (
        Action::HouseholdWrite,
        &[Admin, ProgrammeManager, Facilitator],
    ),
    (
        Action::PersonRead,
        &[Admin, ProgrammeManager, Facilitator, Auditor],
    ),
    (Action::PersonWrite, &[Admin, ProgrammeManager, Facilitator]),
    (Action::ProgrammeRead, STAFF),
    (
        Action::EnrolmentRead,
        &[Admin, ProgrammeManager, Facilitator, Auditor],
    ),
    (
        Action::EnrolmentWrite,
        &[Admin, ProgrammeManager, Facilitator],
    ),
    (Action::OutcomeVerify, &[Admin, ProgrammeManager]),
    (Action::DuplicateReview, &[Admin, ProgrammeManager]),
    (Action::ProgrammeWrite, &[Admin, ProgrammeManager]),
    (Action::CourseRead, STAFF),
    (Action::CourseWrite, &[Admin, ProgrammeManager]),
    // Individual registrations and attendance: not for partners (aggregates only).
    (
        Action::CohortRead,
        &[Admin, ProgrammeManager, Facilitator, Trainer, Auditor],
    ),
    (Action::CohortWrite, &[Admin, ProgrammeManager, Facilitator]),
    // The cohort's trainer or a facilitator of its neighbourhood.
    (Action::AttendanceWrite, &[Facilitator, Trainer]),
    (Action::TrainingStatistics, STAFF),
    (
        Action::PermitRead,
        &[Admin, ProgrammeManager, Facilitator, PermitOfficer, Auditor],
    ),
    (
        Action::PermitApply,
        &[Admin, ProgrammeManager, Facilitator, PermitOfficer],
    ),
    // Every step of review, issue and monitoring is a permit officer's.
    (Action::PermitReview, &[PermitOfficer]),
    (
        Action::SupporterRead,
        &[Admin, ProgrammeManager, Facilitator, Supporter, Auditor],
    ),
    (
        Action::SupporterManage,
        &[Admin, ProgrammeManager, Facilitator],
    ),
    // Money is allocated by programme managers only.
    (Action::FundsAllocate, &[ProgrammeManager]),
    (
        Action::ProductWrite,
        &[Admin, ProgrammeManager, Facilitator],
    ),
    // Only a supporter buys, from their own funds.
    (Action::PurchaseWrite, &[Supporter]),
    // Aggregates only; partners get small cells suppressed.
    (Action::ReportRead, STAFF),
    // Facilitators import into their own neighbourhoods only; a trainer imports attendance
    // sheets and a supporter their order book (each kind also needs its own action).
    (
        Action::ImportWrite,
        &[Admin, ProgrammeManager, Facilitator, Trainer, Supporter],
    ),
    // Loans are individual money records: staff who follow them up, not partners.
    (
        Action::LoanRead,
        &[Admin, ProgrammeManager, Facilitator, Auditor],
    ),
    // Facilitators take applications and record repayments in their neighbourhoods.
    (Action::LoanWrite, &[ProgrammeManager, Facilitator]),
    // Approving, paying out, rejecting and writing off are a programme manager's decisions.
    (Action::LoanApprove, &[ProgrammeManager]),
    (Action::LoanProductWrite, &[Admin, ProgrammeManager]),
    // MoU data policies: set by an administrator, read by those who answer for them.
    (
        Action::PartnerPolicyRead,
        &[Admin, ProgrammeManager, Auditor],
    ),
    (Action::PartnerPolicyWrite, &[Admin]),
    // The changes feed and webhooks: partners within their policy; administrators see all.
    (Action::ChangesRead, &[Admin, Partner]),
    (Action::WebhookManage, &[Admin, Partner]),
    // Research tables are aggregates with small cells suppressed.
    (
        Action::ResearchRead,
        &[Admin, ProgrammeManager, Partner, Auditor],
    ),
    // Households and assessments found in the field, where the partner's policy allows.
    (Action::PartnerSubmit, &[Partner]),
];

/// Whether a user with `role` may perform `action`.
pub fn role_allows(role: Role, action: Action) -> bool {
    MATRIX
        .iter()
        .find(|(a, _)| *a == action)
        .is_some_and(|(_, roles)| roles.contains(&role))
}

/// Whether a role sees a person's identifiers (national ID, mobile number) in full. Others see
/// them masked: auditors check records, they do not contact people.
pub fn sees_identifiers(role: Role) -> bool {
    matches!(role, Admin | ProgrammeManager | Facilitator)
}

/// Masks all but the last four characters.
pub fn mask(value: &str) -> String {
    let count = value.chars().count();
    value
        .chars()
        .enumerate()
        .map(|(i, c)| if i + 4 < count { '*' } else { c })
        .collect()
}

/// The keys under which records (and the audit log's snapshots of them) hold a person's
/// identifiers.
const IDENTIFIER_KEYS: [&str; 2] = ["national_id", "mobile"];

/// Masks every identifier in `value`, at any depth: the audit log's snapshots of persons, a
/// merge's record of the merged person, a search's filter.
pub fn mask_identifiers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                match inner {
                    serde_json::Value::String(text) if IDENTIFIER_KEYS.contains(&key.as_str()) => {
                        *text = mask(text);
                    }
                    other => mask_identifiers(other),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(mask_identifiers),
        _ => {}
    }
}

/// Whether an API client holding `scopes` may perform `action`.
pub fn scopes_allow(scopes: &[ClientScope], action: Action) -> bool {
    action.client_scope().is_some_and(|s| scopes.contains(&s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_has_exactly_one_row() {
        for action in Action::ALL {
            let rows = MATRIX.iter().filter(|(a, _)| *a == action).count();
            assert_eq!(rows, 1, "{action} must have one row in MATRIX");
        }
        assert_eq!(MATRIX.len(), Action::ALL.len());
    }

    #[test]
    fn admin_manages_identity_and_others_do_not() {
        assert!(role_allows(Admin, Action::UserWrite));
        for role in Role::ALL.into_iter().filter(|r| *r != Admin) {
            assert!(!role_allows(role, Action::UserWrite), "{role}");
            assert!(!role_allows(role, Action::ApiClientManage), "{role}");
        }
    }

    #[test]
    fn auditors_read_the_audit_log_but_facilitators_do_not() {
        assert!(role_allows(Auditor, Action::AuditRead));
        assert!(!role_allows(Facilitator, Action::AuditRead));
    }

    #[test]
    fn clients_need_the_matching_scope() {
        assert!(scopes_allow(&[ClientScope::RegistryRead], Action::AreaRead));
        assert!(!scopes_allow(
            &[ClientScope::ImportsWrite],
            Action::AreaRead
        ));
        assert!(!scopes_allow(&ClientScope::ALL, Action::UserWrite));
    }

    #[test]
    fn identifiers_are_masked_for_roles_that_do_not_need_them() {
        assert!(sees_identifiers(Facilitator));
        assert!(!sees_identifiers(Auditor));
        let mut snapshot = serde_json::json!({
            "national_id": "0012345679",
            "first_name": "زهرا",
            "mobile": "09151234567",
            "merged": {"national_id": "1234567891", "mobile": null},
            "changes": [{"mobile": "09350000000"}],
        });
        mask_identifiers(&mut snapshot);
        assert_eq!(
            snapshot,
            serde_json::json!({
                "national_id": "******5679",
                "first_name": "زهرا",
                "mobile": "*******4567",
                "merged": {"national_id": "******7891", "mobile": null},
                "changes": [{"mobile": "*******0000"}],
            })
        );
        assert_eq!(mask("0499370899"), "******0899");
        assert_eq!(mask("09151234567"), "*******4567");
        assert_eq!(mask("123"), "123");
    }

    #[test]
    fn names_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        for scope in ClientScope::ALL {
            assert_eq!(scope.as_str().parse::<ClientScope>(), Ok(scope));
        }
        assert!("root".parse::<Role>().is_err());
    }
}
