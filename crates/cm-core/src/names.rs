//! Validated names: parse, don't validate.
//!
//! Every string that reaches Docker, nginx config, a file path or HTML is one of these types, built
//! only by `parse`. The character sets are chosen so that the derived names below can never be
//! ambiguous or carry syntax into another language: no `/`, `.`, `;`, braces, quotes, spaces or
//! control characters.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A user id: 1-63 ASCII letters, digits, `_` and `-`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

/// The name of a container type: 1-32 lowercase letters, digits and `_`, starting with a letter.
///
/// A syntactically valid name is not yet a configured type; [`crate::Config::container_type`]
/// checks that.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TypeName(String);

/// The Docker container name of a user's container of a type: `{user_id}_{type}` (D1).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ContainerName(String);

/// The data volume of a user's container of a type: `{user_id}_{type}_data` (D1, D4).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct VolumeName(String);

/// The bridge network of one user: `cm-user-{user_id}` (D5).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NetworkName(String);

/// A node of a cluster (a Swarm node's host name): 1-253 ASCII letters, digits, `.` and `-`,
/// starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeName(String);

const USER_ID_MAX: usize = 63;
const NODE_NAME_MAX: usize = 253;
const TYPE_NAME_MAX: usize = 32;
const NETWORK_PREFIX: &str = "cm-user-";

impl UserId {
    /// Parses a user id, refusing anything outside the allowed set with a message that says what is allowed.
    pub fn parse(raw: &str) -> Result<Self> {
        let allowed =
            "a user id is 1-63 characters of letters, digits, '_' and '-', starting with a letter or digit";
        let first_ok = raw.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        let rest_ok = raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if raw.is_empty() || raw.len() > USER_ID_MAX || !first_ok || !rest_ok {
            return Err(Error::invalid(format!(
                "invalid user id {}: {allowed}",
                quote(raw)
            )));
        }
        Ok(UserId(raw.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TypeName {
    /// Parses a type name (syntax only).
    pub fn parse(raw: &str) -> Result<Self> {
        let first_ok = raw.chars().next().is_some_and(|c| c.is_ascii_lowercase());
        let rest_ok = raw
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if raw.is_empty() || raw.len() > TYPE_NAME_MAX || !first_ok || !rest_ok {
            return Err(Error::invalid(format!(
                "invalid container type {}: a type name is 1-32 lowercase letters, digits and '_', starting with a letter",
                quote(raw)
            )));
        }
        Ok(TypeName(raw.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl ContainerName {
    /// The deterministic container name of a user and type.
    pub fn of(user: &UserId, kind: &TypeName) -> Self {
        ContainerName(format!("{}_{}", user.0, kind.0))
    }

    /// Parses a stored name; it must have the shape `{user_id}_{type}`.
    pub fn parse(raw: &str) -> Result<Self> {
        let valid = raw.len() <= USER_ID_MAX + 1 + TYPE_NAME_MAX
            && raw.char_indices().any(|(i, c)| {
                c == '_' && UserId::parse(&raw[..i]).is_ok() && TypeName::parse(&raw[i + 1..]).is_ok()
            });
        if !valid {
            return Err(Error::invalid(format!("invalid container name {}", quote(raw))));
        }
        Ok(ContainerName(raw.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl VolumeName {
    /// The deterministic data volume of a user and type.
    pub fn of(user: &UserId, kind: &TypeName) -> Self {
        VolumeName(format!("{}_{}_data", user.0, kind.0))
    }

    /// Parses a stored volume name; it must have the shape `{user_id}_{type}_data`, or the
    /// Python original's `container_{user_id}_{type}_{8 hex digits}` (kept by adoption).
    pub fn parse(raw: &str) -> Result<Self> {
        let ours = raw
            .strip_suffix("_data")
            .is_some_and(|name| ContainerName::parse(name).is_ok());
        if ours || is_original_volume(raw) {
            Ok(VolumeName(raw.to_owned()))
        } else {
            Err(Error::invalid(format!("invalid volume name {}", quote(raw))))
        }
    }

    /// Whether the Python original made it (an adopted container's volume): it carries no labels.
    pub fn is_original(&self) -> bool {
        is_original_volume(&self.0)
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The original's volume names: `container_{user_id}_{type}_{8 lowercase hex digits}`.
fn is_original_volume(raw: &str) -> bool {
    raw.strip_prefix("container_")
        .and_then(|rest| rest.rsplit_once('_'))
        .is_some_and(|(name, suffix)| {
            suffix.len() == 8
                && suffix
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                && ContainerName::parse(name).is_ok()
        })
}

impl NetworkName {
    /// The bridge network of a user.
    pub fn of(user: &UserId) -> Self {
        NetworkName(format!("{NETWORK_PREFIX}{}", user.0))
    }

    /// Parses a stored network name; it must have the shape `cm-user-{user_id}`.
    pub fn parse(raw: &str) -> Result<Self> {
        match raw.strip_prefix(NETWORK_PREFIX).map(UserId::parse) {
            Some(Ok(_)) => Ok(NetworkName(raw.to_owned())),
            _ => Err(Error::invalid(format!("invalid network name {}", quote(raw)))),
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl NodeName {
    /// Parses a node's host name, refusing anything a host name can not hold.
    pub fn parse(raw: &str) -> Result<Self> {
        let first_ok = raw.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        let rest_ok = raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
        if raw.len() > NODE_NAME_MAX || !first_ok || !rest_ok {
            return Err(Error::invalid(format!(
                "invalid node {}: a node is named by its host name (letters, digits, '.' and '-')",
                quote(raw)
            )));
        }
        Ok(NodeName(raw.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Quotes a refused value for an error message, escaping control characters so the message stays one line.
pub(crate) fn quote(raw: &str) -> String {
    const SHOWN: usize = 80;
    let shown: String = raw.chars().take(SHOWN).collect();
    let suffix = if raw.chars().count() > SHOWN { "..." } else { "" };
    format!("{:?}{suffix}", shown)
}

macro_rules! string_newtype_impls {
    ($($ty:ident),*) => {$(
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = Error;
            fn try_from(raw: String) -> Result<Self> {
                Self::parse(&raw)
            }
        }

        impl From<$ty> for String {
            fn from(value: $ty) -> String {
                value.0
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    )*};
}

string_newtype_impls!(UserId, TypeName, ContainerName, VolumeName, NetworkName, NodeName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_that_are_accepted() {
        for ok in ["usr_123", "a", "A-b_c", "0abc", &"x".repeat(63)] {
            assert!(UserId::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn hostile_user_ids_are_refused_with_the_rule() {
        for bad in [
            "",
            "../x",
            "a;b",
            "a b",
            "{a}",
            "a\nb",
            "_a",
            "-a",
            "a/b",
            "a.b",
            "ä",
            &"x".repeat(64),
        ] {
            let err = UserId::parse(bad).expect_err(bad);
            assert_eq!(err.kind(), crate::ErrorKind::InvalidInput);
            assert!(err.message().contains("letters, digits"), "{}", err.message());
            assert!(!err.message().contains('\n'));
        }
    }

    #[test]
    fn type_names_are_lowercase_without_dashes() {
        assert!(TypeName::parse("cli_v4").is_ok());
        for bad in ["", "Cli", "a-b", "1a", "a.b", "a b", &"a".repeat(33)] {
            assert!(TypeName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn derived_names() {
        let user = UserId::parse("usr_123").unwrap();
        let kind = TypeName::parse("cli_v4").unwrap();
        assert_eq!(ContainerName::of(&user, &kind).as_str(), "usr_123_cli_v4");
        assert_eq!(VolumeName::of(&user, &kind).as_str(), "usr_123_cli_v4_data");
        assert_eq!(NetworkName::of(&user).as_str(), "cm-user-usr_123");
        assert!(ContainerName::parse("usr_123_cli_v4").is_ok());
        assert!(VolumeName::parse("usr_123_cli_v4_data").is_ok());
        assert!(VolumeName::parse("container_usr_123_cli_v4_1a2b3c4d").is_ok());
        for bad in [
            "container_usr_123_cli_v4_1A2B3C4D",
            "container_usr_123_cli_v4_1a2b3c4",
            "container_../x_1a2b3c4d",
            "usr_123_cli_v4",
        ] {
            assert!(VolumeName::parse(bad).is_err(), "{bad}");
        }
        assert!(NetworkName::parse("cm-user-usr_123").is_ok());
        assert!(ContainerName::parse("nounderscore").is_err());
        assert!(NetworkName::parse("bridge").is_err());
    }

    #[test]
    fn serde_goes_through_parse() {
        let parsed: Result<UserId, _> = serde_json::from_str("\"a;b\"");
        assert!(parsed.is_err());
        let ok: UserId = serde_json::from_str("\"alice\"").unwrap();
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"alice\"");
    }
}
