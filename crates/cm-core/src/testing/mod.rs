//! In-memory fakes of every port, for unit tests of cm-core and of embedders (feature `testing`),
//! one module per port: `runtime` (the engine), `store`, `proxy`, `host` (key parser, port and
//! app probes, clock), `auth` (credentials, entropy) and `world` (`FakeWorld`, fail points, the
//! audit trail).
//!
//! They keep enough state to assert on (containers, volumes, networks, leases, files) and can be
//! told to fail at a chosen operation, so every failure point of a use case can be tested.

mod auth;
mod host;
mod proxy;
mod runtime;
mod store;
mod world;

pub use auth::*;
pub use host::*;
pub use proxy::*;
pub use runtime::*;
pub use store::*;
pub use world::*;
