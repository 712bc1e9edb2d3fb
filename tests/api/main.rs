//! Black-box tests of the whole service over HTTP, on every available backend.

mod helpers;

mod access;
mod areas;
mod auth;
mod cli;
mod demo;
mod enrolments;
mod errors;
mod households;
mod import_kinds;
mod import_rules;
mod imports;
mod loans;
mod migrations;
mod operations;
mod partners;
mod permits;
mod persons;
mod progress;
mod spec;
mod supporters;
mod training;
mod webhooks;
