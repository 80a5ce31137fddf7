//! cm-nginx's integration tests: one binary (see the conventions), modules by theme.
//!
//! `render` needs nothing; `routing` starts a real, unprivileged nginx per test (its own prefix,
//! port and box directories). Without nginx those tests print a loud skip line, except under CI
//! (`CI` set), where a missing nginx fails them.

// Helpers outside `#[test]` functions unwrap too: a failed setup is a failed test.
#![allow(clippy::unwrap_used)]

mod helpers;
mod render;
mod routing;
mod site;
