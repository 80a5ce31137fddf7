//! The `cm` admin CLI: command line parsing, wiring of the real adapters, and output. Business rules
//! live in cm-core; this crate only translates.

pub mod cli;
mod commands;
mod output;

pub use commands::{exit_code_of, run};
