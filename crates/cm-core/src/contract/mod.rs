//! Port contracts (feature `testing`): what every implementation of a port must do, written once
//! and run against the in-memory fake and the real adapter, so a fake can not drift from the real
//! thing unnoticed. `store`: the [`crate::Store`] contract (cm-core's tests run it against
//! `MemoryStore`, cm-store's against `SqliteStore`); `runtime`: the [`crate::ContainerRuntime`]
//! contract (against `FakeRuntime` here and cm-docker's adapter on the real engine).
//!
//! Each contract is a set of async checks over a subject, and a macro that turns them into one
//! test per check in the calling test crate.

pub mod runtime;
pub mod store;
