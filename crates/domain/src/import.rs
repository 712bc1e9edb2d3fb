//! Batch imports (CSV or JSON Lines): kinds, modes, the columns each kind takes, and turning one
//! row into the same validated value the API builds, with the same error codes.

use std::collections::HashMap;

use chrono::NaiveDate;

use crate::access::Action;
use crate::assessment::{NewAssessment, WelfareService};
use crate::calendar::parse_date;
use crate::enrolment::EnrolmentState;
use crate::error::{FieldError, ValidationErrors};
use crate::funds::{ItemKind, Line, purchase_total};
use crate::household::NewHousehold;
use crate::id::{AreaId, HouseholdId, ProgrammeId, SessionId};
use crate::national_id::NationalId;
use crate::partner::Resource;
use crate::person::{Education, HouseholdRole, NewPerson, PersonInput, Sex};
use crate::text::only_digits;
use crate::training::AttendanceMark;

names!(
    /// What a file holds.
    ImportKind, "import kind", {
        Households => "households",
        Persons => "persons",
        Assessments => "assessments",
        Enrolments => "enrolments",
        Attendance => "attendance",
        Purchases => "purchases",
    }
);

impl ImportKind {
    /// The action of the API's own endpoint for these records: a user importing them must be
    /// allowed that too, so an import is never a way around the role matrix.
    pub fn action(self) -> Action {
        match self {
            ImportKind::Households => Action::HouseholdWrite,
            ImportKind::Persons | ImportKind::Assessments => Action::PersonWrite,
            ImportKind::Enrolments => Action::EnrolmentWrite,
            ImportKind::Attendance => Action::AttendanceWrite,
            ImportKind::Purchases => Action::PurchaseWrite,
        }
    }

    /// What an API client (a partner agency's system with `imports:write`) submits with these
    /// rows, under its MoU data policy as through `/partner/...`: the field data of its study,
    /// households and assessments. Persons are registered, and enrolment decisions, attendance
    /// sheets and purchases recorded, by staff.
    pub fn partner_resource(self) -> Option<Resource> {
        match self {
            ImportKind::Households => Some(Resource::Households),
            ImportKind::Assessments => Some(Resource::Assessments),
            ImportKind::Persons
            | ImportKind::Enrolments
            | ImportKind::Attendance
            | ImportKind::Purchases => None,
        }
    }
}

names!(
    /// `validate` checks every row and writes nothing; `commit` writes.
    ImportMode, "import mode", { Validate => "validate", Commit => "commit" }
);

names!(
    /// `all`: nothing is written if any row fails. `rows`: good rows are written, bad ones
    /// reported.
    Atomicity, "atomicity", { All => "all", Rows => "rows" }
);

names!(
    /// The encoding of the file.
    ImportFormat, "import format", { Csv => "csv", Jsonl => "jsonl" }
);

names!(
    /// Where a job is.
    JobState, "import state", {
        Running => "running",
        Completed => "completed",
        Failed => "failed",
        Interrupted => "interrupted",
    }
);

/// One column of a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub required: bool,
    pub description: &'static str,
}

const PERSON_COLUMNS: &[Column] = &[
    Column {
        name: "national_id",
        required: true,
        description: "10 digits with a valid check digit; Persian or Arabic-Indic digits are accepted. Matches an existing person.",
    },
    Column {
        name: "first_name",
        required: true,
        description: "as written (Arabic ي/ك are normalised for search)",
    },
    Column {
        name: "last_name",
        required: true,
        description: "as written",
    },
    Column {
        name: "birth_date",
        required: true,
        description: "YYYY-MM-DD, Gregorian or Jalali (years before 1700 are Jalali)",
    },
    Column {
        name: "sex",
        required: true,
        description: "female or male",
    },
    Column {
        name: "household_id",
        required: true,
        description: "an existing household in the importer's scope",
    },
    Column {
        name: "household_role",
        required: true,
        description: "head, spouse, child or other",
    },
    Column {
        name: "mobile",
        required: false,
        description: "Iranian mobile number",
    },
    Column {
        name: "education",
        required: false,
        description: "none, literacy, primary, lower_secondary, diploma, associate, bachelor, master or doctorate",
    },
    Column {
        name: "member_since",
        required: false,
        description: "day joining the household (default: the day of the import)",
    },
];

const fn column(name: &'static str, required: bool, description: &'static str) -> Column {
    Column {
        name,
        required,
        description,
    }
}

const HOUSEHOLD_COLUMNS: &[Column] = &[
    column(
        "neighbourhood_id",
        true,
        "a neighbourhood in the importer's scope",
    ),
    column("address", true, "as written"),
    column(
        "postal_code",
        false,
        "10 digits. A household in scope with this postal code, or else with the same address in the same neighbourhood, is updated instead of registered again.",
    ),
];

const ASSESSMENT_COLUMNS: &[Column] = &[
    column(
        "national_id",
        true,
        "the person assessed, registered and in scope",
    ),
    column("kind", true, "baseline or follow_up"),
    column(
        "assessed_on",
        true,
        "the day, Gregorian or Jalali. With the person and kind, it identifies the assessment: the same row again is unchanged.",
    ),
    column(
        "employment_status",
        true,
        "employed, unemployed or not_in_labour_force",
    ),
    column(
        "income_band",
        true,
        "monthly, in rials: none, under_20m, 20m_to_50m, 50m_to_100m or over_100m",
    ),
    column("social_insurance", true, "true or false"),
    column(
        "welfare_services",
        false,
        "separated by spaces or semicolons: relief_committee, welfare_organisation, cash_subsidy, charity or housing_support",
    ),
    column("skills", false, "free text"),
    column("disability", false, "true or false (default false)"),
    column("dependants", false, "0 to 30 (default 0)"),
];

const ENROLMENT_COLUMNS: &[Column] = &[
    column(
        "household_id",
        true,
        "a household in scope; with the programme it identifies the enrolment",
    ),
    column("programme_id", true, "the programme"),
    column(
        "state",
        false,
        "the state to move to (default identified): one allowed transition from the current state, by the rules of POST /enrolments/{id}/transitions",
    ),
    column(
        "effective_on",
        false,
        "the day of the transition (default: the day of the import)",
    ),
    column("reason", false, "why, as recorded with the transition"),
];

const ATTENDANCE_COLUMNS: &[Column] = &[
    column("session_id", true, "a session of a cohort in scope"),
    column(
        "national_id",
        true,
        "a person with a seat in the session's cohort",
    ),
    column("mark", true, "present, absent or excused"),
];

const PURCHASE_COLUMNS: &[Column] = &[
    column(
        "reference",
        true,
        "the supporter's own number of the order (up to 64 characters): an order is imported once per supporter and reference",
    ),
    column("supporter_id", true, "the supporter ordering"),
    column(
        "producer_national_id",
        true,
        "the producer, linked to the supporter",
    ),
    column("ordered_on", true, "the day of the order"),
    column("item_kind", true, "product or raw_material"),
    column("product_id", false, "one of the producer's products"),
    column("description", false, "what is bought, without a product"),
    column("quantity", true, "whole units, 1 to 1,000,000"),
    column("unit_price", true, "whole rials"),
];

pub fn columns(kind: ImportKind) -> &'static [Column] {
    match kind {
        ImportKind::Households => HOUSEHOLD_COLUMNS,
        ImportKind::Persons => PERSON_COLUMNS,
        ImportKind::Assessments => ASSESSMENT_COLUMNS,
        ImportKind::Enrolments => ENROLMENT_COLUMNS,
        ImportKind::Attendance => ATTENDANCE_COLUMNS,
        ImportKind::Purchases => PURCHASE_COLUMNS,
    }
}

/// Where each known column is in the file's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub positions: HashMap<&'static str, usize>,
    /// Columns with no name: spreadsheet programs add them after the last one used. Their cells
    /// must be empty, or the row names the column (`Header::unnamed_value`).
    pub unnamed: Vec<usize>,
}

impl Header {
    /// The error of a row with a value in a column that has no name: it would otherwise be lost.
    pub fn unnamed_value<'a>(&self, cell: impl Fn(usize) -> Option<&'a str>) -> Option<FieldError> {
        let i = self
            .unnamed
            .iter()
            .copied()
            .find(|i| cell(*i).is_some_and(|v| !v.trim().is_empty()))?;
        Some(FieldError::new(
            format!("column {}", i + 1),
            "unknown_column",
            format!(
                "column {} has a value but no name in the header; name it or leave it empty",
                i + 1
            ),
        ))
    }
}

/// Checks a header: every required column present, no unknown or repeated one. Names are
/// trimmed, lower-cased, and a byte-order mark is ignored. A column with no name (the empty
/// ones a spreadsheet adds at the end) is passed over.
pub fn check_header(kind: ImportKind, names: &[String]) -> Result<Header, ValidationErrors> {
    let mut errors = ValidationErrors::default();
    let known = columns(kind);
    let mut positions = HashMap::new();
    let mut unnamed = Vec::new();
    for (i, raw) in names.iter().enumerate() {
        let name = raw.trim_start_matches('\u{feff}').trim().to_lowercase();
        if name.is_empty() {
            unnamed.push(i);
            continue;
        }
        match known.iter().find(|c| c.name == name) {
            Some(column) if positions.contains_key(column.name) => errors.push(FieldError::new(
                name.clone(),
                "repeated_column",
                format!("column `{name}` appears twice"),
            )),
            Some(column) => {
                positions.insert(column.name, i);
            }
            None => errors.push(FieldError::new(
                name.clone(),
                "unknown_column",
                format!(
                    "unknown column `{name}`; the {kind} columns are: {}",
                    known.iter().map(|c| c.name).collect::<Vec<_>>().join(", ")
                ),
            )),
        }
    }
    for column in known.iter().filter(|c| c.required) {
        if !positions.contains_key(column.name) {
            errors.push(FieldError::new(
                column.name,
                "missing_column",
                format!("the required column `{}` is missing", column.name),
            ));
        }
    }
    errors.into_result().map(|()| Header { positions, unnamed })
}

/// One row's values, read by the API's rules; the errors gather by column.
pub struct Fields<'a> {
    get: &'a dyn Fn(&str) -> Option<String>,
    pub errors: ValidationErrors,
}

impl<'a> Fields<'a> {
    pub fn new(get: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self {
            get,
            errors: ValidationErrors::default(),
        }
    }

    /// The trimmed value; an empty cell is no value.
    pub fn text(&self, name: &str) -> Option<String> {
        (self.get)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    pub fn required(&mut self, name: &'static str) -> Option<String> {
        let value = self.text(name);
        if value.is_none() {
            self.errors.push(FieldError::new(
                name,
                "required",
                format!("{name} is required"),
            ));
        }
        value
    }

    fn value(&mut self, name: &'static str, required: bool) -> Option<String> {
        if required {
            self.required(name)
        } else {
            self.text(name)
        }
    }

    /// A closed-set name (`female`, `baseline`, …).
    pub fn name<T: std::str::FromStr<Err = crate::access::UnknownName>>(
        &mut self,
        name: &'static str,
        required: bool,
    ) -> Option<T> {
        let value = self.value(name, required);
        name_of(name, value, &mut self.errors)
    }

    pub fn date(&mut self, name: &'static str, required: bool) -> Option<NaiveDate> {
        let value = self.value(name, required)?;
        self.errors.check(parse_date(name, &value))
    }

    /// A record's id (a UUID).
    pub fn id<T: std::str::FromStr>(&mut self, name: &'static str, what: &str) -> Option<T> {
        let value = self.required(name)?;
        self.errors.check(
            value
                .parse()
                .map_err(|_| FieldError::new(name, "format", format!("must be {what} id"))),
        )
    }

    pub fn national_id(&mut self, name: &'static str) -> Option<NationalId> {
        let value = self.required(name)?;
        self.errors.check(NationalId::parse(name, &value))
    }

    /// `true`/`false` (also `yes`/`no`, `1`/`0`).
    pub fn flag(&mut self, name: &'static str, required: bool) -> Option<bool> {
        let value = self.value(name, required)?;
        match value.to_lowercase().as_str() {
            "true" | "yes" | "1" => Some(true),
            "false" | "no" | "0" => Some(false),
            _ => {
                self.errors
                    .push(FieldError::new(name, "format", "must be true or false"));
                None
            }
        }
    }

    /// A whole number, in any digit script, with a minus sign if negative. Unlike an ID or a
    /// phone number, it may hold no separators: `1-2` or `2 3` is refused, not read as 12 or 23.
    pub fn number(&mut self, name: &'static str, required: bool) -> Option<i64> {
        let value = self.value(name, required)?;
        let (negative, digits) = match value.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, value.as_str()),
        };
        let parsed = only_digits(digits)
            .and_then(|d| d.parse::<i64>().ok())
            .map(|n| if negative { -n } else { n });
        if parsed.is_none() {
            self.errors
                .push(FieldError::new(name, "format", "must be a whole number"));
        }
        parsed
    }

    /// Adds the errors of a later check, except on columns already reported.
    pub fn absorb(&mut self, more: ValidationErrors) {
        for e in more.0 {
            if !self.errors.0.iter().any(|x| x.field == e.field) {
                self.errors.push(e);
            }
        }
    }

    /// The value, if every column was good.
    pub fn finish<T>(self, value: Option<T>) -> Result<T, ValidationErrors> {
        match value {
            Some(value) if self.errors.is_empty() => Ok(value),
            _ => Err(self.errors),
        }
    }
}

/// A household row.
pub fn parse_household(
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<NewHousehold, ValidationErrors> {
    let mut fields = Fields::new(get);
    let neighbourhood: Option<AreaId> = fields.id("neighbourhood_id", "a neighbourhood");
    let address = fields.required("address").unwrap_or_default();
    let postal_code = fields.text("postal_code");
    let household = neighbourhood.and_then(|neighbourhood| {
        NewHousehold::parse(neighbourhood, &address, postal_code.as_deref())
            .map_err(|e| fields.absorb(e))
            .ok()
    });
    fields.finish(household)
}

/// An assessment row: whom it is of, and the assessment as `POST /persons/{id}/assessments`
/// takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedAssessment {
    pub national_id: NationalId,
    pub assessment: NewAssessment,
}

pub fn parse_assessment(
    get: &dyn Fn(&str) -> Option<String>,
    today: NaiveDate,
) -> Result<ImportedAssessment, ValidationErrors> {
    let mut fields = Fields::new(get);
    let national_id = fields.national_id("national_id");
    let kind = fields.name("kind", true);
    let assessed_on = fields.date("assessed_on", true);
    let employment_status = fields.name("employment_status", true);
    let income_band = fields.name("income_band", true);
    let social_insurance = fields.flag("social_insurance", true);
    let welfare_services: Vec<WelfareService> = fields
        .text("welfare_services")
        .map(|v| {
            v.split([' ', ';', ','])
                .filter(|s| !s.is_empty())
                .filter_map(|s| {
                    fields
                        .errors
                        .check(s.parse().map_err(|e: crate::access::UnknownName| {
                            FieldError::new("welfare_services", "unknown", e.to_string())
                        }))
                })
                .collect()
        })
        .unwrap_or_default();
    let skills = fields.text("skills");
    let disability = fields.flag("disability", false).unwrap_or(false);
    let dependants = fields
        .number("dependants", false)
        .map(|n| i32::try_from(n).unwrap_or(i32::MAX))
        .unwrap_or(0);
    let value = match (
        national_id,
        kind,
        assessed_on,
        employment_status,
        income_band,
        social_insurance,
    ) {
        (
            Some(national_id),
            Some(kind),
            Some(assessed_on),
            Some(employment_status),
            Some(income_band),
            Some(social_insurance),
        ) => {
            let assessment = NewAssessment {
                kind,
                assessed_on,
                employment_status,
                income_band,
                social_insurance,
                welfare_services,
                skills,
                disability,
                dependants,
            }
            .check(today);
            match assessment {
                Ok(assessment) => Some(ImportedAssessment {
                    national_id,
                    assessment,
                }),
                Err(more) => {
                    fields.absorb(more);
                    None
                }
            }
        }
        _ => None,
    };
    fields.finish(value)
}

/// An enrolment row: the household's enrolment in the programme, moved to `state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedEnrolment {
    pub household_id: HouseholdId,
    pub programme_id: ProgrammeId,
    /// None when the row gives none: a new enrolment starts `identified`, one that exists stays
    /// where it is.
    pub state: Option<EnrolmentState>,
    pub on: NaiveDate,
    pub reason: Option<String>,
}

pub fn parse_enrolment(
    get: &dyn Fn(&str) -> Option<String>,
    today: NaiveDate,
) -> Result<ImportedEnrolment, ValidationErrors> {
    let mut fields = Fields::new(get);
    let household_id = fields.id("household_id", "a household");
    let programme_id = fields.id("programme_id", "a programme");
    let state = fields.name("state", false);
    // As `on` of `POST /enrolments` and of a transition: any day, today if not given.
    let on = fields.date("effective_on", false).unwrap_or(today);
    let reason = fields.text("reason");
    let value = match (household_id, programme_id) {
        (Some(household_id), Some(programme_id)) => Some(ImportedEnrolment {
            household_id,
            programme_id,
            state,
            on,
            reason,
        }),
        _ => None,
    };
    fields.finish(value)
}

/// An attendance row: one person's mark at one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedMark {
    pub session_id: SessionId,
    pub national_id: NationalId,
    pub mark: AttendanceMark,
}

pub fn parse_attendance(
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<ImportedMark, ValidationErrors> {
    let mut fields = Fields::new(get);
    let session_id = fields.id("session_id", "a session");
    let national_id = fields.national_id("national_id");
    let mark = fields.name("mark", true);
    let value = match (session_id, national_id, mark) {
        (Some(session_id), Some(national_id), Some(mark)) => Some(ImportedMark {
            session_id,
            national_id,
            mark,
        }),
        _ => None,
    };
    fields.finish(value)
}

/// A purchase row: an order of one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedPurchase {
    pub reference: String,
    pub supporter_id: String,
    pub producer: NationalId,
    pub ordered_on: NaiveDate,
    pub item_kind: ItemKind,
    pub product_id: Option<String>,
    pub description: Option<String>,
    pub line: Line,
}

pub fn parse_purchase(
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<ImportedPurchase, ValidationErrors> {
    let mut fields = Fields::new(get);
    let reference = fields.required("reference");
    if reference.as_ref().is_some_and(|r| r.chars().count() > 64) {
        fields.errors.push(FieldError::new(
            "reference",
            "length",
            "must be at most 64 characters",
        ));
    }
    // Supporters' ids are UUIDs as text: read as one, so that a row's key (kept for the whole
    // file to find repeats) is never longer than an id.
    let supporter_id = fields
        .id::<uuid::Uuid>("supporter_id", "a supporter")
        .map(|id| id.to_string());
    let producer = fields.national_id("producer_national_id");
    let ordered_on = fields.date("ordered_on", true);
    let item_kind = fields.name("item_kind", true);
    let product_id = fields.text("product_id");
    let description = fields.text("description");
    let quantity = fields.number("quantity", true);
    let unit_price = fields.number("unit_price", true);
    if let (Some(quantity), Some(unit_price)) = (quantity, unit_price) {
        // The API's own check of a line, with its codes; the row's columns are the line's.
        if let Err(e) = purchase_total(&[Line {
            quantity,
            unit_price,
        }]) {
            for mut error in e.0 {
                error.field = match error.field.as_str() {
                    "lines[0].quantity" => "quantity".to_owned(),
                    "lines[0].unit_price" => "unit_price".to_owned(),
                    _ => "row".to_owned(),
                };
                fields.errors.push(error);
            }
        }
    }
    let value = match (
        reference,
        supporter_id,
        producer,
        ordered_on,
        item_kind,
        quantity,
        unit_price,
    ) {
        (
            Some(reference),
            Some(supporter_id),
            Some(producer),
            Some(ordered_on),
            Some(item_kind),
            Some(quantity),
            Some(unit_price),
        ) => Some(ImportedPurchase {
            reference,
            supporter_id,
            producer,
            ordered_on,
            item_kind,
            product_id,
            description,
            line: Line {
                quantity,
                unit_price,
            },
        }),
        _ => None,
    };
    fields.finish(value)
}

/// A closed-set name (`female`, `head`, …) or an `unknown` error on `field`.
fn name_of<T: std::str::FromStr<Err = crate::access::UnknownName>>(
    field: &'static str,
    value: Option<String>,
    errors: &mut ValidationErrors,
) -> Option<T> {
    value.and_then(|v| {
        errors.check(
            v.parse::<T>()
                .map_err(|e| FieldError::new(field, "unknown", e.to_string())),
        )
    })
}

/// A person row, parsed by the API's own rules.
pub fn parse_person(
    get: &dyn Fn(&str) -> Option<String>,
    today: NaiveDate,
) -> Result<NewPerson, ValidationErrors> {
    let mut errors = ValidationErrors::default();
    let text = |name: &str| {
        get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let required = |errors: &mut ValidationErrors, name: &'static str| {
        let value = text(name);
        if value.is_none() {
            errors.push(FieldError::new(
                name,
                "required",
                format!("{name} is required"),
            ));
        }
        value
    };
    let national_id = required(&mut errors, "national_id").unwrap_or_default();
    let first_name = required(&mut errors, "first_name").unwrap_or_default();
    let last_name = required(&mut errors, "last_name").unwrap_or_default();
    let birth_date = required(&mut errors, "birth_date").unwrap_or_default();
    let sex: Option<Sex> = {
        let v = required(&mut errors, "sex");
        name_of("sex", v, &mut errors)
    };
    let role: Option<HouseholdRole> = {
        let v = required(&mut errors, "household_role");
        name_of("household_role", v, &mut errors)
    };
    let education: Option<Education> = name_of("education", text("education"), &mut errors);
    let household: Option<HouseholdId> = required(&mut errors, "household_id").and_then(|v| {
        errors.check(
            v.parse()
                .map_err(|_| FieldError::new("household_id", "format", "must be a household id")),
        )
    });
    let mobile = text("mobile");
    let member_since = text("member_since");
    let input = PersonInput {
        national_id: &national_id,
        first_name: &first_name,
        last_name: &last_name,
        birth_date: &birth_date,
        mobile: mobile.as_deref(),
        member_since: member_since.as_deref(),
    };
    match (sex, role, household) {
        (Some(sex), Some(role), Some(household)) if errors.is_empty() => {
            NewPerson::parse(input, sex, education, household, role, today)
        }
        _ => {
            // Report the field rules too, with placeholders for what already failed.
            let placeholder = HouseholdId::generate();
            if let Err(more) = NewPerson::parse(
                input,
                sex.unwrap_or(Sex::Female),
                education,
                household.unwrap_or(placeholder),
                role.unwrap_or(HouseholdRole::Other),
                today,
            ) {
                for e in more.0 {
                    if !errors.0.iter().any(|x| x.field == e.field) {
                        errors.push(e);
                    }
                }
            }
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each value of a closed set is named in its column's description: the description is the
    /// file's writers' only list of them.
    #[test]
    fn closed_sets_are_listed_whole_in_their_columns() {
        use crate::assessment::{AssessmentKind, EmploymentStatus, IncomeBand, WelfareService};
        use crate::funds::ItemKind;
        use crate::person::{Education, HouseholdRole, Sex};
        use crate::training::AttendanceMark;
        fn names<T: Copy + std::fmt::Display>(all: &[T]) -> Vec<String> {
            all.iter().map(ToString::to_string).collect()
        }
        let sets = [
            (ImportKind::Persons, "sex", names(Sex::ALL)),
            (
                ImportKind::Persons,
                "household_role",
                names(HouseholdRole::ALL),
            ),
            (ImportKind::Persons, "education", names(Education::ALL)),
            (ImportKind::Assessments, "kind", names(AssessmentKind::ALL)),
            (
                ImportKind::Assessments,
                "employment_status",
                names(EmploymentStatus::ALL),
            ),
            (
                ImportKind::Assessments,
                "income_band",
                names(IncomeBand::ALL),
            ),
            (
                ImportKind::Assessments,
                "welfare_services",
                names(WelfareService::ALL),
            ),
            (ImportKind::Attendance, "mark", names(AttendanceMark::ALL)),
            (ImportKind::Purchases, "item_kind", names(ItemKind::ALL)),
        ];
        for (kind, name, values) in sets {
            let column = columns(kind)
                .iter()
                .find(|c| c.name == name)
                .expect("column");
            // After a colon when the description says more than the list.
            let list = column.description.rsplit(": ").next().unwrap_or_default();
            let listed: Vec<&str> = list
                .split([',', ' '])
                .filter(|w| !w.is_empty() && *w != "or")
                .collect();
            assert_eq!(listed, values, "{kind} {name}");
        }
    }

    fn header(names: &[&str]) -> Result<Header, ValidationErrors> {
        check_header(
            ImportKind::Persons,
            &names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
        )
    }

    const ALL: [&str; 7] = [
        "national_id",
        "first_name",
        "last_name",
        "birth_date",
        "sex",
        "household_id",
        "household_role",
    ];

    #[test]
    fn headers_are_checked() {
        let mut with_bom = ALL.to_vec();
        with_bom[0] = "\u{feff}National_ID ";
        assert!(header(&with_bom).is_ok());
        let errors = header(&ALL[..6]).expect_err("missing");
        assert_eq!(errors.0[0].code, "missing_column");
        assert_eq!(errors.0[0].field, "household_role");
        let mut extra = ALL.to_vec();
        extra.push("favourite_colour");
        let errors = header(&extra).expect_err("unknown");
        assert_eq!(errors.0[0].code, "unknown_column");
        assert!(errors.0[0].message.contains("national_id"));
    }

    #[test]
    fn columns_with_no_name_are_passed_over_while_empty() {
        let mut padded = ALL.to_vec();
        padded.extend(["", " "]);
        let header = header(&padded).expect("the empty columns a spreadsheet adds");
        assert_eq!(header.unnamed, [7, 8]);
        let row = |cells: &[&str]| header.unnamed_value(|i| cells.get(i).copied());
        assert!(row(&["a"; 9][..7]).is_none());
        assert!(row(&["a", "a", "a", "a", "a", "a", "a", "", " "]).is_none());
        let error = row(&["a", "a", "a", "a", "a", "a", "a", "", "lost"]).expect("a value");
        assert_eq!(
            (error.field.as_str(), error.code),
            ("column 9", "unknown_column")
        );
    }

    #[test]
    fn numbers_hold_digits_alone() {
        let number = |value: &str| {
            let get = |_: &str| Some(value.to_owned());
            let mut fields = Fields::new(&get);
            let n = fields.number("quantity", true);
            (n, fields.errors.0.first().map(|e| e.code))
        };
        assert_eq!(number("12"), (Some(12), None));
        assert_eq!(number(" ۱۲ "), (Some(12), None));
        assert_eq!(number("٣"), (Some(3), None));
        assert_eq!(number("-4"), (Some(-4), None));
        for bad in ["1-2", "2 3", "10-20", "1,500", "-", "--1", "1.5", "x"] {
            assert_eq!(number(bad), (None, Some("format")), "{bad}");
        }
    }

    #[test]
    fn rows_follow_the_api_rules() {
        let today = NaiveDate::from_ymd_opt(2024, 1, 1).expect("day");
        let household = HouseholdId::generate().to_string();
        let row: HashMap<&str, String> = [
            ("national_id", "۰۴۹۹۳۷۰۸۹۹".to_owned()),
            ("first_name", "علي".to_owned()),
            ("last_name", "كريمي".to_owned()),
            ("birth_date", "١٣٦٠-٠١-٠١".to_owned()),
            ("sex", "male".to_owned()),
            ("household_id", household),
            ("household_role", "head".to_owned()),
        ]
        .into_iter()
        .collect();
        let get = |name: &str| row.get(name).cloned();
        let person = parse_person(&get, today).expect("valid");
        assert_eq!(person.national_id.as_str(), "0499370899");
        assert_eq!(person.first_name.normalised, "علی");
        let bad: HashMap<&str, String> = [
            ("national_id", "1111111111".to_owned()),
            ("sex", "x".to_owned()),
        ]
        .into_iter()
        .collect();
        let get = |name: &str| bad.get(name).cloned();
        let errors = parse_person(&get, today).expect_err("invalid");
        let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"national_id"), "{fields:?}");
        assert!(fields.contains(&"sex"));
        assert!(fields.contains(&"first_name"));
    }

    /// `effective_on` is the API's `on`: today when not given, and a later day is taken as the
    /// API takes it.
    #[test]
    fn an_enrolment_row_is_dated_as_the_api_dates_it() {
        let today = NaiveDate::from_ymd_opt(2024, 1, 1).expect("day");
        let (household, programme) = (HouseholdId::generate(), ProgrammeId::generate());
        let row = |on: Option<&str>| -> HashMap<&'static str, String> {
            let mut row: HashMap<&'static str, String> = [
                ("household_id", household.to_string()),
                ("programme_id", programme.to_string()),
            ]
            .into_iter()
            .collect();
            if let Some(on) = on {
                row.insert("effective_on", on.to_owned());
            }
            row
        };
        for (given, expected) in [
            (None, today),
            (Some("2024-02-01"), today + chrono::Days::new(31)),
        ] {
            let values = row(given);
            let get = |name: &str| values.get(name).cloned();
            assert_eq!(parse_enrolment(&get, today).expect("valid").on, expected);
        }
    }
}
