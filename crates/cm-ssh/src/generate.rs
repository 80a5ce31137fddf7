//! Ed25519 key pairs for `docksh setup`.

use std::fmt;
use std::ops::Deref;

use cm_core::{COMMENT_MAX, Error, KeyParser, Result, SshPublicKey, comment_is_safe};
use ssh_key::{Algorithm, LineEnding, PrivateKey};

use crate::Ed25519KeyParser;

/// A freshly generated ed25519 key pair.
///
/// The private half is held as OpenSSH PEM text (`-----BEGIN OPENSSH PRIVATE KEY-----`, LF line
/// endings, not encrypted) that is wiped from memory on drop; `Debug` never prints it.
pub struct GeneratedKey {
    private_openssh: Box<dyn Deref<Target = String> + Send + Sync>,
    public: SshPublicKey,
}

/// Generates an unencrypted ed25519 key pair with this comment, from the operating system's
/// random source (through `rand::rng()`).
///
/// The comment must pass [`comment_is_safe`]; use [`safe_comment`] to make one from a host or
/// user name. The public half is validated by [`Ed25519KeyParser`], like any key a user sends.
pub fn generate_keypair(comment: &str) -> Result<GeneratedKey> {
    if !comment_is_safe(comment) {
        return Err(Error::invalid(format!(
            "invalid key comment: use at most {COMMENT_MAX} letters, digits and . _ - @ + :"
        )));
    }
    let mut private = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
        .map_err(|e| Error::internal("generating an ed25519 key failed").with_source(e))?;
    private.set_comment(comment);
    let private_openssh = private
        .to_openssh(LineEnding::LF)
        .map_err(|e| Error::internal("encoding the private key failed").with_source(e))?;
    let public_line = private
        .public_key()
        .to_openssh()
        .map_err(|e| Error::internal("encoding the public key failed").with_source(e))?;
    let public = Ed25519KeyParser.parse(&public_line)?;
    Ok(GeneratedKey {
        private_openssh: Box::new(private_openssh),
        public,
    })
}

/// Reads the public half of an OpenSSH private key (`-----BEGIN OPENSSH PRIVATE KEY-----` text) and
/// validates it like any key a user sends.
///
/// The public half is stored in clear in that format, so this works for passphrase-protected keys
/// too; `docksh` uses it to recover a lost `.pub` file.
pub fn public_key_from_private(private_openssh: &str) -> Result<SshPublicKey> {
    let private = PrivateKey::from_openssh(private_openssh)
        .map_err(|e| Error::invalid(format!("not an openssh private key ({e})")))?;
    let line = private
        .public_key()
        .to_openssh()
        .map_err(|e| Error::internal("encoding the public key failed").with_source(e))?;
    Ed25519KeyParser.parse(&line)
}

/// Turns any text (a host name, a user name) into a comment that [`comment_is_safe`] accepts:
/// other characters become `-`, and the result is cut to [`COMMENT_MAX`] characters.
pub fn safe_comment(raw: &str) -> String {
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-@+:".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(COMMENT_MAX)
        .collect()
}

impl GeneratedKey {
    /// The private key in OpenSSH format with LF line endings, ready to write to a mode-600 file.
    pub fn private_openssh(&self) -> &str {
        self.private_openssh.as_str()
    }

    /// The public key, canonical and validated.
    pub fn public_key(&self) -> &SshPublicKey {
        &self.public
    }

    /// The public key line (`ssh-ed25519 AAAA... comment`), as written to the `.pub` file without
    /// its trailing newline.
    pub fn public_line(&self) -> &str {
        self.public.line()
    }
}

impl fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("private_openssh", &"<redacted>")
            .field("public", &self.public)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_valid_distinct_and_parse_back() {
        let a = generate_keypair("docksh@host-1").unwrap();
        let b = generate_keypair("docksh@host-1").unwrap();
        assert_ne!(a.public_line(), b.public_line());
        assert!(
            a.public_line()
                .starts_with("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI")
        );
        assert!(a.public_line().ends_with(" docksh@host-1"));
        assert_eq!(a.public_key().comment(), "docksh@host-1");

        let pem = a.private_openssh();
        assert!(pem.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"));
        assert!(pem.ends_with("-----END OPENSSH PRIVATE KEY-----\n"));
        assert!(!pem.contains('\r'));
        let private = PrivateKey::from_openssh(pem).unwrap();
        assert!(!private.is_encrypted());
        assert_eq!(private.public_key().to_openssh().unwrap(), a.public_line());
        assert!(!format!("{a:?}").contains("PRIVATE"));
    }

    #[test]
    fn the_public_key_is_recovered_from_the_private_key() {
        let generated = generate_keypair("me@host").unwrap();
        let public = public_key_from_private(generated.private_openssh()).unwrap();
        assert_eq!(&public, generated.public_key());
        let err = public_key_from_private("ssh-ed25519 AAAA").unwrap_err();
        assert_eq!(err.kind(), cm_core::ErrorKind::InvalidInput);
    }

    #[test]
    fn an_empty_comment_is_allowed() {
        let key = generate_keypair("").unwrap();
        assert_eq!(key.public_key().comment(), "");
        assert_eq!(key.public_line().split(' ').count(), 2);
    }

    #[test]
    fn an_unsafe_comment_is_refused() {
        for comment in ["a b", "x\ny", "é", &"a".repeat(COMMENT_MAX + 1)] {
            let err = generate_keypair(comment).unwrap_err();
            assert_eq!(err.kind(), cm_core::ErrorKind::InvalidInput, "{comment}");
        }
    }

    #[test]
    fn safe_comment_cleans_any_name() {
        assert_eq!(safe_comment("docksh@my host.local"), "docksh@my-host.local");
        assert_eq!(safe_comment("bücher\n"), "b-cher-");
        assert_eq!(safe_comment(&"x".repeat(300)).len(), COMMENT_MAX);
        for raw in ["", "a b c", "\u{202e}evil", "ok@host"] {
            assert!(comment_is_safe(&safe_comment(raw)), "{raw}");
        }
    }
}
