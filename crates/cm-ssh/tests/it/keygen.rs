use cm_core::{ErrorKind, KeyParser, StoredKey, render_authorized_keys};
use cm_ssh::{Ed25519KeyParser, generate_keypair};

use crate::helpers::{fingerprint, run, ssh_keygen, try_run, write_private};

#[test]
fn keys_from_ssh_keygen_are_accepted_with_its_fingerprint() {
    let Some(keygen) = ssh_keygen() else { return };
    let dir = tempfile::tempdir().unwrap();
    for (i, comment) in ["alice@laptop", "", "ci+runner:7", "a"].into_iter().enumerate() {
        let path = dir.path().join(format!("key{i}"));
        let path_str = path.to_str().unwrap();
        run(
            &keygen,
            &["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path_str],
        );
        let pub_path = path.with_extension("pub");
        let pub_text = std::fs::read_to_string(&pub_path).unwrap();

        let key = Ed25519KeyParser.parse(&pub_text).unwrap();
        assert_eq!(
            key.line(),
            pub_text.trim_end(),
            "ssh-keygen's line is already canonical"
        );
        assert_eq!(key.comment(), comment);
        assert_eq!(key.fingerprint(), fingerprint(&keygen, &pub_path));
    }
}

#[test]
fn ssh_keygen_reads_back_our_generated_keys() {
    let Some(keygen) = ssh_keygen() else { return };
    let dir = tempfile::tempdir().unwrap();
    for (i, comment) in ["docksh@host-1", ""].into_iter().enumerate() {
        let generated = generate_keypair(comment).unwrap();
        let path = dir.path().join(format!("id{i}"));
        write_private(&path, generated.private_openssh());

        let public = run(&keygen, &["-y", "-f", path.to_str().unwrap()]);
        assert_eq!(public.trim_end(), generated.public_line());
        assert_eq!(fingerprint(&keygen, &path), generated.public_key().fingerprint());
    }
}

#[test]
fn other_key_types_from_ssh_keygen_are_refused_by_name() {
    let Some(keygen) = ssh_keygen() else { return };
    let dir = tempfile::tempdir().unwrap();
    for (kind, bits, name) in [
        ("rsa", "2048", "ssh-rsa"),
        ("ecdsa", "384", "ecdsa-sha2-nistp384"),
        ("dsa", "1024", "ssh-dss"),
    ] {
        let path = dir.path().join(kind);
        let args = [
            "-q",
            "-t",
            kind,
            "-b",
            bits,
            "-N",
            "",
            "-f",
            path.to_str().unwrap(),
        ];
        if try_run(&keygen, &args).is_none() {
            // OpenSSH 9.8 and later can no longer make DSA keys; RSA and ECDSA must work.
            assert_eq!(kind, "dsa", "ssh-keygen could not make a {kind} key");
            eprintln!("note: this ssh-keygen no longer makes DSA keys; the DSA case is left out");
            continue;
        }
        let pub_text = std::fs::read_to_string(path.with_extension("pub")).unwrap();
        let err = Ed25519KeyParser.parse(&pub_text).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(
            err.to_string()
                .contains(&format!("`{name}` keys are not accepted")),
            "{err}"
        );
    }
}

#[test]
fn ssh_keygen_reads_the_rendered_authorized_keys_file() {
    let Some(keygen) = ssh_keygen() else { return };
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<StoredKey> = ["one@a", "two@b", ""]
        .into_iter()
        .map(|comment| StoredKey {
            key: generate_keypair(comment).unwrap().public_key().clone(),
            added_at: "2026-01-01T00:00:00Z".to_owned(),
        })
        .collect();
    let path = dir.path().join("authorized_keys");
    std::fs::write(&path, render_authorized_keys(&keys)).unwrap();

    let listed = run(&keygen, &["-l", "-E", "sha256", "-f", path.to_str().unwrap()]);
    let fingerprints: Vec<&str> = listed
        .lines()
        .map(|line| line.split_whitespace().nth(1).unwrap())
        .collect();
    let ours: Vec<&str> = keys.iter().map(|k| k.key.fingerprint()).collect();
    assert_eq!(fingerprints, ours);
}
