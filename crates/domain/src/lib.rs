//! Tavana's domain: the programme's types, rules and validation. No I/O, no diesel, no actix.
//!
//! Parse, don't validate: values that cross the API boundary become types here (`AreaCode`,
//! `AreaLevel`, …) and the rest of the service works only with those.

#[macro_use]
mod names;

pub mod access;
pub mod area;
pub mod assessment;
pub mod calendar;
pub mod consent;
pub mod enrolment;
pub mod error;
pub mod funds;
pub mod household;
pub mod id;
pub mod import;
pub mod loan;
pub mod mobile;
pub mod national_id;
pub mod organisation;
pub mod outcome;
pub mod partner;
pub mod permit;
pub mod person;
pub mod progress;
pub mod research;
pub mod text;
pub mod training;

pub use error::{FieldError, ValidationErrors};
