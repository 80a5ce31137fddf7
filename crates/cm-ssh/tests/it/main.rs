//! Interoperability with OpenSSH's own tools: what `ssh-keygen` makes, we accept with the same
//! fingerprint, and what we make, `ssh-keygen` reads back.

mod helpers;
mod keygen;
