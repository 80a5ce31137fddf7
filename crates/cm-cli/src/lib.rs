//! The `cm` admin CLI: command line parsing, wiring of the real adapters, and output. Business rules
//! live in cm-core; this crate only translates.

mod audit;
mod backend;
pub mod cli;
mod commands;
mod output;
mod remote;

pub use commands::{Host, execute_with, exit_code_of, run};
