//! Batch imports (CSV or JSON Lines): kinds, modes, the columns each kind takes, and turning one
//! row into the same validated value the API builds, with the same error codes.

use std::collections::HashMap;

use chrono::NaiveDate;

use crate::error::{FieldError, ValidationErrors};
use crate::id::HouseholdId;
use crate::person::{Education, HouseholdRole, NewPerson, PersonInput, Sex};

names!(
    /// What a file holds.
    ImportKind, "import kind", { Persons => "persons" }
);

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
        description: "none, literacy, primary, lower_secondary, diploma, associate, bachelor or higher",
    },
    Column {
        name: "member_since",
        required: false,
        description: "day joining the household (default: the day of the import)",
    },
];

pub fn columns(kind: ImportKind) -> &'static [Column] {
    match kind {
        ImportKind::Persons => PERSON_COLUMNS,
    }
}

/// Where each known column is in the file's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub positions: HashMap<&'static str, usize>,
}

/// Checks a header: every required column present, no unknown or repeated one. Names are
/// trimmed, lower-cased, and a byte-order mark is ignored.
pub fn check_header(kind: ImportKind, names: &[String]) -> Result<Header, ValidationErrors> {
    let mut errors = ValidationErrors::default();
    let known = columns(kind);
    let mut positions = HashMap::new();
    for (i, raw) in names.iter().enumerate() {
        let name = raw.trim_start_matches('\u{feff}').trim().to_lowercase();
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
                if name.is_empty() {
                    format!("column {}", i + 1)
                } else {
                    name.clone()
                },
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
    errors.into_result().map(|()| Header { positions })
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
}
