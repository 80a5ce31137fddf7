//! The audit trail (table `audit`, schema version 4): appended to, read newest first, pruned by
//! age.

use std::time::SystemTime;

use async_trait::async_trait;
use cm_core::{Actor, AuditEntry, AuditLog, AuditQuery, AuditSource, Error, Result, UserId};
use rusqlite::params;

use crate::{SqliteStore, sql_error, unix_seconds};

fn actor_columns(actor: &Actor) -> (&'static str, Option<&str>) {
    match actor {
        Actor::Admin => ("admin", None),
        Actor::User(user) => ("user", Some(user.as_str())),
        Actor::Local(name) => ("local", Some(name.as_str())),
        Actor::Anonymous => ("anonymous", None),
        Actor::System => ("system", None),
    }
}

fn actor_of(kind: &str, name: Option<String>) -> Result<Actor> {
    Ok(match (kind, name) {
        ("admin", _) => Actor::Admin,
        ("user", Some(name)) => Actor::User(UserId::parse(&name)?),
        ("local", Some(name)) => Actor::Local(name),
        ("anonymous", _) => Actor::Anonymous,
        ("system", _) => Actor::System,
        (other, _) => return Err(Error::internal(format!("unknown audit actor kind {other}"))),
    })
}

type Row = (
    i64,
    String,
    String,
    Option<String>,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    Option<String>,
);

fn entry_of(row: Row) -> Result<AuditEntry> {
    let (id, at, actor_kind, actor_name, source, action, target, subject, params, result, address) = row;
    Ok(AuditEntry {
        id,
        at,
        actor: actor_of(&actor_kind, actor_name)?,
        source: AuditSource::parse(&source)
            .ok_or_else(|| Error::internal(format!("unknown audit source {source}")))?,
        action,
        target,
        subject: subject.map(|s| UserId::parse(&s)).transpose()?,
        params: serde_json::from_str(&params)
            .map_err(|e| Error::internal("corrupt audit parameters").with_source(e))?,
        result,
        address: address.and_then(|a| a.parse().ok()),
    })
}

#[async_trait]
impl AuditLog for SqliteStore {
    async fn append(&self, entry: &AuditEntry) -> Result<()> {
        let entry = entry.clone();
        self.write(move |tx| {
            let (kind, name) = actor_columns(&entry.actor);
            tx.execute(
                "INSERT INTO audit (at, at_unix, actor_kind, actor_name, source, action, target, subject, params, result, address)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    entry.at,
                    unix_seconds(SystemTime::now()),
                    kind,
                    name,
                    entry.source.as_str(),
                    entry.action,
                    entry.target,
                    entry.subject.as_ref().map(UserId::as_str),
                    entry.params.to_string(),
                    entry.result,
                    entry.address.map(|a| a.to_string()),
                ],
            )
            .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn query(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let query = query.clone();
        self.run(move |connection| {
            let user = query.user.as_ref().map(|u| u.as_str().to_owned());
            let since = query.since.map(unix_seconds);
            let limit = i64::try_from(query.limit()).unwrap_or(i64::MAX);
            let mut statement = connection
                .prepare(
                    "SELECT id, at, actor_kind, actor_name, source, action, target, subject, params, result, address
                     FROM audit
                     WHERE (?1 IS NULL OR subject = ?1 OR (actor_kind = 'user' AND actor_name = ?1))
                       AND (?2 IS NULL OR target = ?2)
                       AND (?3 IS NULL OR at_unix >= ?3)
                     ORDER BY id DESC LIMIT ?4",
                )
                .map_err(sql_error)?;
            let rows = statement
                .query_map(params![user, query.target, since, limit], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                        r.get(9)?,
                        r.get(10)?,
                    ))
                })
                .map_err(sql_error)?;
            rows.map(|row| entry_of(row.map_err(sql_error)?)).collect()
        })
        .await
    }

    async fn prune(&self, before: SystemTime) -> Result<usize> {
        let before = unix_seconds(before);
        self.write(move |tx| {
            tx.execute("DELETE FROM audit WHERE at_unix < ?1", [before])
                .map_err(sql_error)
        })
        .await
    }
}
