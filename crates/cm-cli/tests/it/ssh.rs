//! SSH access end to end: OpenSSH's real client against the real image, keys managed with `cm`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use cm_testkit::{docker_ok, require, wait_until};

use crate::helpers::{World, stderr};

/// A key pair made by `ssh-keygen` and the options to use it against one container.
struct Client {
    dir: tempfile::TempDir,
    port: u16,
}

impl Client {
    /// A new key pair in a temp dir, for the container's SSH `port`.
    fn new(port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let client = Client { dir, port };
        client.keygen("id");
        client
    }

    fn keygen(&self, name: &str) -> String {
        let path = self.dir.path().join(name);
        let out = Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                &format!("{name}@test"),
                "-f",
            ])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "ssh-keygen: {}", stderr(&out));
        self.public(name)
    }

    fn public(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.pub")))
            .unwrap()
            .trim()
            .to_owned()
    }

    fn key_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The common options: this key only, a private known_hosts, no prompts.
    fn options(&self, key: &str) -> Vec<String> {
        let known_hosts = self.dir.path().join("known_hosts");
        [
            "-i",
            &self.key_path(key).display().to_string(),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=accept-new",
            "-o",
            &format!("UserKnownHostsFile={}", known_hosts.display()),
            "-o",
            "ConnectTimeout=10",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    }

    /// `ssh cli@127.0.0.1 command` with the named key.
    fn run_as(&self, key: &str, command: &str) -> Output {
        Command::new("ssh")
            .args(self.options(key))
            .args(["-p", &self.port.to_string(), "cli@127.0.0.1", command])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn run(&self, command: &str) -> Output {
        self.run_as("id", command)
    }

    /// An interactive login with a remote terminal, kept open until the child is killed.
    fn interactive(&self) -> Child {
        Command::new("ssh")
            .args(self.options("id"))
            .args(["-tt", "-p", &self.port.to_string(), "cli@127.0.0.1"])
            .env("TERM", "xterm")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    /// Waits until sshd accepts this key.
    fn wait_for_login(&self) -> bool {
        wait_until(Duration::from_secs(30), || self.run("true").status.success())
    }
}

/// OpenSSH's client tools are there; under CI their absence fails the test.
fn have_ssh() -> bool {
    let missing: Vec<&str> = ["ssh", "ssh-keygen", "ssh-keyscan", "scp"]
        .into_iter()
        .filter(|tool| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        !cm_testkit::under_ci(),
        "{missing:?} are required under CI: install openssh-client"
    );
    eprintln!("\n*** SKIPPING: {missing:?} not installed (openssh-client); under CI this fails ***\n");
    false
}

/// Creates an SSH-enabled container and returns its name and SSH port.
fn ssh_container(world: &World, user_name: &str) -> (String, u16) {
    let user = world.env.user(user_name);
    let spec = world.create(&user, "cli_v4");
    let port = u16::try_from(spec["ssh_port"].as_u64().unwrap()).unwrap();
    (format!("{user}_cli_v4"), port)
}

fn authorized_keys(name: &str) -> String {
    docker_ok(&["exec", name, "cat", "/home/cli/.ssh/authorized_keys"])
}

fn tmux(name: &str, args: &[&str]) -> String {
    let mut all = vec!["exec", "-u", "cli", name, "tmux"];
    all.extend_from_slice(args);
    let out = cm_testkit::docker(&all);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn host_key_fingerprint(port: u16, dir: &Path) -> String {
    let scan = Command::new("ssh-keyscan")
        .args(["-t", "ed25519", "-p", &port.to_string(), "127.0.0.1"])
        .output()
        .unwrap();
    let file = dir.join("scanned");
    std::fs::write(&file, &scan.stdout).unwrap();
    let out = Command::new("ssh-keygen").arg("-lf").arg(&file).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace().nth(1).unwrap_or_default().to_owned()
}

#[test]
fn a_key_added_with_cm_logs_in_runs_commands_copies_files_and_is_refused_once_removed() {
    let Some(world) = World::new() else { return };
    if !have_ssh() {
        return;
    }
    let (name, port) = ssh_container(&world, "login");
    let client = Client::new(port);
    let added = world.cm_json(&["add-ssh-key", &name, &client.public("id")]);
    assert_eq!(added["added"], true);
    assert_eq!(added["applied"], true);
    let again = world.cm_json(&["add-ssh-key", &name, &client.public("id")]);
    assert_eq!(again["added"], false, "adding the same key twice is idempotent");
    assert!(client.wait_for_login(), "the key never logged in");

    let out = client.run("echo hi; whoami; echo $USER_ID");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("hi\ncli\n{}\n", world.env.user("login"))
    );

    // The fingerprint cm shows equals ssh-keygen's.
    let keys = world.cm_json(&["ssh-keys", &name]);
    let fingerprint = keys[0]["key"]["fingerprint"].as_str().unwrap().to_owned();
    let keygen = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(client.key_path("id.pub"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&keygen.stdout).contains(&fingerprint));

    // authorized_keys: owned by cli, modes 700/600.
    let modes = docker_ok(&[
        "exec",
        &name,
        "stat",
        "-c",
        "%a %U",
        "/home/cli/.ssh",
        "/home/cli/.ssh/authorized_keys",
    ]);
    assert_eq!(modes, "700 cli\n600 cli");

    // scp, in SFTP mode (OpenSSH 9's default) and in the legacy protocol.
    let file = client.dir.path().join("payload.txt");
    std::fs::write(&file, "copied over ssh\n").unwrap();
    for legacy in [false, true] {
        let mut scp = Command::new("scp");
        if legacy {
            scp.arg("-O");
        }
        let out = scp
            .args(client.options("id"))
            .args(["-P", &port.to_string()])
            .arg(&file)
            .arg(format!("cli@127.0.0.1:/data/payload-{legacy}.txt"))
            .output()
            .unwrap();
        assert!(out.status.success(), "scp (legacy {legacy}): {}", stderr(&out));
        assert_eq!(
            world.cm_ok(&["exec", &name, &format!("cat /data/payload-{legacy}.txt")]),
            "copied over ssh\n"
        );
    }

    let removed = world.cm(&["remove-ssh-key", &name, &fingerprint]);
    assert!(removed.status.success(), "{}", stderr(&removed));
    let refused = client.run("true");
    assert!(!refused.status.success(), "a removed key must be refused");
    assert!(
        stderr(&refused).contains("Permission denied"),
        "{}",
        stderr(&refused)
    );
}

#[test]
fn hostile_keys_never_land_in_authorized_keys_and_a_smuggled_key_never_logs_in() {
    let Some(world) = World::new() else { return };
    if !have_ssh() {
        return;
    }
    let (name, port) = ssh_container(&world, "hostile");
    let client = Client::new(port);
    let good = client.public("id");
    let smuggled = client.keygen("smuggled");
    let rsa_path = client.dir.path().join("rsa");
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "rsa", "-b", "2048", "-N", "", "-f"])
        .arg(&rsa_path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let rsa = std::fs::read_to_string(rsa_path.with_extension("pub")).unwrap();
    let body = good.split_whitespace().nth(1).unwrap();

    let before = authorized_keys(&name);
    let hostile = [
        format!("{good}\n{smuggled}"),
        format!("command=\"/bin/sh\" {good}"),
        format!("no-pty,from=\"*\" {good}"),
        format!("ssh-rsa {body} mismatch"),
        "ssh-ed25519 !!!not-base64!!!".to_owned(),
        rsa.trim().to_owned(),
        String::new(),
        format!("ssh-ed25519 {}", "A".repeat(20_000)),
        format!("{good} evil\ncomment"),
    ];
    for key in &hostile {
        let out = world.cm(&["add-ssh-key", &name, key]);
        assert_eq!(out.status.code(), Some(1), "accepted {key:?}");
        assert!(stderr(&out).contains("invalid ssh key"), "{}", stderr(&out));
    }
    assert_eq!(authorized_keys(&name), before, "authorized_keys unchanged");
    assert!(!authorized_keys(&name).contains("ssh-"), "no key at all");

    // Authorize the good key only: the smuggled one never logs in.
    world.cm_ok(&["add-ssh-key", &name, &good]);
    assert!(client.wait_for_login());
    let out = client.run_as("smuggled", "true");
    assert!(!out.status.success(), "the smuggled key logged in");

    // Keys on types without SSH are refused.
    let web = world.env.user("web");
    world.create(&web, "preview_server");
    let out = world.cm(&["add-ssh-key", &format!("{web}_preview_server"), &good]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("has no SSH access"), "{}", stderr(&out));
}

#[test]
fn the_host_key_survives_restart_and_recreate_and_keys_are_reapplied() {
    let Some(world) = World::new() else { return };
    if !have_ssh() {
        return;
    }
    let (name, port) = ssh_container(&world, "hostkey");
    let client = Client::new(port);
    let public = client.public("id");
    world.cm_ok(&["add-ssh-key", &name, &public]);
    assert!(client.wait_for_login());
    let first = host_key_fingerprint(port, client.dir.path());
    assert!(first.starts_with("SHA256:"), "{first}");

    world.cm_ok(&["restart", &name]);
    assert!(client.wait_for_login(), "keys re-applied after restart");
    assert_eq!(host_key_fingerprint(port, client.dir.path()), first);

    // A key added while the container is stopped is stored, then applied at start.
    world.cm_ok(&["stop", &name]);
    let second = client.keygen("second");
    let added = world.cm_json(&["add-ssh-key", &name, &second]);
    assert_eq!(added["applied"], false);
    world.cm_ok(&["start", &name]);
    assert!(wait_until(Duration::from_secs(30), || client
        .run_as("second", "true")
        .status
        .success()));

    // Re-create on the same volume: the same host key, so users' known_hosts stay valid.
    world.cm_ok(&["delete", &name, "--force"]);
    let user = world.env.user("hostkey");
    let spec = world.cm_json(&["create", &user, "cli_v4", "--ssh-key", &public]);
    let new_port = u16::try_from(spec["ssh_port"].as_u64().unwrap()).unwrap();
    let client = Client {
        dir: client.dir,
        port: new_port,
    };
    assert!(client.wait_for_login());
    assert_eq!(host_key_fingerprint(new_port, client.dir.path()), first);
}

#[test]
fn interactive_logins_share_one_tmux_session_and_the_cli_comes_back_after_a_kill() {
    let Some(world) = World::new() else { return };
    if !have_ssh() {
        return;
    }
    let (name, port) = ssh_container(&world, "tmux");
    let client = Client::new(port);
    world.cm_ok(&["add-ssh-key", &name, &client.public("id")]);
    assert!(client.wait_for_login());

    let mut first = client.interactive();
    let mut second = client.interactive();
    let attached = wait_until(Duration::from_secs(30), || {
        tmux(&name, &["list-clients", "-t", "cli", "-F", "#{client_tty}"])
            .lines()
            .count()
            == 2
    });
    let sessions = tmux(&name, &["list-sessions", "-F", "#{session_name}"]);
    first.kill().unwrap();
    second.kill().unwrap();
    first.wait().unwrap();
    second.wait().unwrap();
    assert!(attached, "two interactive logins did not both attach");
    assert_eq!(sessions, "cli", "exactly one session, named cli");

    // Kill the CLI (the child of the run loop in the pane): the loop starts it again.
    let pane_pid = tmux(&name, &["list-panes", "-t", "cli", "-F", "#{pane_pid}"]);
    let children = |pid: &str| docker_ok(&["exec", &name, "pgrep", "-P", pid]);
    let cli_pid = children(&pane_pid);
    assert!(!cli_pid.is_empty(), "the run loop has a CLI child");
    // In cli_v4 that CLI is the ToolBox's, as in the original, and the ToolBox answers over SSH.
    let args = docker_ok(&["exec", &name, "ps", "-o", "args=", "-p", &cli_pid]);
    assert!(args.contains("tb -m cli"), "the session runs {args:?}");
    let version = client.run("tb -v");
    let said = String::from_utf8_lossy(&version.stdout);
    assert!(
        said.contains("Version"),
        "tb -v said {said:?} {:?}",
        version.stderr
    );
    // Its HTTP port reports the session instead of echoing.
    let http_port = u16::try_from(world.cm_json(&["get", &name])["port"].as_u64().unwrap()).unwrap();
    let (status, body) = crate::helpers::http_get(http_port, "/?format=json").unwrap();
    assert_eq!(status, 200, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["session"]["running"], true, "{report}");
    assert_eq!(report["toolbox_version"], "0.1.28", "{report}");
    assert_eq!(report["cli"], "tb -m cli", "{report}");
    docker_ok(&["exec", &name, "kill", "-KILL", &cli_pid]);
    let back = wait_until(Duration::from_secs(30), || {
        let now = cm_testkit::docker(&["exec", &name, "pgrep", "-P", &pane_pid]);
        let now = String::from_utf8_lossy(&now.stdout).trim().to_owned();
        !now.is_empty() && now != cli_pid
    });
    assert!(back, "the CLI did not come back after a kill");

    // The whole tmux server dies: the watchdog recreates the session.
    cm_testkit::docker(&["exec", "-u", "cli", &name, "tmux", "kill-server"]);
    let recreated = wait_until(Duration::from_secs(30), || {
        tmux(&name, &["list-sessions", "-F", "#{session_name}"]) == "cli"
    });
    assert!(recreated, "the watchdog did not recreate the session");
}

#[test]
fn docksh_setup_then_connect_attaches_to_the_session() {
    let Some(world) = World::new() else { return };
    if !have_ssh()
        || !require(
            "script",
            &["--version"],
            "util-linux script, to give docksh a terminal",
        )
    {
        return;
    }
    let (name, port) = ssh_container(&world, "docksh");
    let home = tempfile::tempdir().unwrap();
    let docksh = env!("CARGO_BIN_EXE_docksh");
    let setup = Command::new(docksh)
        .arg("setup")
        .env("DOCKSH_HOME", home.path())
        .output()
        .unwrap();
    assert!(setup.status.success(), "{}", stderr(&setup));
    let public = std::fs::read_to_string(home.path().join("docksh_id_ed25519.pub")).unwrap();
    assert!(String::from_utf8_lossy(&setup.stdout).contains(public.trim()));
    world.cm_ok(&["add-ssh-key", &name, public.trim()]);

    // A non-interactive command through docksh proves the key and the known_hosts handling.
    let ran = wait_until(Duration::from_secs(30), || {
        Command::new(docksh)
            .args(["connect", "127.0.0.1", &port.to_string(), "--", "true"])
            .env("DOCKSH_HOME", home.path())
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|o| o.status.success())
    });
    assert!(ran, "docksh connect never ran a command");

    // An interactive connect (a terminal from `script`) attaches to the session "cli".
    let mut session = Command::new("script")
        .args([
            "-qfec",
            &format!("{docksh} connect 127.0.0.1 {port}"),
            "/dev/null",
        ])
        .env("DOCKSH_HOME", home.path())
        .env("TERM", "xterm")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let attached = wait_until(Duration::from_secs(30), || {
        tmux(&name, &["list-clients", "-t", "cli", "-F", "#{client_tty}"])
            .lines()
            .count()
            == 1
    });
    session.kill().unwrap();
    session.wait().unwrap();
    assert!(attached, "docksh connect did not attach to the tmux session");
}
