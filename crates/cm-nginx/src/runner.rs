//! Running the nginx program (`-v`, `-t`, `-s reload`) without blocking the runtime, behind a
//! trait so unit tests can fake nginx.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use tokio::process::Command;

/// How long one nginx call may take before it is killed.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest nginx message kept in errors and failure markers.
const MESSAGE_MAX: usize = 600;

/// What the manager asks of nginx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// `nginx -v`: is the program there and runnable?
    Version,
    /// `nginx -t`: does the whole configuration, as on disk now, parse?
    Test,
    /// `nginx -s reload`: make the configuration on disk live.
    Reload,
    /// `nginx`: start the master (it puts itself in the background).
    Start,
}

/// Why an nginx call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RunError {
    /// The program could not be started (missing, not executable).
    Spawn(String),
    /// nginx ran and said no; the text is its own message, trimmed to the relevant lines.
    Refused(String),
}

/// Runs nginx.
#[async_trait]
pub(crate) trait Runner: Send + Sync {
    /// Runs one action; `Ok` carries nginx's output (for `Version`, the version line).
    async fn run(&self, action: Action) -> Result<String, RunError>;
}

/// The real nginx, through `tokio::process`.
#[derive(Debug)]
pub(crate) struct ProcessRunner {
    binary: PathBuf,
    args: Vec<String>,
}

impl ProcessRunner {
    pub(crate) fn new(binary: PathBuf, args: Vec<String>) -> Self {
        ProcessRunner { binary, args }
    }
}

#[async_trait]
impl Runner for ProcessRunner {
    async fn run(&self, action: Action) -> Result<String, RunError> {
        let mut command = Command::new(&self.binary);
        // A clean environment: nothing of ours (CONTAINER_ADMIN_KEY, CM_*) reaches nginx or a
        // sudo wrapper; PATH only, to find the program and what a wrapper calls.
        command.env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        command
            .args(&self.args)
            .args(match action {
                Action::Version => &["-v"][..],
                Action::Test => &["-t", "-q"][..],
                Action::Reload => &["-s", "reload"][..],
                Action::Start => &[][..],
            })
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let binary = self.binary.display();
        let child = command
            .spawn()
            .map_err(|e| RunError::Spawn(format!("{binary}: {e}")))?;
        let output = match tokio::time::timeout(CALL_TIMEOUT, child.wait_with_output()).await {
            Ok(Ok(output)) => output,
            Ok(Err(e)) => return Err(RunError::Spawn(format!("{binary}: {e}"))),
            Err(_) => {
                return Err(RunError::Refused(format!(
                    "{binary} did not finish within {}s",
                    CALL_TIMEOUT.as_secs()
                )));
            }
        };
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
        if output.status.success() {
            Ok(text.trim().to_owned())
        } else {
            let message = nginx_message(&text);
            Err(RunError::Refused(if message.is_empty() {
                format!("{binary} exited with {}", output.status)
            } else {
                message
            }))
        }
    }
}

/// Trims nginx's output to the lines that explain a failure, on one line.
///
/// `[emerg]`/`[crit]` lines win; else `[error]`/`[alert]` lines; else every line except the
/// "test failed" trailer. The `nginx: ` prefix goes, lines are joined with `; `.
pub(crate) fn nginx_message(output: &str) -> String {
    let lines: Vec<&str> = output
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| l.strip_prefix("nginx: ").unwrap_or(l))
        .collect();
    let having = |levels: &[&str]| -> Vec<&str> {
        lines
            .iter()
            .copied()
            .filter(|l| levels.iter().any(|level| l.contains(level)))
            .collect()
    };
    let mut picked = having(&["[emerg]", "[crit]"]);
    if picked.is_empty() {
        picked = having(&["[error]", "[alert]"]);
    }
    if picked.is_empty() {
        picked = lines
            .iter()
            .copied()
            .filter(|l| !(l.starts_with("configuration file ") && l.ends_with("test failed")))
            .collect();
    }
    let joined = picked.join("; ");
    if joined.chars().count() <= MESSAGE_MAX {
        joined
    } else {
        let cut: String = joined.chars().take(MESSAGE_MAX).collect();
        format!("{cut}...")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_keep_the_relevant_lines() {
        let out = "nginx: [alert] could not open error log file: open() \"/var/log/nginx/error.log\" failed (13: Permission denied)\n\
                   nginx: [emerg] invalid port in upstream \"127.0.0.1:0/\" in /etc/nginx/box-enabled/container-a-b.conf:12\n\
                   nginx: configuration file /etc/nginx/nginx.conf test failed\n";
        assert_eq!(
            nginx_message(out),
            "[emerg] invalid port in upstream \"127.0.0.1:0/\" in /etc/nginx/box-enabled/container-a-b.conf:12"
        );
        let out = "nginx: [error] invalid PID number \"\" in \"/run/nginx.pid\"\n";
        assert_eq!(
            nginx_message(out),
            "[error] invalid PID number \"\" in \"/run/nginx.pid\""
        );
        assert_eq!(
            nginx_message("something odd\nconfiguration file /x test failed"),
            "something odd"
        );
        assert!(nginx_message(&"x".repeat(2000)).ends_with("..."));
    }

    #[tokio::test]
    async fn a_missing_binary_is_a_spawn_error() {
        let runner = ProcessRunner::new("/nonexistent/nginx".into(), vec![]);
        let err = runner.run(Action::Version).await.unwrap_err();
        assert!(
            matches!(err, RunError::Spawn(ref m) if m.contains("/nonexistent/nginx")),
            "{err:?}"
        );
    }
}
