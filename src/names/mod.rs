//! Shared vocabulary, below every stage and owned by none: Hive
//! `key=value` path segments and their escaping ([`hive`]), file-name globs
//! ([`glob`]), and the name of an output, a table or its error output
//! ([`output`]). Pure: no I/O, no imports from the stages.

pub mod glob;
pub mod hive;
pub mod output;

pub use glob::glob_match;
pub use output::{ERRORS_DIR, OutputName};
