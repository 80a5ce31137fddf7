//! The commands of `cm`: parse arguments into cm-core types, call the manager, print.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use cm_core::{
    Command as ContainerCommand, CreateForm, CreateRequest, DeleteOptions, ErrorKind, Listing, LogRequest,
    Manager, OutputStream, ReconcileOptions, UserId,
};
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::cli::{
    Cli, Command, CreateArgs, NginxCommand, QuotaCommand, RoutesCommand, TokenCommand, VolumesCommand,
};
use crate::output;
use cm_wiring::{Settings, build_app, build_manager, load_settings, new_admin_key};

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
    let settings = load_settings()?;
    if let Command::Types = cli.command {
        let manager_types: Vec<_> = settings.config.types.values().collect();
        if json {
            output::json(&manager_types)?;
        } else {
            output::types(&manager_types);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Token(command) = cli.command {
        return token(&settings, command, json).await;
    }
    if let Command::Nginx(command) = cli.command {
        return nginx(settings, command, json).await;
    }
    let manager = build_manager(&settings).await?;

    match cli.command {
        Command::Create(args) => create(&manager, args, json).await?,
        Command::List { user_id, all } => {
            let listing = match user_id {
                Some(user) if !all => manager.list_user(&UserId::parse(&user)?).await?,
                _ => manager.list_all().await?,
            };
            print_listing(&listing, json)?;
        }
        Command::Get { id } => {
            let spec = match manager.get(&id).await {
                Ok(spec) => spec,
                // `cm get alice`: a user's id names no container, but the user's containers.
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    let listing = match UserId::parse(&id) {
                        Ok(user) => manager.list_user(&user).await?,
                        Err(_) => return Err(e.into()),
                    };
                    if listing.containers.is_empty() {
                        return Err(e.into());
                    }
                    print_listing(&listing, json)?;
                    return Ok(ExitCode::SUCCESS);
                }
                Err(e) => return Err(e.into()),
            };
            let usage = manager.disk_usage(&spec).await?;
            // Secret-looking values stay hidden, as in the API and the dashboard.
            let spec = cm_core::ContainerSpec {
                env: spec.env.redacted(),
                ..spec
            };
            if json {
                let mut value = serde_json::to_value(&spec)?;
                if let Some(usage) = usage {
                    value["disk_usage"] = serde_json::to_value(usage)?;
                }
                output::json(&value)?;
            } else {
                output::container(&spec, usage);
            }
        }
        Command::Start { id } => lifecycle(manager.start(&id).await?, "started", json)?,
        Command::Stop { id } => lifecycle(manager.stop(&id).await?, "stopped", json)?,
        Command::Restart { id } => lifecycle(manager.restart(&id).await?, "restarted", json)?,
        Command::Stats { id } => {
            let stats = manager.stats(&id).await?;
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
                since: since.as_deref().map(parse_since).transpose()?,
            };
            logs(&manager, &id, request).await?;
        }
        Command::Exec { id, command, timeout } => {
            let command = ContainerCommand::parse(&command)?;
            let result = manager.exec(&id, command, Duration::from_secs(timeout)).await?;
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
            let spec = manager.delete(&id, DeleteOptions { force, purge }).await?;
            if json {
                output::json(
                    &json!({ "deleted": spec.container_name, "container_id": spec.container_id, "purged": purge }),
                )?;
            } else if purge {
                output::line(&format!(
                    "deleted {} and its data volume {}",
                    spec.container_name, spec.volume_name
                ));
            } else {
                output::line(&format!(
                    "deleted {} (data kept in volume {}; --purge removes it)",
                    spec.container_name, spec.volume_name
                ));
            }
        }
        Command::Update { id, image } => {
            let image = image.as_deref().map(cm_core::ImageRef::parse).transpose()?;
            let spec = manager.update(&id, image).await?;
            if json {
                output::json(&spec)?;
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
        Command::Reconcile { dry_run, prune } => {
            let report = manager.reconcile(ReconcileOptions { dry_run, prune }).await?;
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
        Command::Health => {
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
                    Ok(info) => output::line(&format!(
                        "engine    ok: Docker {} (API {}, {})",
                        info.version, info.api_version, info.platform
                    )),
                    Err(e) => output::line(&format!("engine    down: {e}")),
                }
                let state = match (proxy.enabled, proxy.mode) {
                    (false, _) => "disabled",
                    (true, Some(cm_core::RoutingMode::Dynamic)) => "dynamic",
                    (true, _) => "files",
                };
                output::line(&format!("routing   {state}: {}", proxy.detail));
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
            if engine.is_err() {
                return Ok(ExitCode::from(3));
            }
        }
        Command::Routes { action } => {
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
        }
        Command::Volumes { action } => match action {
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
        },
        Command::AddSshKey { id, key } => {
            let added = manager.add_ssh_key(&id, &key).await?;
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
            let keys = manager.ssh_keys(&id).await?;
            if json {
                output::json(&keys)?;
            } else {
                output::keys(&keys);
            }
        }
        Command::RemoveSshKey { id, fingerprint } => {
            let applied = manager.remove_ssh_key(&id, &fingerprint).await?;
            if json {
                output::json(&json!({ "removed": fingerprint, "applied": applied }))?;
            } else {
                output::line(&format!("removed {fingerprint}"));
            }
        }
        Command::ListSsh { user_id } => {
            let user = user_id.as_deref().map(UserId::parse).transpose()?;
            let listing = manager.list_ssh(user.as_ref()).await?;
            print_listing(&listing, json)?;
        }
        Command::Ssh { id, connect } => {
            let info = manager.ssh_info(&id).await?;
            if connect {
                let host = settings
                    .config
                    .ssh
                    .server_host
                    .clone()
                    .unwrap_or_else(|| "127.0.0.1".into());
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
                if settings.config.ssh.server_host.is_none() {
                    eprintln!("note: set CM_SERVER_HOST (or [ssh] server_host) to show the real host name");
                }
            }
        }
        Command::Quota(command) => quota(&manager, command, json).await?,
        Command::GenerateKey
        | Command::Completions { .. }
        | Command::Types
        | Command::Token(_)
        | Command::Nginx(_) => {
            unreachable!("handled before the manager is built")
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn token(
    settings: &cm_wiring::Settings,
    command: TokenCommand,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let auth = build_app(settings).await?.auth;
    match command {
        TokenCommand::Create { user_id, expires } => {
            let user = UserId::parse(&user_id)?;
            let (record, secret) = auth.create_expiring_token(&user, expires.map(Into::into)).await?;
            if json {
                output::json(&json!({
                    "id": record.id,
                    "user_id": record.user_id,
                    "token": secret.expose(),
                    "expires_at": record.expires_at,
                }))?;
            } else {
                output::line(secret.expose());
                eprintln!(
                    "token {} for {} (shown once; it reaches only {}'s containers)",
                    record.id, record.user_id, record.user_id
                );
            }
        }
        TokenCommand::Revoke { user_or_token } => {
            let tokens = auth.tokens().await?;
            let removed = if tokens.iter().any(|t| t.id == user_or_token) {
                auth.revoke_token(&user_or_token).await?;
                1
            } else {
                auth.revoke_user_tokens(&UserId::parse(&user_or_token)?).await?
            };
            if json {
                output::json(&json!({ "revoked": removed }))?;
            } else {
                output::line(&format!("revoked {removed} token(s)"));
            }
        }
        TokenCommand::List => {
            let tokens = auth.tokens().await?;
            if json {
                output::json(&tokens)?;
            } else {
                let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
                let rows: Vec<Vec<String>> = tokens
                    .iter()
                    .map(|t| {
                        vec![
                            t.id.clone(),
                            t.user_id.to_string(),
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

async fn create(manager: &Manager, args: CreateArgs, json: bool) -> anyhow::Result<()> {
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
    };
    let request = CreateRequest::parse(&form, manager.config())?;
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
    let outcome = manager.create(request, &progress).await;
    if let Some(bar) = &spinner {
        bar.finish_and_clear();
    }
    let outcome = outcome?;
    if json {
        output::json(&outcome.spec)?;
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
    let proxy = manager.proxy_status();
    if let Some(route_error) = &outcome.route_error {
        eprintln!("warning: the container runs but its route was refused by nginx: {route_error}");
    } else if !proxy.enabled && !json {
        eprintln!(
            "note: no HTTP route ({}); the container answers on 127.0.0.1:{}",
            proxy.detail, outcome.spec.port
        );
    }
    Ok(())
}

fn lifecycle(spec: cm_core::ContainerSpec, verb: &str, json: bool) -> anyhow::Result<()> {
    if json {
        output::json(&spec)
    } else {
        output::line(&format!("{verb} {} ({})", spec.container_name, spec.status));
        Ok(())
    }
}

fn print_listing(listing: &Listing, json: bool) -> anyhow::Result<()> {
    if let Some(reason) = &listing.stale {
        eprintln!("warning: statuses are the stored ones, the engine could not be asked: {reason}");
    }
    if json {
        output::json(&listing.containers)
    } else {
        output::containers(&listing.containers);
        Ok(())
    }
}

/// `--since`: a duration ago (`10m`, `2h`, `1d`) or an RFC 3339 time.
fn parse_since(text: &str) -> anyhow::Result<std::time::SystemTime> {
    if let Ok(ago) = humantime::parse_duration(text) {
        return Ok(std::time::SystemTime::now() - ago);
    }
    humantime::parse_rfc3339_weak(text).map_err(|_| {
        anyhow::anyhow!(
            "invalid --since {text:?}: a duration such as 10m or 2h, or a time such as 2026-12-02T10:00:00Z"
        )
    })
}

async fn logs(manager: &Manager, id: &str, request: LogRequest) -> anyhow::Result<()> {
    let mut stream = manager.logs(id, &request).await?;
    loop {
        let next = tokio::select! {
            next = stream.next() => next,
            _ = tokio::signal::ctrl_c() => None,
        };
        let Some(chunk) = next else { break };
        let chunk = chunk?;
        match chunk.stream {
            OutputStream::Stdout => output::raw(&chunk.text),
            OutputStream::Stderr => eprint!("{}", chunk.text),
        }
    }
    Ok(())
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
async fn quota(manager: &Manager, command: QuotaCommand, json: bool) -> anyhow::Result<()> {
    let report = match command {
        QuotaCommand::Show { user_id } => manager.quota(&UserId::parse(&user_id)?).await?,
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
            manager.change_quota(&user, changes, clear).await?
        }
    };
    if json {
        output::json(&report)?;
    } else {
        output::quota(&report);
    }
    Ok(())
}
