//! A private, unprivileged nginx for one test: its own prefix in a temporary directory, its own
//! `nginx.conf`, map snippet and box directories, listening on a free port of 127.0.0.1.
//!
//! The configuration is the minimal one `docs/nginx.md` describes: the map snippet at http level
//! and one `server` that includes `box-enabled/*.conf` and answers 404 for everything else. The
//! error log is kept at `info` level, so every reload shows up as the master's
//! `signal 1 (SIGHUP) received from N, reconfiguring` notice (nginx 1.22), which
//! [`TestNginx::reloads`] counts.
//!
//! This crate does not know nginx's route syntax or the manager's types: callers pass the map
//! snippet (`cm_nginx::render_map_snippet()`) and build their own settings from the public fields.
//! Dropping a [`TestNginx`] stops nginx (`-s stop`, then a kill) and removes the prefix.

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::under_ci;

/// The file name of the map snippet inside `conf/` (the name `cm_nginx::MAP_SNIPPET_FILE` uses too).
const MAP_SNIPPET_FILE: &str = "cm-map.conf";
/// How many times a start is tried (a free port can be taken between probing and nginx's bind).
const START_ATTEMPTS: usize = 5;
/// What the master logs once per reload it acts on.
const RELOAD_NOTICE: &str = "signal 1 (SIGHUP) received";

/// A running nginx of one test. Stopped and removed on drop, also when the test panics.
pub struct TestNginx {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    /// Its prefix (`-p`): holds `conf/`, `logs/`, `tmp/` and the box directories.
    pub prefix: PathBuf,
    /// Where route files go (`{prefix}/box-available`).
    pub available_dir: PathBuf,
    /// Where route files are linked to be served (`{prefix}/box-enabled`).
    pub enabled_dir: PathBuf,
    /// The nginx program.
    pub binary: PathBuf,
    /// The arguments every nginx call needs: `-p PREFIX/ -c CONF -e ERROR_LOG`.
    pub args: Vec<String>,
    child: Child,
    // Removed after `Drop::drop` stopped nginx.
    _dir: tempfile::TempDir,
}

/// Finds nginx: `$NGINX`, then `nginx` on `PATH`, then the usual sbin directories. `None` when
/// there is none (the caller decides whether that skips or fails).
pub fn find_nginx() -> Option<PathBuf> {
    let from_env = std::env::var_os("NGINX").map(PathBuf::from);
    let on_path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("nginx"))
                .collect()
        })
        .unwrap_or_default();
    let usual = [
        "/usr/sbin/nginx",
        "/usr/local/sbin/nginx",
        "/usr/local/nginx/sbin/nginx",
    ]
    .into_iter()
    .map(PathBuf::from);
    from_env
        .into_iter()
        .chain(on_path)
        .chain(usual)
        .find(|candidate| candidate.is_file())
}

/// Checks that nginx is there, like [`crate::require`]: under CI (`CI` set) a missing nginx
/// panics; locally it prints a loud skip line naming `test` and returns `None`.
pub fn require_nginx(test: &str) -> Option<PathBuf> {
    let found = find_nginx();
    if found.is_none() {
        assert!(
            !under_ci(),
            "{test}: nginx is required under CI but was not found (the test command installs nginx-light)"
        );
        eprintln!(
            "\n*** SKIPPING {test}: nginx is not available (install nginx-light, or set NGINX=/path/to/nginx); \
             under CI this fails ***\n"
        );
    }
    found
}

impl TestNginx {
    /// Starts a private nginx whose http block includes `map_snippet` (pass
    /// `cm_nginx::render_map_snippet()`), or `None` after a loud skip line when nginx is missing
    /// outside CI. Panics when nginx is there but does not start.
    pub fn start(test: &str, map_snippet: &str) -> Option<TestNginx> {
        let server = |p: &str, port: u16| {
            format!(
                r#"    include {p}/conf/{MAP_SNIPPET_FILE};
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        # What the owner check of route files needs from the server block; these stand-ins let
        # every request through (the owner check itself is tested against the real cm-api).
        location = /_cm_internal/declare {{ internal; set $cm_user ""; set $cm_type ""; set $cm_reason ""; return 404; }}
        location = /_cm_internal/check {{ internal; return 204; }}
        location @cm_denied {{ return 403; }}
        include {p}/box-enabled/*.conf;
        location / {{ return 404; }}
    }}
"#
            )
        };
        Self::start_with(test, map_snippet, &server)
    }

    /// Starts a private nginx whose http block holds only `site(port)`: for the site file of
    /// `cm nginx setup` (its maps, upstream and server), listening on `port`. The file is written
    /// to `conf.d/containermanager.conf` under the prefix, where `conf_dir` points.
    pub fn start_site(test: &str, site: &dyn Fn(u16) -> String) -> Option<TestNginx> {
        let server = |p: &str, port: u16| {
            let path = format!("{p}/conf.d/containermanager.conf");
            if let Err(e) = std::fs::write(&path, site(port)) {
                return format!(
                    "# writing {path} failed: {e}
"
                );
            }
            format!(
                "    include {p}/conf.d/*.conf;
"
            )
        };
        Self::start_with(test, "", &server)
    }

    /// Where `cm nginx setup` writes its site file for this nginx.
    pub fn conf_dir(&self) -> PathBuf {
        self.prefix.join("conf.d")
    }

    fn start_with(test: &str, map_snippet: &str, server: &dyn Fn(&str, u16) -> String) -> Option<TestNginx> {
        let binary = require_nginx(test)?;
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(&binary, map_snippet, server) {
                Ok(nginx) => return Some(nginx),
                Err(e) => last_error = e,
            }
        }
        panic!("{test}: could not start nginx: {last_error}");
    }

    fn try_start(
        binary: &Path,
        map_snippet: &str,
        server: &dyn Fn(&str, u16) -> String,
    ) -> Result<TestNginx, String> {
        let dir = tempfile::Builder::new()
            .prefix("cm-nginx-it-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let prefix = dir.path().to_path_buf();
        for sub in ["conf", "conf.d", "logs", "tmp", "box-available", "box-enabled"] {
            std::fs::create_dir_all(prefix.join(sub)).map_err(|e| e.to_string())?;
        }
        std::fs::write(prefix.join("conf").join(MAP_SNIPPET_FILE), map_snippet).map_err(|e| e.to_string())?;
        let port = free_port()?;
        // As root, nginx would run its workers as `nobody`, who can not enter the temporary directory.
        let as_root = prefix.metadata().map(|m| m.uid() == 0).unwrap_or(false);
        let p = prefix.display();
        let conf = format!(
            r#"daemon off;
master_process on;
worker_processes 1;
{user}pid {p}/nginx.pid;
error_log {p}/logs/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {p}/logs/access.log;
    client_body_temp_path {p}/tmp/client_body;
    proxy_temp_path {p}/tmp/proxy;
    fastcgi_temp_path {p}/tmp/fastcgi;
    uwsgi_temp_path {p}/tmp/uwsgi;
    scgi_temp_path {p}/tmp/scgi;
{server}}}
"#,
            user = if as_root { "user root;\n" } else { "" },
            server = server(&p.to_string(), port),
        );
        let conf_path = prefix.join("conf").join("nginx.conf");
        std::fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
        let args = vec![
            "-p".to_owned(),
            format!("{p}/"),
            "-c".to_owned(),
            conf_path.display().to_string(),
            "-e".to_owned(),
            format!("{p}/logs/error.log"),
        ];
        let child = Command::new(binary)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawning {}: {e}", binary.display()))?;
        let mut nginx = TestNginx {
            port,
            available_dir: prefix.join("box-available"),
            enabled_dir: prefix.join("box-enabled"),
            prefix,
            binary: binary.to_owned(),
            args,
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                return Err(format!("nginx exited with {status}: {}", nginx.error_log_text()));
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(nginx);
            }
            if Instant::now() > deadline {
                // Dropping `nginx` stops it.
                return Err("nginx did not listen within 10s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The `[nginx]` section of a cm configuration that drives this nginx in files mode (for
    /// `TestEnv::set_config_extra`).
    pub fn config_toml(&self) -> String {
        let args: Vec<String> = self.args.iter().map(|a| toml_string(a)).collect();
        format!(
            "[nginx]\nenabled = true\nmode = \"files\"\nconf_dir = {}\navailable_dir = {}\nenabled_dir = {}\nbinary = {}\nargs = [{}]\n",
            toml_string(&self.conf_dir().display().to_string()),
            toml_string(&self.available_dir.display().to_string()),
            toml_string(&self.enabled_dir.display().to_string()),
            toml_string(&self.binary.display().to_string()),
            args.join(", "),
        )
    }

    /// The `[nginx]` section for dynamic routing through this nginx (started with
    /// [`TestNginx::start_site`]): no box directories, `listen` on its port.
    pub fn dynamic_config_toml(&self) -> String {
        let args: Vec<String> = self.args.iter().map(|a| toml_string(a)).collect();
        format!(
            "[nginx]\nenabled = true\nmode = \"dynamic\"\nconf_dir = {}\nlisten = \"127.0.0.1:{}\"\nbinary = {}\nargs = [{}]\n",
            toml_string(&self.conf_dir().display().to_string()),
            self.port,
            toml_string(&self.binary.display().to_string()),
            args.join(", "),
        )
    }

    /// The error log.
    pub fn error_log(&self) -> PathBuf {
        self.prefix.join("logs").join("error.log")
    }

    /// The error log's text so far (empty when there is none yet).
    pub fn error_log_text(&self) -> String {
        std::fs::read_to_string(self.error_log()).unwrap_or_default()
    }

    /// How many reloads the master has acted on since it started, counted from the error log
    /// (one `signal 1 (SIGHUP) received from N, reconfiguring` notice each). A reload that
    /// `nginx -s reload` sent is logged within milliseconds; callers compare counts taken after
    /// the commands that reload have returned.
    pub fn reloads(&self) -> usize {
        self.error_log_text()
            .lines()
            .filter(|line| line.contains(RELOAD_NOTICE))
            .count()
    }

    /// Runs `nginx ARGS -t -q` against this prefix: `Ok(())` when nginx accepts its configuration,
    /// else nginx's message.
    pub fn test_config(&self) -> Result<(), String> {
        let out = Command::new(&self.binary)
            .args(&self.args)
            .args(["-t", "-q"])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

impl Drop for TestNginx {
    fn drop(&mut self) {
        // `-s stop` makes the master stop its workers too; killing only the master would leave
        // workers holding the port.
        let _ = Command::new(&self.binary)
            .args(&self.args)
            .args(["-s", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind an ephemeral port: {e}"))?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

/// A TOML basic string.
fn toml_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::toml_string;

    #[test]
    fn toml_strings_escape_quotes_backslashes_and_controls() {
        assert_eq!(toml_string(r#"/tmp/a"b\c"#), r#""/tmp/a\"b\\c""#);
        assert_eq!(toml_string("a\nb"), r#""a\u000Ab""#);
    }
}
