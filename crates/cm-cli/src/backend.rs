//! Where a command runs: on this host (the local database and engine, through cm-core's
//! `Manager`) or through a remote cm-api (`cm --api URL`). Both give cm-core's types back, so the
//! commands print the same output either way.

use std::time::Duration;

use cm_core::{
    Action, AuthorizedContainer, Command as ContainerCommand, ContainerSpec, ContainerStats, CreateForm,
    CreateOutcome, CreateRequest, DeleteOptions, DiskUsage, ExecOutput, KeyAdded, Lifecycle, Listing,
    LogRequest, Manager, OutputStream, Principal, QuotaReport, ReconcileOptions, ReconcileReport, SshInfo,
    StoredKey, UserId, UserQuota,
};
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::output;
use crate::remote::Remote;

/// The endpoint of a lifecycle change.
fn endpoint(what: Lifecycle) -> &'static str {
    match what {
        Lifecycle::Start => "start_container",
        Lifecycle::Stop => "stop_container",
        Lifecycle::Restart => "restart_container",
    }
}

/// The container `id` names, for `cm` on this host: it acts as the admin (whoever may run it can
/// read the database and drive the engine anyway).
async fn as_admin(m: &Manager, id: &str, action: Action) -> cm_core::Result<AuthorizedContainer> {
    m.authorized(&Principal::Admin, id, action).await
}

/// A container moved to another node.
pub struct Moved {
    pub spec: ContainerSpec,
    pub from: String,
    pub copied_bytes: u64,
    pub downtime_seconds: f64,
}

/// A deleted container.
pub struct Deleted {
    pub container_name: String,
    pub container_id: String,
    pub volume_name: String,
}

/// The local manager or a remote cm-api.
pub enum Backend {
    Local(Box<Manager>),
    Remote(Remote),
}

/// The exec time limit the server gets, plus the time the answer needs to come back.
const EXEC_SLACK: Duration = Duration::from_secs(30);

impl Backend {
    fn local(&self) -> Option<&Manager> {
        match self {
            Backend::Local(manager) => Some(manager),
            Backend::Remote(_) => None,
        }
    }

    /// The containers of one user, or of everyone.
    pub async fn list(&self, user: Option<&UserId>) -> cm_core::Result<Listing> {
        match self {
            Backend::Local(m) => match user {
                Some(user) => m.list_user(user).await,
                None => m.list_all().await,
            },
            Backend::Remote(r) => {
                // Without a user: the admin gets everyone's, a user token its own.
                let body = match user {
                    Some(user) => json!({ "user_id": user }),
                    None => json!({}),
                };
                r.fetch("list_containers", &body, None)
            }
        }
    }

    /// The SSH-enabled containers of one user, or of everyone.
    /// The nodes with what each holds (none on a single engine).
    pub async fn nodes(&self) -> cm_core::Result<Vec<output::NodeRow>> {
        match self {
            Backend::Local(m) => {
                let reports = m.nodes().await?;
                let value = serde_json::to_value(reports)
                    .map_err(|e| cm_core::Error::internal(format!("the nodes could not be shown: {e}")))?;
                shape(value, "list_nodes")
            }
            Backend::Remote(r) => r.fetch("list_nodes", &json!({}), Some("nodes")),
        }
    }

    pub async fn list_ssh(&self, user: Option<&UserId>) -> cm_core::Result<Listing> {
        match self {
            Backend::Local(m) => m.list_ssh(user).await,
            Backend::Remote(r) => {
                let body = match user {
                    Some(user) => json!({ "user_id": user }),
                    None => json!({}),
                };
                r.fetch("list_ssh_containers", &body, None)
            }
        }
    }

    /// One container with its live status and disk use. Remotely, secret-looking environment
    /// values come back as `***` (the API never sends them).
    /// One container, its disk use when capped, and how it is doing (`None` when the engine can
    /// not tell, such as for a container missing from it).
    pub async fn get(&self, id: &str) -> cm_core::Result<Found> {
        match self {
            Backend::Local(m) => {
                let spec = m.get(&as_admin(m, id, Action::ReadContainer).await?).await?;
                let usage = m.disk_usage(&spec).await?;
                let health = match m.health(&spec).await {
                    Ok(health) => Some(health),
                    Err(e) if e.kind() == cm_core::ErrorKind::NotFound => None,
                    Err(e) => return Err(e),
                };
                Ok(Found { spec, usage, health })
            }
            Backend::Remote(r) => {
                let params = json!({ "container_id": id, "health": true });
                let answer: Value = match r.fetch("get_container", &params, Some("container")) {
                    // A container missing from the engine has no health, and a cm-api older
                    // than health refuses the parameter: ask again without it.
                    Err(e)
                        if matches!(
                            e.kind(),
                            cm_core::ErrorKind::NotFound | cm_core::ErrorKind::InvalidInput
                        ) =>
                    {
                        r.fetch("get_container", &container(id), Some("container"))?
                    }
                    answer => answer?,
                };
                let usage = serde_json::from_value(answer["disk_usage"].clone()).ok();
                let health = serde_json::from_value(answer["health"].clone()).ok();
                Ok(Found {
                    spec: shape(answer, "get_container")?,
                    usage,
                    health,
                })
            }
        }
    }

    pub async fn create(
        &self,
        form: CreateForm,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> cm_core::Result<CreateOutcome> {
        match self {
            Backend::Local(m) => {
                let request = CreateRequest::parse(&form, m.config())?;
                m.create(request, progress).await
            }
            Backend::Remote(r) => {
                progress("creating through cm-api");
                let mut body = json!({
                    "user_id": form.user_id,
                    "container_type": form.container_type,
                    "env": form.env,
                    "enable_ssh": form.enable_ssh,
                    "ssh_keys": form.ssh_keys,
                });
                for (name, value) in [
                    ("image", form.image),
                    ("command", form.command),
                    ("memory", form.memory),
                    ("cpus", form.cpus),
                    ("node", form.node),
                ] {
                    if let Some(value) = value {
                        body[name] = json!(value);
                    }
                }
                let answer = r.call("create_container", &body)?;
                Ok(CreateOutcome {
                    spec: shape(answer["container"].clone(), "create_container")?,
                    route_error: answer["route_error"].as_str().map(str::to_owned),
                })
            }
        }
    }

    pub async fn lifecycle(&self, id: &str, action: Lifecycle) -> cm_core::Result<ContainerSpec> {
        match self {
            Backend::Local(m) => {
                m.lifecycle(&as_admin(m, id, action.action()).await?, action)
                    .await
            }
            Backend::Remote(r) => r.fetch(endpoint(action), &container(id), Some("container")),
        }
    }

    pub async fn stats(&self, id: &str) -> cm_core::Result<ContainerStats> {
        match self {
            Backend::Local(m) => m.stats(&as_admin(m, id, Action::ReadContainer).await?).await,
            Backend::Remote(r) => r.fetch("container_stats", &container(id), Some("stats")),
        }
    }

    /// Prints a container's logs (standard error to stderr where the engine tells them apart),
    /// following them until they end or Ctrl-C.
    pub async fn print_logs(&self, id: &str, request: LogRequest) -> cm_core::Result<()> {
        let Backend::Remote(r) = self else {
            let Some(m) = self.local() else { unreachable!() };
            let mut stream = m
                .logs(&as_admin(m, id, Action::ReadLogs).await?, &request)
                .await?;
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
            return Ok(());
        };
        let mut body = container(id);
        body["follow"] = json!(request.follow);
        body["timestamps"] = json!(request.timestamps);
        if let Some(tail) = request.tail {
            body["tail"] = json!(tail);
        }
        if let Some(since) = request.since {
            body["since"] = json!(humantime::format_rfc3339(since).to_string());
        }
        // The API interleaves both streams into one text.
        if request.follow {
            r.stream("container_logs", &body, output::raw)
        } else {
            let text: String = r.fetch("container_logs", &body, Some("logs"))?;
            output::raw(&text);
            Ok(())
        }
    }

    pub async fn exec(
        &self,
        id: &str,
        command: ContainerCommand,
        timeout: Duration,
    ) -> cm_core::Result<ExecOutput> {
        match self {
            Backend::Local(m) => {
                m.exec(&as_admin(m, id, Action::Exec).await?, command, timeout)
                    .await
            }
            Backend::Remote(r) => {
                let body = json!({
                    "container_id": id,
                    "command": command.args(),
                    "timeout": timeout.as_secs(),
                });
                let answer = r.call_within("container_exec", &body, timeout + EXEC_SLACK)?;
                shape(answer, "container_exec")
            }
        }
    }

    pub async fn delete(&self, id: &str, options: DeleteOptions) -> cm_core::Result<Deleted> {
        match self {
            Backend::Local(m) => {
                let spec = m
                    .delete(&as_admin(m, id, Action::DeleteContainer).await?, options)
                    .await?;
                Ok(Deleted {
                    container_name: spec.container_name.to_string(),
                    container_id: spec.container_id,
                    volume_name: spec.volume_name.to_string(),
                })
            }
            Backend::Remote(r) => {
                let mut body = container(id);
                body["force"] = json!(options.force);
                body["purge"] = json!(options.purge);
                let answer = r.call("delete_container", &body)?;
                let text = |field: &str| answer[field].as_str().unwrap_or_default().to_owned();
                Ok(Deleted {
                    container_name: text("deleted"),
                    container_id: text("container_id"),
                    volume_name: text("volume_name"),
                })
            }
        }
    }

    pub async fn update(&self, id: &str, image: Option<cm_core::ImageRef>) -> cm_core::Result<ContainerSpec> {
        match self {
            Backend::Local(m) => {
                m.update(&as_admin(m, id, Action::UpdateContainer).await?, image)
                    .await
            }
            Backend::Remote(r) => {
                let mut body = container(id);
                if let Some(image) = image {
                    body["image"] = json!(image.to_string());
                }
                r.fetch("update_container", &body, Some("container"))
            }
        }
    }

    /// Moves a container to another node with its data.
    pub async fn move_to(&self, id: &str, node: &str) -> cm_core::Result<Moved> {
        match self {
            Backend::Local(m) => {
                let node = cm_core::NodeName::parse(node.trim()).map_err(|e| e.for_field("node"))?;
                let container = as_admin(m, id, Action::UpdateContainer).await?;
                let moved = m.move_container(&container, &node).await?;
                Ok(Moved {
                    spec: moved.spec,
                    from: moved.from.to_string(),
                    copied_bytes: moved.copied_bytes,
                    downtime_seconds: moved.downtime.as_secs_f64(),
                })
            }
            Backend::Remote(r) => {
                let mut body = container(id);
                body["node"] = json!(node);
                let answer = r.call("move_container", &body)?;
                Ok(Moved {
                    spec: shape(answer["container"].clone(), "move_container")?,
                    from: answer["from"].as_str().unwrap_or_default().to_owned(),
                    copied_bytes: answer["copied_bytes"].as_u64().unwrap_or_default(),
                    downtime_seconds: answer["downtime_seconds"].as_f64().unwrap_or_default(),
                })
            }
        }
    }

    pub async fn reconcile(&self, options: ReconcileOptions) -> cm_core::Result<ReconcileReport> {
        match self {
            Backend::Local(m) => m.reconcile(options).await,
            Backend::Remote(r) => r.fetch(
                "reconcile",
                &json!({ "dry_run": options.dry_run, "prune": options.prune }),
                None,
            ),
        }
    }

    pub async fn add_ssh_key(&self, id: &str, key: &str) -> cm_core::Result<KeyAdded> {
        match self {
            Backend::Local(m) => {
                m.add_ssh_key(&as_admin(m, id, Action::AddSshKey).await?, key)
                    .await
            }
            Backend::Remote(r) => {
                let mut body = container(id);
                body["ssh_public_key"] = json!(key);
                r.fetch("add_ssh_key_to_container", &body, None)
            }
        }
    }

    pub async fn ssh_keys(&self, id: &str) -> cm_core::Result<Vec<StoredKey>> {
        match self {
            Backend::Local(m) => m.ssh_keys(&as_admin(m, id, Action::ReadSshInfo).await?).await,
            Backend::Remote(r) => r.fetch("list_container_ssh_keys", &container(id), Some("keys")),
        }
    }

    pub async fn remove_ssh_key(&self, id: &str, fingerprint: &str) -> cm_core::Result<bool> {
        match self {
            Backend::Local(m) => {
                m.remove_ssh_key(&as_admin(m, id, Action::RemoveSshKey).await?, fingerprint)
                    .await
            }
            Backend::Remote(r) => {
                let mut body = container(id);
                body["fingerprint"] = json!(fingerprint);
                r.fetch("remove_ssh_key_from_container", &body, Some("applied"))
            }
        }
    }

    pub async fn ssh_info(&self, id: &str) -> cm_core::Result<SshInfo> {
        match self {
            Backend::Local(m) => m.ssh_info(&as_admin(m, id, Action::ReadSshInfo).await?).await,
            Backend::Remote(r) => r.fetch("get_container_ssh_info", &container(id), None),
        }
    }

    pub async fn quota(&self, user: &UserId) -> cm_core::Result<QuotaReport> {
        match self {
            Backend::Local(m) => m.quota(user).await,
            Backend::Remote(r) => r.fetch("get_user_quota", &json!({ "user_id": user }), Some("quota")),
        }
    }

    pub async fn change_quota(
        &self,
        user: &UserId,
        changes: UserQuota,
        clear: bool,
    ) -> cm_core::Result<QuotaReport> {
        match self {
            Backend::Local(m) => m.change_quota(user, changes, clear).await,
            Backend::Remote(r) => {
                let mut body = json!({ "user_id": user, "clear": clear });
                if let Some(n) = changes.containers {
                    body["containers"] = json!(n);
                }
                if let Some(memory) = changes.memory {
                    body["memory"] = json!(memory.to_string());
                }
                if let Some(cpus) = changes.cpus {
                    body["cpus"] = json!(cpus.to_string());
                }
                if let Some(disk) = changes.disk {
                    body["disk"] = json!(disk.to_string());
                }
                r.fetch("set_user_quota", &body, Some("quota"))
            }
        }
    }
}

/// The body that names one container.
/// What `get` found.
pub struct Found {
    /// The record with its live status.
    pub spec: ContainerSpec,
    /// The capped volume's use.
    pub usage: Option<DiskUsage>,
    /// How it is doing.
    pub health: Option<cm_core::ContainerHealth>,
}

fn container(id: &str) -> Value {
    json!({ "container_id": id })
}

/// Reads an answer as `T`; another shape means another version of cm-api.
fn shape<T: serde::de::DeserializeOwned>(value: Value, endpoint: &str) -> cm_core::Result<T> {
    serde_json::from_value(value).map_err(|e| {
        cm_core::Error::new(
            cm_core::ErrorKind::Internal,
            format!("cm-api's answer to {endpoint} has an unexpected shape (another version?): {e}"),
        )
    })
}
