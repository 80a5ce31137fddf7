//! `cm`'s part of the audit trail: every command that changes something on this host is recorded
//! with the operating-system user who ran it (commands through `--api` are recorded by cm-api).

use cm_core::{Actor, AuditEntry, AuditSource, Manager, UserId};
use serde_json::{Value, json};

use crate::cli::{Command, NginxCommand, QuotaCommand, TokenCommand, VolumesCommand};

/// The operating-system user running `cm`: `SUDO_USER` when root acts for someone, else `USER`,
/// else the uid.
pub fn local_user() -> String {
    let named = |var: &str| std::env::var(var).ok().filter(|v| !v.trim().is_empty());
    named("SUDO_USER")
        .map(|u| format!("{u} (sudo)"))
        .or_else(|| named("USER"))
        .or_else(|| named("LOGNAME"))
        .unwrap_or_else(|| {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata("/proc/self")
                .map_or_else(|_| "unknown".to_owned(), |m| format!("uid {}", m.uid()))
        })
}

/// The entry a command will be recorded as, `None` for commands that change nothing. Containers
/// named by reference are resolved now, before a delete makes them unknown.
pub async fn planned(command: &Command, manager: Option<&Manager>) -> Option<AuditEntry> {
    let (action, target, params): (&str, Option<String>, Value) = match command {
        Command::Create(args) => (
            "create_container",
            Some(format!("{}_{}", args.user_id, args.container_type)),
            json!({"user_id": args.user_id, "container_type": args.container_type, "image": args.image,
                   "command": args.command, "env": env_object(&args.env), "memory": args.memory,
                   "cpus": args.cpus, "enable_ssh": args.ssh, "ssh_keys": args.ssh_keys.len()}),
        ),
        Command::Start { id } => ("start_container", Some(id.clone()), json!({})),
        Command::Stop { id } => ("stop_container", Some(id.clone()), json!({})),
        Command::Restart { id } => ("restart_container", Some(id.clone()), json!({})),
        Command::Exec { id, command, timeout } => (
            "container_exec",
            Some(id.clone()),
            json!({"command": command, "timeout": timeout}),
        ),
        Command::Delete { id, force, purge } => (
            "delete_container",
            Some(id.clone()),
            json!({"force": force, "purge": purge}),
        ),
        Command::Update { id, image } => ("update_container", Some(id.clone()), json!({"image": image})),
        Command::Move { id, node } => ("move_container", Some(id.clone()), json!({"node": node})),
        Command::AddSshKey { id, key } => (
            "add_ssh_key_to_container",
            Some(id.clone()),
            json!({"ssh_public_key": key}),
        ),
        Command::RemoveSshKey { id, fingerprint } => (
            "remove_ssh_key_from_container",
            Some(id.clone()),
            json!({"fingerprint": fingerprint}),
        ),
        Command::Reconcile {
            dry_run: false,
            prune,
        } => ("reconcile", None, json!({"prune": prune})),
        Command::Adopt {
            dry_run: false,
            recreate,
            users,
            ..
        } => ("adopt", None, json!({"recreate": recreate, "users": users})),
        Command::Token(TokenCommand::Create { user_id, expires }) => (
            "create_user_token",
            Some(user_id.clone()),
            json!({"user_id": user_id, "expires": expires.map(|e| e.to_string())}),
        ),
        Command::Token(TokenCommand::Revoke { user_or_token }) => {
            ("revoke_user_token", Some(user_or_token.clone()), json!({}))
        }
        Command::Quota(QuotaCommand::Set {
            user_id,
            containers,
            memory,
            cpus,
            disk,
            clear,
        }) => (
            "set_user_quota",
            Some(user_id.clone()),
            json!({"user_id": user_id, "containers": containers, "memory": memory, "cpus": cpus,
                   "disk": disk, "clear": clear}),
        ),
        Command::Volumes {
            action: Some(VolumesCommand::Purge { name }),
        } => ("purge_volume", Some(name.clone()), json!({})),
        Command::Nginx(NginxCommand::Setup { .. }) => ("nginx_setup", None, json!({})),
        _ => return None,
    };
    let entry = AuditEntry::new(Actor::Local(local_user()), AuditSource::Cli, action).with_params(params);
    let Some(target) = target else {
        return Some(entry);
    };
    // The user a command names (a token, a quota, a new container's owner), else the owner of
    // the container it names.
    let named_user = match command {
        Command::Create(args) => UserId::parse(&args.user_id).ok(),
        Command::Token(_) | Command::Quota(_) => UserId::parse(&target).ok(),
        _ => None,
    };
    if named_user.is_some() {
        return Some(entry.on(cm_core::name_like(&target), named_user.as_ref()));
    }
    Some(match manager {
        Some(manager) => {
            let (target, owner) = manager.audit_target(&target).await;
            entry.on(target, owner.as_ref())
        }
        None => entry.on(cm_core::name_like(&target), None),
    })
}

fn env_object(assignments: &[String]) -> Value {
    Value::Object(
        assignments
            .iter()
            .filter_map(|a| a.split_once('='))
            .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
            .collect(),
    )
}
