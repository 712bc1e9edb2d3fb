//! Black-box tests of the whole service over HTTP, on every available backend.

mod helpers;

mod areas;
mod cli;
mod errors;
mod migrations;
mod operations;
mod spec;
