//! The commands of `cm`: parse arguments into cm-core types, call the manager, print.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use cm_core::{
    AdoptOptions, AdoptOutcome, Command as ContainerCommand, CreateForm, DeleteOptions, ErrorKind, Lifecycle,
    Listing, LogRequest, Manager, OriginalRecords, ReconcileOptions, UserId,
};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::backend::Backend;
use crate::cli::{
    Cli, Command, CreateArgs, NginxCommand, QuotaCommand, RoutesCommand, TokenCommand, VolumesCommand,
};
use crate::output;
use crate::remote::Remote;
use cm_wiring::{Settings, build_manager, load_settings, new_admin_key};

/// Exit codes: 0 success, 1 refused (invalid input, not found, conflict, forbidden), 2 usage or
/// internal error, 3 a dependency is unavailable (the engine is down), 4 timeout.
pub fn exit_code_of(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::InvalidInput
        | ErrorKind::NotFound
        | ErrorKind::Conflict
        | ErrorKind::Unauthorized
        | ErrorKind::Forbidden
        | ErrorKind::Exhausted => 1,
        ErrorKind::Internal => 2,
        ErrorKind::Unavailable | ErrorKind::Busy => 3,
        ErrorKind::Timeout => 4,
    }
}

/// Runs a parsed command line and returns the process exit code. Errors are printed once, as one
/// line on stderr.
pub async fn run(cli: Cli) -> ExitCode {
    match execute(cli).await {
        Ok(code) => code,
        Err(err) => {
            let code = match err.downcast_ref::<cm_core::Error>() {
                Some(core) => {
                    tracing::debug!(error = ?core, "command failed");
                    exit_code_of(core.kind())
                }
                None => 2,
            };
            eprintln!("error: {}", one_line(&format!("{err:#}")));
            ExitCode::from(code)
        }
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

async fn execute(cli: Cli) -> anyhow::Result<ExitCode> {
    let json = cli.json;
    // Commands that need neither the store nor the engine.
    if let Command::Completions { shell } = cli.command {
        let mut script = Vec::new();
        clap_complete::generate(
            shell,
            &mut <Cli as clap::CommandFactory>::command(),
            "cm",
            &mut script,
        );
        output::raw(&String::from_utf8_lossy(&script));
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Man { out } = &cli.command {
        let written = man_pages(out)?;
        if json {
            output::json(&written)?;
        } else {
            for path in written {
                output::line(&path.display().to_string());
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::GenerateKey = cli.command {
        let key = new_admin_key();
        if json {
            output::json(&json!({ "admin_key": key.expose() }))?;
        } else {
            output::line(key.expose());
            eprintln!("set it with: export CONTAINER_ADMIN_KEY=<the key above>");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(url) = &cli.api {
        let remote = Remote::new(url, cli.token.as_deref().unwrap_or_default())?;
        return match cli.command {
            Command::Types => {
                let types: Vec<serde_json::Value> = remote.fetch("list_types", &json!({}), Some("types"))?;
                print_types(&types, json)
            }
            Command::Token(command) => token(&TokenBackend::Remote(&remote), command, json).await,
            Command::Health => remote_health(&remote, url, json),
            Command::Audit {
                user,
                container,
                since,
                limit,
            } => {
                let body =
                    json!({"user_id": user, "container_id": container, "since": since, "limit": limit});
                let entries: Vec<cm_core::AuditEntry> = remote.fetch("audit_log", &body, Some("entries"))?;
                print_audit(&entries, json)
            }
            Command::Nginx(_) | Command::Routes { .. } | Command::Volumes { .. } | Command::Adopt { .. } => {
                Err(anyhow::anyhow!(
                    "this command changes files, volumes or containers on the host: run it there, without --api"
                ))
            }
            command => on_backend(&Backend::Remote(remote), None, command, json).await,
        };
    }
    let settings = load_settings()?;
    if let Command::Types = cli.command {
        return print_types(&types_of(&settings.config)?, json);
    }
    if let Command::Audit {
        user,
        container,
        since,
        limit,
    } = &cli.command
    {
        let auditor = cm_wiring::build_auditor(&settings)?;
        let manager = match container {
            Some(_) => Some(build_manager(&settings).await?),
            None => None,
        };
        return audit_query(&auditor, manager.as_ref(), user, container, since, *limit, json).await;
    }
    // Tokens and nginx need no manager (nginx setup may run before any database exists).
    if let Command::Token(_) | Command::Nginx(_) = cli.command {
        let planned = crate::audit::planned(&cli.command, None).await;
        let auditor = match planned {
            Some(_) => Some(cm_wiring::build_auditor(&settings)?),
            None => None,
        };
        let outcome = match cli.command {
            Command::Token(command) => {
                let auth = cm_wiring::build_credentials(&settings)?;
                token(&TokenBackend::Local(&auth), command, json).await
            }
            Command::Nginx(command) => nginx(settings, command, json).await,
            _ => unreachable!("matched above"),
        };
        record(planned, auditor.as_ref(), &outcome).await;
        return outcome;
    }
    let manager = build_manager(&settings).await?;
    if let Command::Health = cli.command {
        return local_health(&manager, &settings, json).await;
    }
    let planned = crate::audit::planned(&cli.command, Some(&manager)).await;
    let auditor = match planned {
        Some(_) => Some(cm_wiring::build_auditor(&settings)?),
        None => None,
    };
    let outcome = on_host(manager, cli.command, json).await;
    record(planned, auditor.as_ref(), &outcome).await;
    outcome
}

/// What the commands of [`execute_with`] run against: a manager and an audit trail, built by the
/// caller (the tests: over cm-core's fakes).
pub struct Host {
    /// The manager the commands call.
    pub manager: Manager,
    /// Where changes are recorded and `cm audit` reads from.
    pub auditor: cm_core::Auditor,
}

/// Runs `cli` against `host` as `cm` would run it on a host with that manager and audit trail,
/// printing to `out` instead of stdout (stderr stays stderr). Errors come back unprinted, as
/// [`run`] would print them. The commands that need the host's files, database or network
/// themselves (`--api`, `health`, `token`, `nginx`, `completions`, `man`, `generate-key`) are
/// refused.
pub async fn execute_with(
    host: &Host,
    cli: Cli,
    out: Box<dyn std::io::Write + Send>,
) -> anyhow::Result<ExitCode> {
    output::to_writer(out, on_injected_host(host, cli)).await
}

async fn on_injected_host(host: &Host, cli: Cli) -> anyhow::Result<ExitCode> {
    let json = cli.json;
    if cli.api.is_some() {
        anyhow::bail!("an injected host runs commands locally: --api is not taken");
    }
    match &cli.command {
        Command::Types => return print_types(&types_of(host.manager.config())?, json),
        Command::Audit {
            user,
            container,
            since,
            limit,
        } => {
            return audit_query(
                &host.auditor,
                Some(&host.manager),
                user,
                container,
                since,
                *limit,
                json,
            )
            .await;
        }
        Command::Health
        | Command::Token(_)
        | Command::Nginx(_)
        | Command::Completions { .. }
        | Command::Man { .. }
        | Command::GenerateKey => {
            anyhow::bail!("this command needs the host's own files or database, not an injected manager")
        }
        _ => {}
    }
    let planned = crate::audit::planned(&cli.command, Some(&host.manager)).await;
    let outcome = on_host(host.manager.clone(), cli.command, json).await;
    record(planned, Some(&host.auditor), &outcome).await;
    outcome
}

/// Records a command's entry, if it has one, with its outcome.
async fn record(
    planned: Option<cm_core::AuditEntry>,
    auditor: Option<&cm_core::Auditor>,
    outcome: &anyhow::Result<ExitCode>,
) {
    if let (Some(entry), Some(auditor)) = (planned, auditor) {
        let entry = match outcome {
            Ok(code) if *code == ExitCode::SUCCESS => entry,
            Ok(_) => entry.failed("failed"),
            Err(e) => entry.failed(
                e.downcast_ref::<cm_core::Error>()
                    .map_or("failed", |e| e.kind().code()),
            ),
        };
        auditor.record(entry).await;
    }
}

/// The configured container types as JSON, as cm-api lists them.
fn types_of(config: &cm_core::Config) -> anyhow::Result<Vec<serde_json::Value>> {
    Ok(config
        .types
        .values()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()?)
}

/// `cm audit` on the host; `manager` resolves `--container` (needed only then).
async fn audit_query(
    auditor: &cm_core::Auditor,
    manager: Option<&Manager>,
    user: &Option<String>,
    container: &Option<String>,
    since: &Option<String>,
    limit: usize,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let target = match (container, manager) {
        (Some(reference), Some(manager)) => Some(manager.audit_target(reference).await.0),
        (Some(_), None) => anyhow::bail!("internal: no manager to resolve the container"),
        (None, _) => None,
    };
    let query = cm_core::AuditQuery {
        user: user.as_deref().map(UserId::parse).transpose()?,
        target,
        since: since.as_deref().map(LogRequest::parse_since).transpose()?,
        limit: Some(limit),
    };
    print_audit(&auditor.query(&query).await?, json)
}

/// `cm audit`.
fn print_audit(entries: &[cm_core::AuditEntry], json: bool) -> anyhow::Result<ExitCode> {
    if json {
        output::json(&entries)?;
    } else {
        output::audit(entries);
    }
    Ok(ExitCode::SUCCESS)
}

/// The commands that run on this host against its manager, after the ones that need the
/// host's files (health, tokens, nginx).
async fn on_host(manager: Manager, command: Command, json: bool) -> anyhow::Result<ExitCode> {
    if let Command::Routes { action } = command {
        return routes(&manager, action, json).await;
    }
    if let Command::Volumes { action } = command {
        return volumes(&manager, action, json).await;
    }
    if let Command::Adopt {
        dry_run,
        recreate,
        records,
        users,
    } = command
    {
        let users = users
            .iter()
            .map(|u| UserId::parse(u))
            .collect::<cm_core::Result<_>>()?;
        let options = AdoptOptions {
            dry_run,
            recreate,
            users,
        };
        return adopt(&manager, &options, records.as_deref(), json).await;
    }
    let ssh_host = manager.config().ssh.server_host.clone();
    on_backend(&Backend::Local(Box::new(manager)), Some(ssh_host), command, json).await
}

/// The commands that run the same on this host and through a remote cm-api. `ssh_host`: the
/// configured SSH host when local (`None`: remote, where the API's answer names the host).
async fn on_backend(
    backend: &Backend,
    ssh_host: Option<Option<String>>,
    command: Command,
    json: bool,
) -> anyhow::Result<ExitCode> {
    match command {
        Command::Create(args) => create(backend, args, json).await?,
        Command::List { user_id, all } => {
            let user = match user_id {
                Some(user) if !all => Some(UserId::parse(&user)?),
                _ => None,
            };
            let listing = backend.list(user.as_ref()).await?;
            return print_listing(&listing, json);
        }
        Command::Get { id, show_secrets } => {
            if show_secrets && matches!(backend, Backend::Remote(_)) {
                anyhow::bail!("--show-secrets works only on the host: the API never sends secret values");
            }
            let found = match backend.get(&id).await {
                Ok(found) => found,
                // `cm get alice`: a user's id names no container, but the user's containers.
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    let listing = match UserId::parse(&id) {
                        Ok(user) => backend.list(Some(&user)).await?,
                        Err(_) => return Err(e.into()),
                    };
                    if listing.containers.is_empty() {
                        return Err(e.into());
                    }
                    return print_listing(&listing, json);
                }
                Err(e) => return Err(e.into()),
            };
            // Secret-looking values stay hidden, as in the API and the dashboard, unless asked for
            // (`cm` runs with the database's rights: whoever runs it may read them anyway).
            let spec = if show_secrets {
                found.spec
            } else {
                shown(&found.spec)
            };
            if json {
                let mut value = serde_json::to_value(&spec)?;
                if let Some(usage) = found.usage {
                    value["disk_usage"] = serde_json::to_value(usage)?;
                }
                if let Some(health) = &found.health {
                    value["health"] = serde_json::to_value(health)?;
                }
                output::json(&value)?;
            } else {
                output::container(&spec, found.usage, found.health.as_ref());
            }
        }
        Command::Start { id } => lifecycle(backend.lifecycle(&id, Lifecycle::Start).await?, "started", json)?,
        Command::Stop { id } => lifecycle(backend.lifecycle(&id, Lifecycle::Stop).await?, "stopped", json)?,
        Command::Restart { id } => {
            lifecycle(
                backend.lifecycle(&id, Lifecycle::Restart).await?,
                "restarted",
                json,
            )?;
        }
        Command::Stats { id } => {
            let stats = backend.stats(&id).await?;
            if json {
                output::json(&stats)?;
            } else {
                output::stats(&stats);
            }
        }
        Command::Logs {
            id,
            tail,
            follow,
            timestamps,
            since,
        } => {
            let request = LogRequest {
                tail: Some(tail),
                follow,
                timestamps,
                since: since
                    .as_deref()
                    // A usage error (exit 2), like a flag clap refuses.
                    .map(|text| {
                        LogRequest::parse_since(text)
                            .map_err(|e| anyhow::anyhow!("invalid --since: {}", e.message()))
                    })
                    .transpose()?,
            };
            backend.print_logs(&id, request).await?;
        }
        Command::Exec { id, command, timeout } => {
            // One word is a command line (the quoted form); several are the arguments as given.
            let command = match <[String; 1]>::try_from(command) {
                Ok([line]) => ContainerCommand::parse(&line)?,
                Err(words) => ContainerCommand::from_args(words)?,
            };
            let result = backend.exec(&id, command, Duration::from_secs(timeout)).await?;
            if json {
                output::json(&result)?;
            } else {
                output::raw(&result.stdout);
                eprint!("{}", result.stderr);
            }
            let code = u8::try_from(result.exit_code).unwrap_or(1);
            return Ok(ExitCode::from(code));
        }
        Command::Delete { id, force, purge } => {
            let deleted = backend.delete(&id, DeleteOptions { force, purge }).await?;
            if json {
                output::json(&json!({
                    "deleted": deleted.container_name,
                    "container_id": deleted.container_id,
                    "purged": purge,
                }))?;
            } else if purge {
                output::line(&format!(
                    "deleted {} and its data volume {}",
                    deleted.container_name, deleted.volume_name
                ));
            } else {
                output::line(&format!(
                    "deleted {} (data kept in volume {}; --purge removes it)",
                    deleted.container_name, deleted.volume_name
                ));
            }
        }
        Command::Update { id, image } => {
            let image = image.as_deref().map(cm_core::ImageRef::parse).transpose()?;
            let spec = backend.update(&id, image).await?;
            if json {
                output::json(&shown(&spec))?;
            } else {
                output::line(&format!(
                    "updated {} to {} ({}), port 127.0.0.1:{}",
                    spec.container_name,
                    spec.image,
                    spec.short_id(),
                    spec.port
                ));
            }
        }
        Command::Move { id, node } => {
            let moved = backend.move_to(&id, &node).await?;
            if json {
                output::json(&json!({
                    "container": shown(&moved.spec),
                    "from": moved.from,
                    "copied_bytes": moved.copied_bytes,
                    "downtime_seconds": moved.downtime_seconds,
                }))?;
            } else {
                output::line(&format!(
                    "moved {} from node {} to node {}: {} of data copied, down for {:.1} s",
                    moved.spec.container_name,
                    moved.from,
                    moved.spec.node.as_ref().map_or("?", |n| n.as_str()),
                    output::size(moved.copied_bytes),
                    moved.downtime_seconds
                ));
            }
        }
        Command::Reconcile { dry_run, prune } => {
            let report = backend.reconcile(ReconcileOptions { dry_run, prune }).await?;
            if json {
                output::json(&report)?;
            } else {
                output::reconcile(&report);
            }
            let failed = report
                .findings
                .iter()
                .any(|f| f.outcome == cm_core::Outcome::Failed);
            return Ok(if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            });
        }
        Command::AddSshKey { id, key } => {
            let added = backend.add_ssh_key(&id, &key).await?;
            if json {
                output::json(&added)?;
            } else {
                let what = if added.added { "added" } else { "already present:" };
                let when = if added.applied {
                    "applied to the running container"
                } else {
                    "stored; the container is not running, it is applied at its next start"
                };
                output::line(&format!("{what} {} ({when})", added.key.fingerprint()));
            }
        }
        Command::SshKeys { id } => {
            let keys = backend.ssh_keys(&id).await?;
            if json {
                output::json(&keys)?;
            } else {
                output::keys(&keys);
            }
        }
        Command::RemoveSshKey { id, fingerprint } => {
            let applied = backend.remove_ssh_key(&id, &fingerprint).await?;
            if json {
                output::json(&json!({ "removed": fingerprint, "applied": applied }))?;
            } else {
                output::line(&format!("removed {fingerprint}"));
            }
        }
        Command::Nodes => {
            let nodes = backend.nodes().await?;
            if json {
                output::json(&nodes)?;
            } else {
                output::nodes(&nodes);
            }
        }
        Command::ListSsh { user_id } => {
            let user = user_id.as_deref().map(UserId::parse).transpose()?;
            let listing = backend.list_ssh(user.as_ref()).await?;
            return print_listing(&listing, json);
        }
        Command::Ssh { id, connect } => {
            let info = backend.ssh_info(&id).await?;
            if connect {
                // The host the answer names (the configured one, or on a cluster the container's
                // node); on this host without a configured name, loopback.
                let host = match info.host.as_str() {
                    "<server>" if ssh_host.is_some() => "127.0.0.1".to_owned(),
                    placeholder if placeholder.starts_with('<') => {
                        anyhow::bail!(
                            "{} can not be reached: its host is {placeholder}",
                            info.container_name
                        )
                    }
                    host => host.to_owned(),
                };
                let status = std::process::Command::new("ssh")
                    .args([
                        "-t",
                        "-p",
                        &info.port.to_string(),
                        &format!("{}@{host}", info.user),
                    ])
                    .status()
                    .context("running ssh (is openssh-client installed?)")?;
                return Ok(ExitCode::from(
                    u8::try_from(status.code().unwrap_or(1)).unwrap_or(1),
                ));
            }
            if json {
                output::json(&info)?;
            } else {
                output::line(&format!("container  {}", info.container_name));
                output::line(&format!("host       {}", info.host));
                output::line(&format!("port       {}", info.port));
                output::line(&format!("user       {}", info.user));
                output::line(&format!("connect    {}", info.command));
                output::line(&format!("docksh     {}", info.docksh));
                output::line(&format!("keys       {}", info.fingerprints.join(", ")));
                if ssh_host.is_some_and(|host| host.is_none()) {
                    eprintln!("note: set CM_SERVER_HOST (or [ssh] server_host) to show the real host name");
                }
            }
        }
        Command::Quota(command) => quota(backend, command, json).await?,
        Command::GenerateKey
        | Command::Completions { .. }
        | Command::Man { .. }
        | Command::Types
        | Command::Token(_)
        | Command::Nginx(_)
        | Command::Health
        | Command::Routes { .. }
        | Command::Volumes { .. }
        | Command::Adopt { .. }
        | Command::Audit { .. } => {
            unreachable!("handled before a backend is chosen")
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_types(types: &[serde_json::Value], json: bool) -> anyhow::Result<ExitCode> {
    if json {
        output::json(&types)?;
    } else {
        output::types(types);
    }
    Ok(ExitCode::SUCCESS)
}

/// `cm health` on the host: the engine, routing, disk caps and the database.
async fn local_health(manager: &Manager, settings: &Settings, json: bool) -> anyhow::Result<ExitCode> {
    let engine = manager.engine_info().await;
    let proxy = manager.probe_proxy().await;
    if json {
        output::json(&json!({
            "engine": engine.as_ref().map_err(ToString::to_string),
            "proxy": proxy,
            "disk_caps": manager.disk_support(),
            "database": settings.database,
        }))?;
    } else {
        match &engine {
            Ok(info) => engine_lines(info),
            Err(e) => {
                output::line(&format!("engine    down: {e}"));
                output::line(&format!("runtime   {}", manager.config().runtime.kind.as_str()));
            }
        }
        output::line(&format!(
            "routing   {}: {}",
            routing_state(proxy.enabled, proxy.mode),
            proxy.detail
        ));
        let disks = manager.disk_support();
        let capped: Vec<String> = manager
            .config()
            .types
            .values()
            .filter(|t| t.disk.is_some())
            .map(|t| t.name.to_string())
            .collect();
        output::line(&match (disks.enforced, capped.is_empty()) {
            (true, _) => format!("disks     caps enforced: {}", disks.detail),
            (false, true) => format!(
                "disks     caps not available ({}); no type sets one",
                disks.detail
            ),
            (false, false) => format!(
                "disks     caps NOT enforced: {}; creates of {} are refused",
                disks.detail,
                capped.join(", ")
            ),
        });
        output::line(&format!("database  {}", settings.database.display()));
    }
    Ok(if engine.is_err() {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

/// The engine's lines of `cm health`: its version, the runtime, and what that runtime applies
/// more weakly than one Docker engine (Swarm), one line each.
fn engine_lines(info: &cm_core::EngineInfo) {
    output::line(&format!(
        "engine    ok: Docker {} (API {}, {})",
        info.version, info.api_version, info.platform
    ));
    // An older cm-api does not say which runtime it runs.
    if info.runtime.is_empty() {
        return;
    }
    if info.weaker.is_empty() {
        output::line(&format!("runtime   {}", info.runtime));
        return;
    }
    output::line(&format!(
        "runtime   {}: weaker than one Docker engine in {} ways (docs/swarm.md):",
        info.runtime,
        info.weaker.len()
    ));
    for weaker in &info.weaker {
        output::line(&format!("          - {weaker}"));
    }
}

fn routing_state(enabled: bool, mode: Option<cm_core::RoutingMode>) -> &'static str {
    match (enabled, mode) {
        (false, _) => "disabled",
        (true, Some(cm_core::RoutingMode::Dynamic)) => "dynamic",
        (true, _) => "files",
    }
}

/// `cm --api URL health`: the engine and routing as that cm-api sees them.
fn remote_health(remote: &Remote, url: &str, json: bool) -> anyhow::Result<ExitCode> {
    let answer = remote.call("docker_health", &json!({}));
    if json {
        output::json(&json!({
            "api": url,
            "engine": answer.as_ref().map(|a| a["engine"].clone()).map_err(ToString::to_string),
            "proxy": answer.as_ref().ok().map(|a| a["proxy"].clone()),
        }))?;
    } else {
        match &answer {
            Ok(a) => {
                let text = |v: &serde_json::Value| v.as_str().unwrap_or("?").to_owned();
                match serde_json::from_value::<cm_core::EngineInfo>(a["engine"].clone()) {
                    Ok(info) => engine_lines(&info),
                    Err(_) => output::line("engine    ok: (an answer this cm cannot read)"),
                }
                let proxy = &a["proxy"];
                let mode = serde_json::from_value(proxy["mode"].clone()).ok();
                output::line(&format!(
                    "routing   {}: {}",
                    routing_state(proxy["enabled"].as_bool().unwrap_or(false), mode),
                    text(&proxy["detail"])
                ));
            }
            Err(e) => output::line(&format!("engine    down: {e}")),
        }
        output::line(&format!("api       {url}"));
    }
    match answer {
        Ok(_) => Ok(ExitCode::SUCCESS),
        // The engine is down (503) or cm-api is unreachable: 3; a refused credential: its code.
        Err(e) => Ok(ExitCode::from(exit_code_of(e.kind()))),
    }
}

/// `cm routes [sync]` (on the host only).
async fn routes(manager: &Manager, action: Option<RoutesCommand>, json: bool) -> anyhow::Result<ExitCode> {
    let proxy = manager.proxy_status();
    if !proxy.enabled {
        if json {
            output::json(&json!({ "enabled": false, "detail": proxy.detail, "routes": [] }))?;
        } else {
            output::line(&format!("routing disabled: {}", proxy.detail));
        }
        return Ok(ExitCode::from(if action.is_some() { 3 } else { 0 }));
    }
    let routes = match action {
        Some(RoutesCommand::Sync) => manager.sync_routes().await?,
        None => manager.routes().await?,
    };
    if json {
        output::json(&json!({ "enabled": true, "detail": proxy.detail, "routes": routes }))?;
    } else {
        output::routes(&routes);
    }
    Ok(ExitCode::SUCCESS)
}

/// `cm volumes [purge NAME]` (on the host only).
/// `cm adopt`.
async fn adopt(
    manager: &Manager,
    options: &AdoptOptions,
    records: Option<&std::path::Path>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let records = match records {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the original's records {}", path.display()))?;
            OriginalRecords::parse(&text)?
        }
        None => OriginalRecords::default(),
    };
    let adoptions = manager.adopt(options, &records).await?;
    if json {
        output::json(&adoptions)?;
    } else {
        output::adoptions(&adoptions, options.dry_run);
    }
    let failed = adoptions.iter().any(|a| a.outcome == AdoptOutcome::Failed);
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

async fn volumes(manager: &Manager, action: Option<VolumesCommand>, json: bool) -> anyhow::Result<ExitCode> {
    match action {
        None => {
            let volumes = manager.retained_volumes().await?;
            if json {
                output::json(&volumes)?;
            } else if volumes.is_empty() {
                output::line("no kept data volumes");
            } else {
                for volume in volumes {
                    output::line(volume.as_str());
                }
            }
        }
        Some(VolumesCommand::Purge { name }) => {
            let purged = manager.purge_retained(&name).await?;
            if json {
                output::json(&json!({ "purged": purged }))?;
            } else {
                output::line(&format!("removed {purged} and its data"));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Where `cm token` keeps tokens: this host's database, or a remote cm-api.
enum TokenBackend<'a> {
    Local(&'a cm_core::Auth),
    Remote(&'a Remote),
}

/// A token as listed (never its secret).
#[derive(serde::Serialize, serde::Deserialize)]
struct TokenRow {
    id: String,
    user_id: String,
    created_at: String,
    expires_at: Option<String>,
    last_used_at: Option<String>,
}

async fn token(backend: &TokenBackend<'_>, command: TokenCommand, json: bool) -> anyhow::Result<ExitCode> {
    match command {
        TokenCommand::Create { user_id, expires } => {
            let user = UserId::parse(&user_id)?;
            let (id, secret, expires_at) = match backend {
                TokenBackend::Local(auth) => {
                    let (record, secret) = auth.create_expiring_token(&user, expires.map(Into::into)).await?;
                    (record.id, secret.expose().to_owned(), record.expires_at)
                }
                TokenBackend::Remote(remote) => {
                    let mut body = json!({ "user_id": user });
                    if let Some(expires) = expires {
                        body["expires_in"] = json!(std::time::Duration::from(expires).as_secs());
                    }
                    let answer = remote.call("create_user_token", &body)?;
                    let text = |field: &str| answer[field].as_str().map(str::to_owned);
                    (
                        text("id").unwrap_or_default(),
                        text("token").unwrap_or_default(),
                        text("expires_at"),
                    )
                }
            };
            if json {
                output::json(&json!({
                    "id": id,
                    "user_id": user,
                    "token": secret,
                    "expires_at": expires_at,
                }))?;
            } else {
                output::line(&secret);
                eprintln!("token {id} for {user} (shown once; it reaches only {user}'s containers)");
            }
        }
        TokenCommand::Revoke { user_or_token } => {
            let tokens = token_rows(backend).await?;
            let by_id = tokens.iter().any(|t| t.id == user_or_token);
            let removed = match backend {
                TokenBackend::Local(auth) if by_id => {
                    auth.revoke_token(&user_or_token).await?;
                    1
                }
                TokenBackend::Local(auth) => auth.revoke_user_tokens(&UserId::parse(&user_or_token)?).await?,
                TokenBackend::Remote(remote) => {
                    let body = if by_id {
                        json!({ "token_id": user_or_token })
                    } else {
                        json!({ "user_id": UserId::parse(&user_or_token)? })
                    };
                    remote.fetch("revoke_user_token", &body, Some("revoked"))?
                }
            };
            if json {
                output::json(&json!({ "revoked": removed }))?;
            } else {
                output::line(&format!("revoked {removed} token(s)"));
            }
        }
        TokenCommand::List => {
            let tokens = token_rows(backend).await?;
            if json {
                output::json(&tokens)?;
            } else {
                let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
                let rows: Vec<Vec<String>> = tokens
                    .iter()
                    .map(|t| {
                        vec![
                            t.id.clone(),
                            t.user_id.clone(),
                            t.created_at.clone(),
                            or_dash(&t.expires_at),
                            or_dash(&t.last_used_at),
                        ]
                    })
                    .collect();
                output::table(&["ID", "USER", "CREATED", "EXPIRES", "LAST USED"], &rows);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn token_rows(backend: &TokenBackend<'_>) -> anyhow::Result<Vec<TokenRow>> {
    Ok(match backend {
        TokenBackend::Local(auth) => {
            let records = auth.tokens().await?;
            serde_json::from_value(serde_json::to_value(records)?)?
        }
        TokenBackend::Remote(remote) => remote.fetch("list_user_tokens", &json!({}), Some("tokens"))?,
    })
}

async fn create(backend: &Backend, args: CreateArgs, json: bool) -> anyhow::Result<()> {
    let form = CreateForm {
        user_id: args.user_id,
        container_type: args.container_type,
        image: args.image,
        command: args.command,
        env: args.env,
        memory: args.memory,
        cpus: args.cpus,
        enable_ssh: args.ssh,
        ssh_keys: args.ssh_keys,
        node: args.node,
    };
    let spinner = if std::io::stderr().is_terminal() && !json {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(100));
        Some(bar)
    } else {
        None
    };
    let progress = |step: &str| {
        if let Some(bar) = &spinner {
            bar.set_message(step.to_owned());
        }
    };
    let outcome = backend.create(form, &progress).await;
    if let Some(bar) = &spinner {
        bar.finish_and_clear();
    }
    let outcome = outcome?;
    if json {
        output::json(&shown(&outcome.spec))?;
    } else {
        let spec = &outcome.spec;
        output::line(&format!(
            "created {} ({}), {}, port 127.0.0.1:{}",
            spec.container_name,
            spec.short_id(),
            spec.status,
            spec.port
        ));
        output::line(&format!("url   {}", spec.url_path));
        if let Some(ssh) = spec.ssh_port {
            output::line(&format!(
                "ssh   port {ssh} (cm ssh {} shows how to connect)",
                spec.container_name
            ));
        }
    }
    if let Some(route_error) = &outcome.route_error {
        eprintln!("warning: the container runs but its route was refused by nginx: {route_error}");
    } else if let Backend::Local(manager) = backend {
        let proxy = manager.proxy_status();
        if !proxy.enabled && !json {
            eprintln!(
                "note: no HTTP route ({}); the container answers on 127.0.0.1:{}",
                proxy.detail, outcome.spec.port
            );
        }
    }
    Ok(())
}

/// A record as `cm` prints it: secret-looking values hidden, as the API and the dashboard show
/// them (`cm get --show-secrets` is the one way to see them).
fn shown(spec: &cm_core::ContainerSpec) -> cm_core::ContainerSpec {
    cm_core::ContainerSpec {
        env: spec.env.redacted(),
        ..spec.clone()
    }
}

fn lifecycle(spec: cm_core::ContainerSpec, verb: &str, json: bool) -> anyhow::Result<()> {
    if json {
        output::json(&shown(&spec))
    } else {
        output::line(&format!("{verb} {} ({})", spec.container_name, spec.status));
        Ok(())
    }
}

/// Prints a listing. Statuses the engine could not confirm are marked; the caller then exits 3
/// (a dependency is unavailable), so scripts do not take stored statuses for live ones.
fn print_listing(listing: &Listing, json: bool) -> anyhow::Result<ExitCode> {
    if let Some(reason) = &listing.stale {
        eprintln!("warning: statuses are the stored ones, the engine could not be asked: {reason}");
    }
    if json {
        // Secret-looking values hidden, as in `cm get` and the API.
        let hidden: Vec<cm_core::ContainerSpec> = listing.containers.iter().map(shown).collect();
        output::json(&hidden)?;
    } else {
        output::containers(&listing.containers, listing.stale.is_some());
    }
    Ok(if listing.stale.is_some() {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

/// The manual pages of `cm` and of each of its commands (`cm-create.1`...), from the clap
/// definitions, so they never disagree with `--help`.
fn man_pages(dir: &std::path::Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    fn write_page(
        command: &clap::Command,
        name: &str,
        dir: &std::path::Path,
        written: &mut Vec<std::path::PathBuf>,
    ) -> anyhow::Result<()> {
        let path = dir.join(format!("{name}.1"));
        let mut page = Vec::new();
        clap_mangen::Man::new(command.clone().version(env!("CARGO_PKG_VERSION")))
            .title(name.to_owned())
            .render(&mut page)?;
        std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
        for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
            if sub.get_name() != "help" {
                write_page(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
            }
        }
        Ok(())
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut command = <Cli as clap::CommandFactory>::command();
    command.build();
    let mut written = Vec::new();
    write_page(&command, "cm", dir, &mut written)?;
    Ok(written)
}

/// `cm nginx setup`: the site file for the configured routing mode, printed or installed.
async fn nginx(mut settings: Settings, command: NginxCommand, json: bool) -> anyhow::Result<ExitCode> {
    let NginxCommand::Setup {
        listen,
        server_name,
        api,
        print,
    } = command;
    if let Some(listen) = listen {
        settings.config.nginx.listen = listen;
    }
    if let Some(name) = server_name {
        settings.config.set_server_name(&name)?;
    }
    if print {
        let text = cm_wiring::nginx_site(&settings, api)?;
        if json {
            output::json(&json!({ "config": text }))?;
        } else {
            output::raw(&text);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let report = cm_wiring::nginx_setup(&settings, api).await?;
    let url = format!(
        "http://{}/container/{{user_id}}/{{type}}/",
        settings.config.nginx.listen
    );
    if json {
        output::json(&json!({
            "path": report.path,
            "changed": report.changed,
            "nginx": report.nginx,
            "url": url,
            "retired_routes": report.retired_routes,
        }))?;
    } else {
        let what = if report.changed { "wrote" } else { "kept" };
        output::line(&format!(
            "{what} {} (nginx -t accepted it)",
            report.path.display()
        ));
        output::line(&format!("nginx {}: containers at {url}", report.nginx));
        if report.retired_routes > 0 {
            output::line(&format!(
                "removed {} route files of files mode: dynamic routing serves those containers now",
                report.retired_routes
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `cm quota show|set`.
async fn quota(backend: &Backend, command: QuotaCommand, json: bool) -> anyhow::Result<()> {
    let report = match command {
        QuotaCommand::Show { user_id } => backend.quota(&UserId::parse(&user_id)?).await?,
        QuotaCommand::Set {
            user_id,
            containers,
            memory,
            cpus,
            disk,
            clear,
        } => {
            let user = UserId::parse(&user_id)?;
            let changes = cm_core::UserQuota {
                containers,
                memory: memory.as_deref().map(cm_core::MemoryLimit::parse).transpose()?,
                cpus: cpus.map(cm_core::CpuLimit::from_cpus).transpose()?,
                disk: disk.as_deref().map(cm_core::DiskSize::parse).transpose()?,
            };
            backend.change_quota(&user, changes, clear).await?
        }
    };
    if json {
        output::json(&report)?;
    } else {
        output::quota(&report);
    }
    Ok(())
}
