//! The use cases, one module each, all methods of [`crate::Manager`]: `create`, `lookup`
//! (resolve and list), `lifecycle` (start, stop, restart), `exec` (commands, logs, stats),
//! `delete`, `keys` (SSH keys), `routes`, `update` (a new image, the old container kept aside);
//! `steps` is what a create, an update and their recovery by the reconciler share.
//!
//! Every use case validates before it touches anything, records its intent in the store before
//! its first side effect, and undoes what it did when a later step fails.

pub(crate) mod create;
pub(crate) mod delete;
pub(crate) mod exec;
pub(crate) mod health;
pub(crate) mod idle;
pub(crate) mod keys;
pub(crate) mod lifecycle;
pub(crate) mod lookup;
pub(crate) mod metrics;
pub(crate) mod nodes;
pub(crate) mod quota;
pub(crate) mod relocate;
pub(crate) mod route_check;
pub(crate) mod routes;
pub(crate) mod status_feed;
pub(crate) mod steps;
pub(crate) mod update;
