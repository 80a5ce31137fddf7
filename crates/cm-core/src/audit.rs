//! The audit trail: who changed what, and who signed in, through the API, the dashboard, the
//! route sign-in or `cm`. Entries are appended, never changed; old ones go after the configured
//! retention. Parameters are stored without secrets: values whose names look secret (keys,
//! tokens, passwords) become `***`, and credentials are never parameters.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Result;
use crate::names::UserId;
use crate::values::{REDACTED, is_secret_name};

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum Actor {
    /// The admin key.
    Admin,
    /// A user's credential.
    User(UserId),
    /// `cm` on the host, as this operating-system user.
    Local(String),
    /// Nobody signed in (a failed sign-in, a request to a public app).
    Anonymous,
    /// The manager itself, on its own account (the idle sweep).
    System,
}

/// Where the action came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The REST API.
    Api,
    /// The web dashboard.
    Dashboard,
    /// The sign-in page of the HTTP routes.
    Route,
    /// `cm` on the host.
    Cli,
    /// The manager's own background work (the idle sweep).
    System,
}

impl Source {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Api => "api",
            Source::Dashboard => "dashboard",
            Source::Route => "route",
            Source::Cli => "cli",
            Source::System => "system",
        }
    }

    /// Parses the lowercase name.
    pub fn parse(text: &str) -> Option<Self> {
        [
            Source::Api,
            Source::Dashboard,
            Source::Route,
            Source::Cli,
            Source::System,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// One entry of the trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Its number, in the order entries were written (0 before it is stored).
    pub id: i64,
    /// When, RFC 3339 UTC.
    pub at: String,
    /// Who.
    pub actor: Actor,
    /// Through what.
    pub source: Source,
    /// What: the API function or command (`create_container`, `sign_in`, ...).
    pub action: String,
    /// On what: a container, a user or a token id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The user it concerns (the owner of the target), for per-user queries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<UserId>,
    /// The parameters, without secrets.
    pub params: Value,
    /// `ok`, or the error's code.
    pub result: String,
    /// The client's address, when it came over the network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<IpAddr>,
}

impl AuditEntry {
    /// A successful `action` by `actor` through `source`, with nothing else known yet.
    pub fn new(actor: Actor, source: Source, action: &str) -> Self {
        let subject = match &actor {
            Actor::User(user) => Some(user.clone()),
            _ => None,
        };
        AuditEntry {
            id: 0,
            at: String::new(),
            actor,
            source,
            action: action.to_owned(),
            target: None,
            subject,
            params: Value::Object(serde_json::Map::new()),
            result: "ok".to_owned(),
            address: None,
        }
    }

    /// What it acted on, and whose that is.
    pub fn on(mut self, target: impl Into<String>, subject: Option<&UserId>) -> Self {
        self.target = Some(target.into());
        if let Some(subject) = subject {
            self.subject = Some(subject.clone());
        }
        self
    }

    /// Its parameters (secrets are removed when it is recorded).
    pub fn with_params(mut self, params: Value) -> Self {
        self.params = params;
        self
    }

    /// It failed with the error `code`.
    pub fn failed(mut self, code: &str) -> Self {
        self.result = code.to_owned();
        self
    }

    /// It came from `address`.
    pub fn from(mut self, address: Option<IpAddr>) -> Self {
        self.address = address;
        self
    }
}

/// Which entries to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only those by or about this user (actor, target container or target user).
    pub user: Option<UserId>,
    /// Only those about this target.
    pub target: Option<String>,
    /// Only those at or after this time.
    pub since: Option<SystemTime>,
    /// At most this many, newest first (default 100, at most 10,000).
    pub limit: Option<usize>,
}

impl AuditQuery {
    /// The most entries one query returns.
    pub const MAX_LIMIT: usize = 10_000;

    /// The limit to apply.
    pub fn limit(&self) -> usize {
        self.limit.unwrap_or(100).clamp(1, Self::MAX_LIMIT)
    }
}

/// Where the trail is kept (a port: the SQLite store implements it).
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Appends an entry.
    async fn append(&self, entry: &AuditEntry) -> Result<()>;
    /// Entries matching `query`, newest first.
    async fn query(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>>;
    /// Removes entries written before `before`; returns how many.
    async fn prune(&self, before: SystemTime) -> Result<usize>;
}

/// Records actions and sign-ins; cheap to clone. A failure to write is logged, never the
/// caller's failure: the action itself has happened.
#[derive(Clone)]
pub struct Auditor {
    log: std::sync::Arc<dyn AuditLog>,
    retention: Duration,
}

impl Auditor {
    /// An auditor over `log` that keeps entries for `retention`.
    pub fn new(log: std::sync::Arc<dyn AuditLog>, retention: Duration) -> Self {
        Auditor { log, retention }
    }

    /// Writes `entry` (its time and secrets-free parameters set here).
    pub async fn record(&self, mut entry: AuditEntry) {
        entry.at = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        entry.params = redacted(&entry.params);
        if let Err(e) = self.log.append(&entry).await {
            tracing::warn!(action = %entry.action, error = %e, "the audit entry could not be written");
        }
    }

    /// Entries matching `query`, newest first.
    pub async fn query(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        self.log.query(query).await
    }

    /// Removes entries past the retention; returns how many.
    pub async fn prune(&self) -> Result<usize> {
        let before = SystemTime::now()
            .checked_sub(self.retention)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        self.log.prune(before).await
    }
}

/// Parameter names whose values are credentials: never stored, whatever their shape.
const CREDENTIAL_PARAMS: [&str; 4] = ["admin_key", "key", "token", "csrf"];

/// `text` when it has the shape of a name or id (letters, digits, `_ - .`, at most 128), else a
/// placeholder: what a caller typed reaches terminals and pages only in a harmless form.
pub fn name_like(text: &str) -> String {
    let shaped = !text.is_empty()
        && text.len() <= 128
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if shaped {
        text.to_owned()
    } else {
        "(not a name)".to_owned()
    }
}

impl crate::manager::Manager {
    /// How the trail names a container `reference` (a name, an id or an id prefix): by its
    /// name, with its owner; one that is gone or never was, as given (in a name's shape).
    pub async fn audit_target(&self, reference: &str) -> (String, Option<UserId>) {
        match self.resolve(reference.trim()).await {
            Ok(spec) => (spec.container_name.to_string(), Some(spec.user_id)),
            Err(_) => (name_like(reference.trim()), None),
        }
    }
}

/// Parameters holding `KEY=VALUE` assignments (as text or a list), whose values are judged by
/// their variable's name.
const ENV_PARAMS: [&str; 2] = ["env", "environment"];

/// Parameters holding a command line: only the program is kept (its arguments may carry
/// anything, passwords included).
const COMMAND_PARAMS: [&str; 1] = ["command"];

/// `params` with secret-looking values replaced, at any depth.
pub fn redacted(params: &Value) -> Value {
    match params {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let hidden = CREDENTIAL_PARAMS.contains(&k.as_str()) || is_secret_name(k);
                    let shown = if hidden && !v.is_null() {
                        Value::String(REDACTED.to_owned())
                    } else if ENV_PARAMS.contains(&k.as_str()) {
                        assignments_redacted(v)
                    } else if COMMAND_PARAMS.contains(&k.as_str()) {
                        program_only(v)
                    } else {
                        redacted(v)
                    };
                    (k.clone(), shown)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redacted).collect()),
        other => other.clone(),
    }
}

/// `KEY=VALUE` assignments with the values of secret-looking names replaced (an object of
/// variables is handled like any object).
fn assignments_redacted(value: &Value) -> Value {
    let line = |text: &str| match text.split_once('=') {
        Some((name, _)) if is_secret_name(name.trim()) => format!("{name}={REDACTED}"),
        _ => text.to_owned(),
    };
    match value {
        Value::String(text) => Value::String(text.lines().map(line).collect::<Vec<_>>().join("\n")),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| match item {
                    Value::String(text) => Value::String(line(text)),
                    other => redacted(other),
                })
                .collect(),
        ),
        other => redacted(other),
    }
}

/// A command line reduced to its program, `…` standing for the arguments.
fn program_only(value: &Value) -> Value {
    let (program, more) = match value {
        Value::String(text) => {
            let mut words = text.split_whitespace();
            (
                words.next().unwrap_or_default().to_owned(),
                words.next().is_some(),
            )
        }
        Value::Array(items) => (
            items
                .first()
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            items.len() > 1,
        ),
        other => return redacted(other),
    };
    Value::String(if more { format!("{program} …") } else { program })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn secrets_never_reach_the_trail() {
        let params = json!({
            "user_id": "alice",
            "admin_key": "cmk_abc",
            "env": {"API_TOKEN": "t0ps3cret", "GREETING": "hi"},
            "items": [{"private_key": "x"}],
            "csrf": "c",
            "environment": ["DB_PASSWORD=hunter2", "MODE=dev"],
            "command": "mysql -uroot -phunter2",
        });
        assert_eq!(
            redacted(&params),
            json!({
                "user_id": "alice",
                "admin_key": "***",
                "env": {"API_TOKEN": "***", "GREETING": "hi"},
                "items": [{"private_key": "***"}],
                "csrf": "***",
                "environment": ["DB_PASSWORD=***", "MODE=dev"],
                "command": "mysql …",
            })
        );
        let text_env = redacted(&json!({"env": "GREETING=hi\nAPI_SECRET=s"}));
        assert_eq!(text_env["env"], "GREETING=hi\nAPI_SECRET=***");
        assert_eq!(redacted(&json!({"command": ["ls"]}))["command"], "ls");
    }

    #[test]
    fn actors_read_back_as_written() {
        for actor in [
            Actor::Admin,
            Actor::User(UserId::parse("alice").unwrap()),
            Actor::Local("root".into()),
            Actor::Anonymous,
            Actor::System,
        ] {
            let text = serde_json::to_string(&actor).unwrap();
            assert_eq!(serde_json::from_str::<Actor>(&text).unwrap(), actor, "{text}");
        }
        assert_eq!(AuditQuery::default().limit(), 100);
        assert_eq!(
            AuditQuery {
                limit: Some(1_000_000),
                ..AuditQuery::default()
            }
            .limit(),
            AuditQuery::MAX_LIMIT
        );
    }
}
