//! The Debian package `containermanager`, end to end: `scripts/package.sh` packages the debug
//! build (the dev profile: no release build in the tests), then the package is installed with
//! `dpkg -i` in a clean Debian container made from `cm-base:bookworm` (the images' own base: no
//! registry, no network, no apt, so every dependency must already be there) and checked there:
//! the files and their modes, the conffiles, the service user, that nothing was started or
//! enabled, the versions, that cm-api runs as the service user and stops on SIGTERM, that a
//! reinstall keeps the configuration and the database, that `images/build.sh` finds its recipe
//! beside itself, what a purge removes, and the user's creation without `adduser`. The unit file
//! goes through `systemd-analyze verify` on the host when it has one.
//!
//! The container carries this run's labels and is removed when the test ends, failed or not.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use cm_testkit::{OWNER_LABEL, TEST_LABEL, TestEnv, docker, docker_ok, require, under_ci, wait_until};

/// The clean Debian the package is installed into (made by images/build.sh, never pulled).
const BASE_IMAGE: &str = "cm-base:bookworm";
/// Where the package puts the images' recipe.
const IMAGES_DIR: &str = "/usr/share/containermanager/images";
/// How long building cm-api (dev profile) may take: minutes on a cold target dir with 2 cores.
const BUILD_LIMIT: Duration = Duration::from_secs(1800);
/// How long `scripts/package.sh --no-build` may take (cargo-deb strips and compresses).
const PACKAGE_LIMIT: Duration = Duration::from_secs(600);

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `program args...` in the workspace with a time limit (then killed: exit code 124/137).
fn run_limited(limit: Duration, program: &str, args: &[&str]) -> Output {
    Command::new("timeout")
        .args(["--kill-after=10", &limit.as_secs().to_string(), program])
        .args(args)
        .current_dir(workspace_root())
        .output()
        .unwrap()
}

fn assert_success(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({:?}):\nstdout: {}\nstderr: {}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// Whether the tools this test needs are there: under CI a missing one fails, locally the test
/// is skipped loudly.
fn tools_present() -> bool {
    if !require(
        "docker",
        &["info", "--format", "{{.ServerVersion}}"],
        "a running Docker engine",
    ) {
        return false;
    }
    if !require("cargo", &["deb", "--version"], "cargo-deb builds the package") {
        return false;
    }
    let base = docker(&["image", "inspect", "--format", "{{.Id}}", BASE_IMAGE]);
    if !base.status.success() {
        assert!(
            !under_ci(),
            "image {BASE_IMAGE} is missing: the test command runs images/build.sh"
        );
        eprintln!("\n*** SKIPPING: image {BASE_IMAGE} is missing (run images/build.sh) ***\n");
        return false;
    }
    true
}

/// A container of this test, removed (with its anonymous volumes) when dropped.
struct Container {
    name: String,
}

impl Container {
    /// A clean `cm-base:bookworm` without network that idles until removed.
    fn start(env: &TestEnv) -> Container {
        let name = format!("cm-test-package-{}", env.run);
        let container = Container { name };
        docker_ok(&[
            "run",
            "-d",
            "--name",
            &container.name,
            "--label",
            &format!("{TEST_LABEL}={}", env.run),
            "--label",
            &format!("{OWNER_LABEL}={}", cm_testkit::owner_id()),
            "--network",
            "none",
            BASE_IMAGE,
            "sleep",
            "infinity",
        ]);
        container
    }

    /// Runs a shell script in the container as root.
    fn sh(&self, script: &str) -> Output {
        docker(&["exec", &self.name, "sh", "-c", script])
    }

    /// Runs a shell script that must succeed; returns its stdout.
    fn sh_ok(&self, script: &str) -> String {
        let out = self.sh(script);
        assert_success(&format!("in the container: {script}"), &out);
        text(&out.stdout)
    }

    /// Whether `test args` holds in the container.
    fn test(&self, args: &str) -> bool {
        self.sh(&format!("test {args}")).status.success()
    }

    /// `owner group mode` of a path (`stat`).
    fn owner_mode(&self, path: &str) -> String {
        self.sh_ok(&format!("stat -c '%U %G %a' {path}"))
            .trim()
            .to_owned()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        docker(&["rm", "-f", "-v", &self.name]);
    }
}

/// Builds the package from the debug build and returns its path.
fn build_package() -> PathBuf {
    let root = workspace_root();
    // cm and docksh are this test's own binaries; cm-api belongs to another crate, so it is built
    // here (dev profile, incremental). scripts/package.sh then only packages (--no-build), so it
    // never replaces the binaries the other test targets of this crate run.
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    let build = run_limited(
        BUILD_LIMIT,
        cargo,
        &["build", "--profile", "dev", "-p", "cm-api", "--bin", "cm-api"],
    );
    assert_success("cargo build -p cm-api", &build);
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_cm")).parent().unwrap().to_owned();
    assert!(
        bin_dir.join("cm-api").is_file() && bin_dir.join("docksh").is_file(),
        "cm-api and docksh must be beside {}",
        env!("CARGO_BIN_EXE_cm")
    );

    let script = root.join("scripts/package.sh");
    let out = run_limited(
        PACKAGE_LIMIT,
        script.to_str().unwrap(),
        &["--profile", "dev", "--no-build"],
    );
    assert_success("scripts/package.sh --profile dev --no-build", &out);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("{}/cm ...", bin_dir.display())),
        "package.sh must use the binaries of this build ({}): {stderr}",
        bin_dir.display()
    );
    let stdout = text(&out.stdout);
    let deb = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
    assert!(
        deb.is_file() && deb.extension().is_some_and(|e| e == "deb"),
        "package.sh must print the .deb's path last: {stdout}"
    );
    let name = deb.file_name().unwrap().to_string_lossy().into_owned();
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        name.starts_with(&format!("containermanager_{version}-")),
        "unexpected package file name {name}"
    );
    deb
}

/// The path and exec bit of every file below `dir` (Python caches left out), sorted.
fn file_tree(dir: &Path) -> Vec<(String, bool)> {
    use std::os::unix::fs::PermissionsExt;
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "__pycache__" || name.ends_with(".pyc") {
                continue;
            }
            let meta = std::fs::metadata(&path).unwrap();
            if meta.is_dir() {
                pending.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().display().to_string();
                files.push((rel, meta.permissions().mode() & 0o111 != 0));
            }
        }
    }
    files.sort();
    files
}

/// `base_recipe` and `toolbox_recipe` of images/build.sh (the hashes that decide whether an image
/// is current) for the build.sh at `build_sh`. A copy of the script whose call of `main` is taken
/// out is sourced beside it, so only the recipe functions run. `images_dir` overrides where the
/// script looks for its files; `None` keeps its own rule (the directory it lives in).
fn recipe_probe(build_sh: &str, images_dir: Option<&str>) -> String {
    let locate = match images_dir {
        Some(dir) => format!(" -e 's|^IMAGES_DIR=.*|IMAGES_DIR=\"{dir}\"|'"),
        None => String::new(),
    };
    format!(
        "set -e; probe=\"$(dirname {build_sh})/.recipe-probe.sh\"; \
         sed -e 's/^main$/:/'{locate} {build_sh} > \"$probe\"; \
         cd / && bash -c 'p=\"$1\"; set --; . \"$p\"; base_recipe; toolbox_recipe base-id' recipe \"$probe\"; \
         rm -f \"$probe\""
    )
}

#[test]
fn the_package_installs_into_a_clean_debian_and_carries_everything() {
    if !tools_present() {
        return;
    }
    let root = workspace_root();
    let deb = build_package();
    let version = env!("CARGO_PKG_VERSION");

    // The world: the run's labels and the cleanup of everything carrying them. The container is
    // declared after it, so it is removed first.
    let env = TestEnv::new();
    let container = Container::start(&env);
    docker_ok(&[
        "cp",
        deb.to_str().unwrap(),
        &format!("{}:/tmp/containermanager.deb", container.name),
    ]);

    // First install, with adduser and a group docker (as the engine's package makes it). The
    // base image tells dpkg to leave out man pages and documentation; a host keeps them.
    container.sh_ok("rm -f /etc/dpkg/dpkg.cfg.d/01-cm-nodoc && groupadd --system docker");
    let install = container.sh("dpkg -i /tmp/containermanager.deb");
    assert_success("dpkg -i", &install);
    let said = text(&install.stdout) + &text(&install.stderr);
    assert!(
        said.contains("neither enabled nor started")
            && said.contains("systemctl enable --now containermanager"),
        "the first install must say that nothing was started and how to start it: {said}"
    );
    let status = container.sh_ok("dpkg-query -W -f '${Status} ${Version}' containermanager");
    assert!(
        status.starts_with(&format!("install ok installed {version}-")),
        "{status}"
    );
    let depends = container.sh_ok("dpkg-query -W -f '${Depends}' containermanager");
    assert!(
        depends.contains("adduser | passwd") && depends.contains("libc6"),
        "{depends}"
    );

    // The files, where they belong.
    for program in ["/usr/bin/cm", "/usr/bin/cm-api", "/usr/bin/docksh"] {
        assert!(container.test(&format!("-x {program}")), "{program} is missing");
    }
    for file in [
        "/usr/lib/systemd/system/containermanager.service",
        "/etc/containermanager/config.toml",
        "/etc/containermanager/environment",
        "/usr/share/man/man1/cm.1.gz",
        "/usr/share/man/man1/cm-create.1.gz",
        "/usr/share/man/man1/cm-nginx-setup.1.gz",
        "/usr/share/bash-completion/completions/cm",
        "/usr/share/zsh/vendor-completions/_cm",
        "/usr/share/fish/vendor_completions.d/cm.fish",
        "/usr/share/doc/containermanager/copyright",
        "/usr/share/doc/containermanager/packaging.md",
    ] {
        assert!(
            container.test(&format!("-s {file}")),
            "{file} is missing or empty"
        );
    }
    assert_eq!(
        container
            .sh_ok("gzip -dc /usr/share/man/man1/cm-create.1.gz | grep -c '^.TH cm-create 1'")
            .trim(),
        "1",
        "cm-create.1 must be a man page"
    );
    let bash = container.sh_ok("cat /usr/share/bash-completion/completions/cm");
    assert!(
        bash.contains("complete -F") && bash.contains("create"),
        "the bash completion lacks `complete -F` or the command create"
    );
    let zsh = container.sh_ok("head -n 1 /usr/share/zsh/vendor-completions/_cm");
    assert!(zsh.starts_with("#compdef cm"), "zsh completion: {zsh}");
    let fish = container.sh_ok("cat /usr/share/fish/vendor_completions.d/cm.fish");
    assert!(fish.contains("complete -c cm"), "fish completion");

    // The conffiles, and who may read the secrets.
    let conffiles = container.sh_ok("cat /var/lib/dpkg/info/containermanager.conffiles");
    for conffile in [
        "/etc/containermanager/config.toml",
        "/etc/containermanager/environment",
    ] {
        assert!(
            conffiles.lines().any(|l| l.trim() == conffile),
            "{conffile} must be a conffile: {conffiles}"
        );
    }
    assert_eq!(
        container.owner_mode("/etc/containermanager/environment"),
        "root containermanager 640"
    );
    assert_eq!(
        container.owner_mode("/etc/containermanager/config.toml"),
        "root root 644"
    );
    assert_eq!(
        container.owner_mode("/var/lib/containermanager"),
        "containermanager containermanager 750"
    );

    // The service user: a system user without a login, in the group docker.
    let passwd = container.sh_ok("getent passwd containermanager");
    let fields: Vec<&str> = passwd.trim().split(':').collect();
    assert_eq!(fields.len(), 7, "{passwd}");
    assert!(fields[2].parse::<u32>().unwrap() < 1000, "a system uid: {passwd}");
    assert_eq!(fields[5], "/var/lib/containermanager", "{passwd}");
    assert!(fields[6].ends_with("nologin"), "{passwd}");
    let groups = container.sh_ok("id -nG containermanager");
    assert!(
        groups.split_whitespace().any(|g| g == "docker"),
        "containermanager must be in the group docker: {groups}"
    );

    // Nothing started, nothing enabled.
    assert!(
        !container.sh("pgrep -x cm-api").status.success(),
        "cm-api must not run after the install"
    );
    assert!(
        !container.test("-e /etc/systemd/system/multi-user.target.wants/containermanager.service"),
        "the service must not be enabled by the install"
    );

    // The programs run, with the workspace's version.
    for program in ["cm", "cm-api", "docksh"] {
        let said = container.sh_ok(&format!("{program} --version"));
        assert_eq!(said.trim(), format!("{program} {version}"), "{program} --version");
    }
    // The shipped configuration parses, as shipped and with every example key uncommented.
    container.sh_ok("cm types >/dev/null");
    container.sh_ok(
        "sed 's/^#\\([a-z\"[]\\)/\\1/' /etc/containermanager/config.toml > /tmp/all.toml \
         && CM_CONFIG=/tmp/all.toml cm types >/dev/null",
    );

    // cm-api as the service would run it: as containermanager, with the unit's CM_DB. It makes
    // the database and a generated admin key in the state directory, serves (the engine and nginx
    // are absent: it says so and serves anyway), and SIGTERM stops it with exit code 0.
    container.sh_ok(
        "cd / && nohup sh -c 'setpriv --reuid=containermanager --regid=containermanager --init-groups \
         env CM_DB=/var/lib/containermanager/containermanager.db CM_LISTEN=127.0.0.1:18123 \
         cm-api > /tmp/cm-api.log 2>&1; echo $? > /tmp/cm-api.rc' >/dev/null 2>&1 &",
    );
    let listening = wait_until(Duration::from_secs(60), || {
        container
            .sh("bash -c 'exec 3<>/dev/tcp/127.0.0.1/18123' 2>/dev/null")
            .status
            .success()
    });
    assert!(
        listening,
        "cm-api did not listen: {}",
        container.sh_ok("cat /tmp/cm-api.log /tmp/cm-api.rc 2>&1 || true")
    );
    assert_eq!(
        container.owner_mode("/var/lib/containermanager/containermanager.db"),
        "containermanager containermanager 600"
    );
    assert_eq!(
        container.owner_mode("/var/lib/containermanager/admin-key"),
        "containermanager containermanager 600"
    );
    container.sh_ok("pkill -TERM -x cm-api");
    let stopped = wait_until(Duration::from_secs(40), || container.test("-s /tmp/cm-api.rc"));
    let log = container.sh_ok("cat /tmp/cm-api.log");
    assert!(stopped, "cm-api did not stop on SIGTERM: {log}");
    assert_eq!(
        container.sh_ok("cat /tmp/cm-api.rc").trim(),
        "0",
        "cm-api must exit 0 on SIGTERM: {log}"
    );

    // A reinstall (as an upgrade does) keeps the admin's configuration and the database.
    container.sh_ok("echo 'CONTAINER_ADMIN_KEY=0123456789abcdef0123' >> /etc/containermanager/environment");
    let reinstall = container.sh("dpkg -i /tmp/containermanager.deb");
    assert_success("dpkg -i (again)", &reinstall);
    assert!(
        !text(&reinstall.stdout).contains("neither enabled nor started"),
        "an upgrade prints no first-install hint"
    );
    assert!(
        container
            .sh_ok("cat /etc/containermanager/environment")
            .contains("CONTAINER_ADMIN_KEY=0123456789abcdef0123"),
        "the edited environment file must be kept"
    );
    assert_eq!(
        container.owner_mode("/etc/containermanager/environment"),
        "root containermanager 640"
    );
    assert!(container.test("-s /var/lib/containermanager/containermanager.db"));

    // The images' recipe: the same files as images/, and build.sh, run from elsewhere, finds them
    // beside itself (its recipe hashes equal those of the packaged tree, read from the host).
    let copied = env.path().join("images");
    docker_ok(&[
        "cp",
        &format!("{}:{IMAGES_DIR}", container.name),
        copied.to_str().unwrap(),
    ]);
    assert_eq!(file_tree(&copied), file_tree(&root.join("images")));
    for (file, _) in file_tree(&copied) {
        assert!(
            std::fs::read(copied.join(&file)).unwrap()
                == std::fs::read(root.join("images").join(&file)).unwrap(),
            "images/{file} differs in the package"
        );
    }
    let installed = container.sh_ok(&recipe_probe(&format!("{IMAGES_DIR}/build.sh"), None));
    let staged = root.join("target/package/images");
    let reference = run_limited(
        Duration::from_secs(60),
        "sh",
        &[
            "-c",
            &recipe_probe(
                copied.join("build.sh").to_str().unwrap(),
                Some(staged.to_str().unwrap()),
            ),
        ],
    );
    assert_success("the recipe of the staged images", &reference);
    assert_eq!(installed.lines().count(), 2, "{installed}");
    assert_eq!(
        installed,
        text(&reference.stdout),
        "build.sh must find its files beside itself"
    );
    container.sh_ok(&format!(
        "cd / && {IMAGES_DIR}/build.sh --help | grep -q 'works from any cwd'"
    ));

    check_unit(&container, env.path());

    // Purge: the state directory and the configuration go, the user stays.
    container.sh_ok("dpkg --purge containermanager");
    for gone in [
        "/usr/bin/cm",
        "/var/lib/containermanager",
        "/etc/containermanager",
        "/usr/lib/systemd/system/containermanager.service",
    ] {
        assert!(
            !container.test(&format!("-e {gone}")),
            "{gone} must be gone after a purge"
        );
    }
    container.sh_ok("getent passwd containermanager >/dev/null");

    // Without adduser (passwd's useradd instead) and without a group docker.
    container.sh_ok(
        "userdel containermanager; getent group containermanager >/dev/null && groupdel containermanager; \
         groupdel docker; dpkg --force-depends --remove adduser >/dev/null 2>&1; ! command -v adduser",
    );
    let install = container.sh("dpkg -i /tmp/containermanager.deb");
    assert_success("dpkg -i without adduser", &install);
    assert!(
        text(&install.stdout).contains("usermod -aG docker containermanager"),
        "without a group docker the install says how to add it later: {}",
        text(&install.stdout)
    );
    let passwd = container.sh_ok("getent passwd containermanager");
    assert!(
        passwd
            .trim()
            .ends_with(":/var/lib/containermanager:/usr/sbin/nologin"),
        "{passwd}"
    );
    assert_eq!(
        container.owner_mode("/etc/containermanager/environment"),
        "root containermanager 640"
    );
}

/// The unit: `systemd-analyze verify` on the installed unit when the host has systemd-analyze,
/// and in any case the lines the packaging relies on.
fn check_unit(container: &Container, scratch: &Path) {
    let unit = container.sh_ok("cat /usr/lib/systemd/system/containermanager.service");
    for line in [
        "ExecStart=/usr/bin/cm-api",
        "User=containermanager",
        "StateDirectory=containermanager",
        "ConfigurationDirectory=containermanager",
        "Environment=CM_DB=/var/lib/containermanager/containermanager.db",
        "EnvironmentFile=-/etc/containermanager/environment",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "Restart=on-failure",
        "TimeoutStopSec=45",
        "WantedBy=multi-user.target",
    ] {
        assert!(
            unit.lines().any(|l| l.trim() == line),
            "the unit lacks {line}:\n{unit}"
        );
    }

    // (`timeout` exits 127 when the program is missing.)
    let analyze = run_limited(Duration::from_secs(30), "systemd-analyze", &["--version"]);
    if !analyze.status.success() {
        eprintln!("systemd-analyze is not on this host: the unit's key lines were checked, not verified");
        return;
    }
    // A root with the installed unit, an executable at its ExecStart and the host's own units
    // (the targets it refers to).
    let root = scratch.join("unit-root");
    let units = root.join("usr/lib/systemd/system");
    std::fs::create_dir_all(&units).unwrap();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    let copy = run_limited(
        Duration::from_secs(60),
        "cp",
        &["-R", "/usr/lib/systemd/system/.", units.to_str().unwrap()],
    );
    assert_success("copying the host's units", &copy);
    std::fs::write(units.join("containermanager.service"), &unit).unwrap();
    let program = root.join("usr/bin/cm-api");
    std::fs::write(&program, "#!/bin/sh\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let verify = run_limited(
        Duration::from_secs(120),
        "systemd-analyze",
        &[
            "verify",
            "--man=no",
            &format!("--root={}", root.display()),
            "containermanager.service",
        ],
    );
    assert_success("systemd-analyze verify", &verify);
    // verify exits 0 even for lines it ignores; every complaint counts.
    let complaints = text(&verify.stderr) + &text(&verify.stdout);
    assert!(
        complaints.trim().is_empty(),
        "systemd-analyze verify complains about the unit:\n{complaints}"
    );
}
