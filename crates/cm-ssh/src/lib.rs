//! ContainerManager's SSH key adapter (D7).
//!
//! [`Ed25519KeyParser`] implements [`cm_core::KeyParser`] with the `ssh-key` crate: it accepts exactly
//! one plain `ssh-ed25519` public key line and refuses everything else (options, other algorithms,
//! a second smuggled key, control characters, unsafe comments) with a message that tells an admin
//! why. [`generate_keypair`] makes the key pair that `docksh setup` writes to `~/.ssh`.
//!
//! No I/O happens here: reading and writing key files is the frontends' job.

mod generate;
mod parse;

pub use generate::{GeneratedKey, generate_keypair, public_key_from_private, safe_comment};
pub use parse::{Ed25519KeyParser, RAW_KEY_MAX};
