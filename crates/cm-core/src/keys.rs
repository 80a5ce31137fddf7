//! SSH public keys (D7): the validated key, the stored key, and the `authorized_keys` file rendered
//! from the store.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The only key algorithm accepted.
pub const ED25519: &str = "ssh-ed25519";
/// The longest canonical line accepted (algorithm, base64 body, comment).
pub const KEY_LINE_MAX: usize = 512;
/// The longest comment accepted.
pub const COMMENT_MAX: usize = 100;

/// A parsed ed25519 public key in canonical OpenSSH form: `ssh-ed25519 AAAA... comment`.
///
/// Built by a [`crate::KeyParser`]; the constructor re-checks the shape, so whatever parser made it,
/// the line is one line of safe characters that can not carry `authorized_keys` options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshPublicKey {
    line: String,
    fingerprint: String,
    comment: String,
}

/// A key as stored for a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredKey {
    /// The key.
    pub key: SshPublicKey,
    /// When it was added, RFC 3339 UTC.
    pub added_at: String,
}

impl SshPublicKey {
    /// Wraps the output of a real parser after checking its shape.
    ///
    /// `line` is the canonical encoding (algorithm, base64 body, optional comment), `fingerprint`
    /// the `SHA256:...` form that `ssh-keygen -lf` prints.
    pub fn from_parsed(line: &str, fingerprint: &str, comment: &str) -> Result<Self> {
        let mut parts = line.splitn(3, ' ');
        let algorithm = parts.next().unwrap_or_default();
        let body = parts.next().unwrap_or_default();
        let line_comment = parts.next().unwrap_or_default();
        let body_ok = !body.is_empty()
            && body
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c));
        let fingerprint_ok = fingerprint.starts_with("SHA256:")
            && fingerprint[7..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c));
        if algorithm != ED25519
            || !body_ok
            || line_comment != comment
            || !comment_is_safe(comment)
            || line.len() > KEY_LINE_MAX
            || !fingerprint_ok
        {
            return Err(Error::invalid(
                "invalid ssh key: not a canonical single-line ed25519 key",
            ));
        }
        Ok(SshPublicKey {
            line: line.to_owned(),
            fingerprint: fingerprint.to_owned(),
            comment: comment.to_owned(),
        })
    }

    /// The canonical line, as written to `authorized_keys`.
    pub fn line(&self) -> &str {
        &self.line
    }

    /// `SHA256:...`, equal to `ssh-keygen -lf`.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The comment (may be empty).
    pub fn comment(&self) -> &str {
        &self.comment
    }

    /// The algorithm name.
    pub fn algorithm(&self) -> &'static str {
        ED25519
    }
}

/// Comments may hold letters, digits and `. _ - @ + :` (such as `alice@laptop`), nothing else.
pub fn comment_is_safe(comment: &str) -> bool {
    comment.len() <= COMMENT_MAX
        && comment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@+:".contains(c))
}

/// The whole `authorized_keys` file for these keys: one canonical line each, newline-terminated.
pub fn render_authorized_keys(keys: &[StoredKey]) -> String {
    let mut text = String::from("# Managed by ContainerManager: edits here are replaced.\n");
    for stored in keys {
        text.push_str(stored.key.line());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

    #[test]
    fn accepts_a_canonical_key() {
        let line = format!("ssh-ed25519 {BODY} alice@laptop");
        let key = SshPublicKey::from_parsed(&line, "SHA256:abc+/=", "alice@laptop").unwrap();
        assert_eq!(key.line(), line);
        let text = render_authorized_keys(&[StoredKey {
            key,
            added_at: "2026-01-01T00:00:00Z".into(),
        }]);
        assert!(text.ends_with(&format!("{line}\n")));
    }

    #[test]
    fn refuses_shapes_a_parser_should_never_produce() {
        for (line, comment) in [
            (format!("ssh-rsa {BODY}"), ""),
            (
                format!("ssh-ed25519 {BODY} a\nssh-ed25519 {BODY}"),
                "a\nssh-ed25519",
            ),
            (format!("command=\"x\" ssh-ed25519 {BODY}"), ""),
            (format!("ssh-ed25519 {BODY} a b"), "a b"),
            ("ssh-ed25519 not-base64!".to_owned(), ""),
        ] {
            assert!(
                SshPublicKey::from_parsed(&line, "SHA256:x", comment).is_err(),
                "{line}"
            );
        }
    }
}
