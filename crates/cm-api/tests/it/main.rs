//! Tests of the HTTP API: in process over cm-core's fakes (every endpoint, the authorization
//! matrix, errors, logs, the OpenAPI document), and against a real `cm-api` process (the
//! generated admin key; one end-to-end run on the real Docker engine).

#![allow(clippy::unwrap_used)]

mod audit;
mod authz;
mod authz_binary;
mod binary;
mod dashboard;
mod dashboard_browser;
mod endpoints;
mod engine;
mod errors;
mod events;
mod exec_limits;
mod gate;
mod helpers;
mod idle;
mod logging;
mod metrics;
mod nodes;
mod openapi;
mod schemathesis;
mod toolbox;
mod toolbox_worker;
