use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `ssh-keygen` from PATH. Missing, it fails the test under CI (`CI` set) and skips loudly otherwise.
pub fn ssh_keygen() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("ssh-keygen"))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "ssh-keygen is not installed and CI is set: install openssh-client"
        );
        eprintln!("SKIPPED: ssh-keygen is not installed (install openssh-client to run this test)");
    }
    found
}

/// Runs `ssh-keygen` with these arguments and returns its stdout; any failure fails the test.
pub fn run(keygen: &Path, args: &[&str]) -> String {
    let output = Command::new(keygen).args(args).output().expect("ssh-keygen runs");
    assert!(
        output.status.success(),
        "ssh-keygen {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("ssh-keygen prints utf-8")
}

/// Like [`run`], but `None` when `ssh-keygen` refuses (e.g. a key type this OpenSSH build dropped).
pub fn try_run(keygen: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new(keygen).args(args).output().expect("ssh-keygen runs");
    output
        .status
        .success()
        .then(|| String::from_utf8(output.stdout).expect("ssh-keygen prints utf-8"))
}

/// The SHA256 fingerprint `ssh-keygen -lf` prints for a key file (second field of its first line).
pub fn fingerprint(keygen: &Path, file: &Path) -> String {
    let out = run(
        keygen,
        &[
            "-l",
            "-E",
            "sha256",
            "-f",
            file.to_str().expect("a utf-8 temp path"),
        ],
    );
    out.split_whitespace()
        .nth(1)
        .expect("ssh-keygen -l prints a fingerprint")
        .to_owned()
}

/// Writes a file readable by its owner only, as `ssh-keygen` insists for private keys.
pub fn write_private(path: &Path, text: &str) {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .expect("the private key file is created");
    file.write_all(text.as_bytes())
        .expect("the private key is written");
}
