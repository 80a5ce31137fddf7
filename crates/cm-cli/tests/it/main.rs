//! Integration tests of `cm` against the real Docker engine: one test binary, modules by theme.
//!
//! Every test runs in its own `TestEnv` (database, config, labels, port pool) and holds a Docker
//! slot, so at most two container-starting tests run at once on the machine.

#![allow(clippy::unwrap_used)]

mod adopt;
mod audit;
mod failures;
mod helpers;
mod images;
mod lifecycle;
mod networks;
mod output;
mod races;
mod reconcile;
mod remote;
mod routes;
mod ssh;
