//! Validation of public key lines that users send to admins.
//!
//! The checks run from the outside in, so the message names the first problem an admin can act on:
//! size, file formats that are not a key line, line breaks and control characters, `authorized_keys`
//! options, the algorithm, the base64 body and its embedded algorithm, and last the comment. The
//! body itself is decoded by `ssh-key`; this module only decides what to refuse and how to say it.

use cm_core::{COMMENT_MAX, ED25519, Error, KeyParser, Result, SshPublicKey, comment_is_safe};
use ssh_key::encoding::Decode;
use ssh_key::encoding::base64::{Base64, Encoding};
use ssh_key::{Algorithm, HashAlg, PublicKey};

/// The longest raw input accepted, in bytes, before any trimming.
///
/// An ed25519 line with the longest allowed comment is under 200 bytes; the bound is generous so
/// that a pasted RSA key is refused for its algorithm, not for its size.
pub const RAW_KEY_MAX: usize = 8 * 1024;

/// Parses one OpenSSH public key line and accepts only a plain `ssh-ed25519` key.
///
/// The result is the canonical re-encoding (`ssh-ed25519 <base64> [comment]`, single spaces), its
/// SHA256 fingerprint as `ssh-keygen -lf` prints it, and the comment. Surrounding whitespace (such as
/// the trailing newline of a `.pub` file) and a leading byte order mark are ignored; everything
/// else that is not part of one plain key is refused with an [`cm_core::ErrorKind::InvalidInput`]
/// error whose message says why.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ed25519KeyParser;

impl KeyParser for Ed25519KeyParser {
    fn parse(&self, raw: &str) -> Result<SshPublicKey> {
        parse_line(raw)
    }
}

/// Every key type OpenSSH knows, plus the signature names people sometimes paste as one.
const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ssh-dss",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "ssh-xmss@openssh.com",
    "rsa-sha2-256",
    "rsa-sha2-512",
];

/// The option names of `sshd(8)`'s AUTHORIZED_KEYS FILE FORMAT that take no value.
const FLAG_OPTIONS: &[&str] = &[
    "agent-forwarding",
    "cert-authority",
    "no-agent-forwarding",
    "no-port-forwarding",
    "no-pty",
    "no-user-rc",
    "no-x11-forwarding",
    "port-forwarding",
    "pty",
    "no-touch-required",
    "verify-required",
    "restrict",
    "user-rc",
    "x11-forwarding",
];

/// What the comment may contain, in words (the rule itself is [`comment_is_safe`]).
const COMMENT_RULE: &str = "letters, digits and . _ - @ + :";

fn parse_line(raw: &str) -> Result<SshPublicKey> {
    if raw.len() > RAW_KEY_MAX {
        return Err(refuse(format!(
            "the key is {} bytes long, at most {RAW_KEY_MAX} are allowed",
            raw.len()
        )));
    }
    let text = raw.trim().trim_start_matches('\u{feff}').trim();
    if text.is_empty() {
        return Err(refuse("the key is empty"));
    }
    check_not_a_key_file(text)?;
    check_characters(text)?;

    let (algorithm, rest) = split_word(text);
    if !is_key_type(algorithm) {
        return Err(not_a_key_type(algorithm, rest));
    }
    check_algorithm(algorithm)?;
    let (body, comment) = split_word(rest);
    if body.is_empty() {
        return Err(refuse(format!("the base64 key data after {ED25519} is missing")));
    }
    let mut key = decode(algorithm, body)?;
    check_comment(comment)?;

    key.set_comment(comment);
    let line = key
        .to_openssh()
        .map_err(|e| Error::internal("encoding the ssh key failed").with_source(e))?;
    let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
    SshPublicKey::from_parsed(&line, &fingerprint, comment)
}

/// Refuses whole files of other formats, which would otherwise get a confusing message.
fn check_not_a_key_file(text: &str) -> Result<()> {
    if text.contains("PRIVATE KEY") || text.starts_with("PuTTY-User-Key-File") {
        return Err(refuse(
            "this is a private key: keep it secret and send only the public key (the .pub file)",
        ));
    }
    if text.starts_with("---- BEGIN SSH2 PUBLIC KEY") {
        return Err(refuse(
            "this is an rfc 4716 (ssh2) key file: convert it with `ssh-keygen -i -f <file>` and send the one line it prints",
        ));
    }
    Ok(())
}

/// One line, no control characters (a line break is how a second key is smuggled in).
fn check_characters(text: &str) -> Result<()> {
    if text.contains(['\n', '\r', '\u{2028}', '\u{2029}']) {
        return Err(refuse(
            "the text has more than one line: send exactly one key, on one line",
        ));
    }
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return Err(refuse(format!(
            "the key contains a control character ({})",
            describe(c)
        )));
    }
    Ok(())
}

/// Explains a first word that is not a key type: options, a comment line, or an unknown type.
fn not_a_key_type(first: &str, rest: &str) -> Error {
    if first.starts_with('#') {
        return refuse("the line is a comment, not a key");
    }
    let name = first.split(['=', ',']).next().unwrap_or_default();
    let looks_like_options = first.contains(['=', ',', '"'])
        || first.starts_with('@')
        || FLAG_OPTIONS.iter().any(|o| o.eq_ignore_ascii_case(name))
        || rest.split(' ').any(is_key_type);
    if looks_like_options {
        refuse(format!(
            "authorized_keys options are not allowed (found {}): the line must start with {ED25519}",
            shown(name)
        ))
    } else {
        refuse(format!(
            "unknown key type {}: only {ED25519} keys are accepted",
            shown(first)
        ))
    }
}

fn check_algorithm(algorithm: &str) -> Result<()> {
    if algorithm == ED25519 {
        Ok(())
    } else if algorithm.ends_with("-cert-v01@openssh.com") {
        Err(refuse(format!(
            "ssh certificates ({}) are not accepted, only plain {ED25519} keys",
            shown(algorithm)
        )))
    } else if algorithm.starts_with("sk-") {
        Err(refuse(format!(
            "security key ({}) keys are not accepted, only plain {ED25519} keys",
            shown(algorithm)
        )))
    } else {
        Err(refuse(format!(
            "{} keys are not accepted, only {ED25519} keys",
            shown(algorithm)
        )))
    }
}

/// Decodes the body with `ssh-key`, after naming the two common failures precisely.
fn decode(algorithm: &str, body: &str) -> Result<PublicKey> {
    let blob = Base64::decode_vec(body).map_err(|_| refuse("the key data is not valid base64"))?;
    match String::decode(&mut blob.as_slice()) {
        Ok(inner) if inner == algorithm => {}
        Ok(inner) => {
            return Err(refuse(format!(
                "the line says {algorithm} but the key data is {}",
                shown(&inner)
            )));
        }
        Err(_) => {
            return Err(refuse(
                "the key data is malformed: it does not start with an algorithm name",
            ));
        }
    }
    let key = PublicKey::from_openssh(&format!("{algorithm} {body}"))
        .map_err(|e| refuse(format!("the {ED25519} key data is malformed ({e})")))?;
    if key.algorithm() != Algorithm::Ed25519 {
        return Err(refuse(format!(
            "the line says {algorithm} but the key data is {}",
            key.algorithm()
        )));
    }
    Ok(key)
}

fn check_comment(comment: &str) -> Result<()> {
    let words: Vec<&str> = comment.split(' ').collect();
    if words
        .windows(2)
        .any(|pair| is_key_type(pair[0]) && pair[1].starts_with("AAAA"))
    {
        return Err(refuse("the line holds more than one key: send exactly one key"));
    }
    if comment.len() > COMMENT_MAX {
        return Err(refuse(format!(
            "the comment is {} bytes long, at most {COMMENT_MAX} are allowed",
            comment.len()
        )));
    }
    if !comment_is_safe(comment) {
        let bad = comment
            .chars()
            .find(|&c| !comment_is_safe(c.encode_utf8(&mut [0; 4])))
            .map(describe)
            .unwrap_or_default();
        return Err(refuse(format!(
            "the comment may only contain {COMMENT_RULE} (found {bad})"
        )));
    }
    Ok(())
}

fn is_key_type(word: &str) -> bool {
    KEY_TYPES.contains(&word)
        || word.ends_with("-cert-v01@openssh.com")
        || (["ssh-", "ecdsa-", "sk-"]
            .iter()
            .any(|prefix| word.starts_with(prefix))
            && word
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-@.".contains(&b)))
}

/// Splits off the first space-separated word; the rest has its leading spaces removed.
fn split_word(text: &str) -> (&str, &str) {
    let text = text.trim_start_matches(' ');
    match text.split_once(' ') {
        Some((word, rest)) => (word, rest.trim_start_matches(' ')),
        None => (text, ""),
    }
}

/// Quotes a word from the input for a message, only when it is short and plainly printable.
fn shown(word: &str) -> String {
    let printable = word.bytes().all(|b| b.is_ascii_graphic() && b != b'`');
    if !word.is_empty() && word.len() <= 64 && printable {
        format!("`{word}`")
    } else {
        "something else".to_owned()
    }
}

/// Names one character for a message without echoing anything unprintable.
fn describe(c: char) -> String {
    match c {
        ' ' => "a space".to_owned(),
        '\t' => "a tab, U+0009".to_owned(),
        '`' => "a backtick".to_owned(),
        c if c.is_ascii_graphic() => format!("`{c}`"),
        c => format!("U+{:04X}", u32::from(c)),
    }
}

fn refuse(reason: impl std::fmt::Display) -> Error {
    Error::invalid(format!("invalid ssh key: {reason}"))
}

#[cfg(test)]
mod tests;
