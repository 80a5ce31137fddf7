//! The pages (GET): containers, details, delete confirmation, create form, users, SSH keys,
//! settings and logs.

use std::collections::{BTreeMap, BTreeSet};

use actix_web::http::StatusCode;
use actix_web::web::{Path, Query};
use cm_core::{
    Action, AdminKeySource, AuthorizedContainer, Config, CreateForm, CreateRequest, ErrorKind, Listing,
    LogRequest, NodeReport,
};
use futures_util::StreamExt;
use minijinja::Value;
use serde::{Deserialize, Serialize};

use super::listing::{ListParams, ListQuery, PAGE_SIZES, SORT_KEYS};
use super::render::PageError;
use super::viewer::{PageResult, Viewer};
use super::views::{
    ContainerView, DiskView, KeyView, STATUSES, TypeView, human_time, status_class, to_value,
};

/// The tail lengths the logs page offers.
pub const TAILS: [u64; 7] = [50, 100, 200, 500, 1000, 5000, 20000];
/// The tail the logs page shows unless told.
pub const DEFAULT_PAGE_TAIL: u64 = 200;
/// The most log text one page carries.
const PAGE_LOG_BYTES: usize = 4 * 1024 * 1024;

/// The fields of the create form, as typed.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct CreateFields {
    #[serde(default)]
    pub user_id: String,
    #[serde(default)]
    pub container_type: String,
    #[serde(default)]
    pub image: String,
    #[serde(default)]
    pub command: String,
    #[serde(default)]
    pub env: String,
    #[serde(default)]
    pub memory: String,
    #[serde(default)]
    pub cpus: String,
    #[serde(default)]
    pub enable_ssh: Option<String>,
    #[serde(default)]
    pub ssh_key: String,
    /// The node's name, or empty for the node with the most memory free (a runtime with nodes).
    #[serde(default)]
    pub node: String,
}

/// The core's refusal of a create, next to the field it is about.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FieldErrors {
    pub user_id: Option<String>,
    pub container_type: Option<String>,
    pub image: Option<String>,
    pub command: Option<String>,
    pub env: Option<String>,
    pub memory: Option<String>,
    pub cpus: Option<String>,
    pub ssh_key: Option<String>,
    pub node: Option<String>,
    /// An error about no one field.
    pub general: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct KeysQuery {
    container: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct TailQuery {
    tail: Option<String>,
}

impl FieldErrors {
    /// Puts a core error next to its field (or above the form).
    pub fn of(err: &cm_core::Error) -> Self {
        let mut errors = FieldErrors::default();
        errors.add(err);
        errors
    }

    /// Puts a core error next to its field (or above the form) unless that place has one
    /// already; the field it went to, `None` for above the form or a place already taken.
    fn add(&mut self, err: &cm_core::Error) -> Option<&'static str> {
        let (slot, field) = match err.field() {
            Some("user_id") => (&mut self.user_id, "user_id"),
            Some("container_type") => (&mut self.container_type, "container_type"),
            Some("image") => (&mut self.image, "image"),
            Some("command") => (&mut self.command, "command"),
            Some("env") => (&mut self.env, "env"),
            Some("memory") => (&mut self.memory, "memory"),
            Some("cpus") => (&mut self.cpus, "cpus"),
            Some("ssh_key" | "ssh_public_key") => (&mut self.ssh_key, "ssh_key"),
            Some("node") => (&mut self.node, "node"),
            _ => {
                if self.general.is_none() {
                    self.general = Some(err.message().to_owned());
                }
                return None;
            }
        };
        if slot.is_some() {
            return None;
        }
        *slot = Some(err.message().to_owned());
        Some(field)
    }
}

impl CreateFields {
    /// The core's form of these fields.
    pub fn form(&self) -> CreateForm {
        CreateForm {
            user_id: self.user_id.clone(),
            container_type: self.container_type.clone(),
            image: Some(self.image.clone()),
            command: Some(self.command.clone()),
            env: self.env.lines().map(str::to_owned).collect(),
            memory: Some(self.memory.clone()),
            cpus: Some(self.cpus.clone()),
            enable_ssh: self.enable_ssh.is_some(),
            ssh_keys: vec![self.ssh_key.clone()],
            node: Some(self.node.clone()),
        }
    }

    /// The core's request, or every field's error at once. The core stops at the first error,
    /// so each refused field is set aside (left empty, or a valid stand-in for the required
    /// user id and type) and the rest checked again, until the form passes or an error is
    /// about no one field. The SSH key, which the core reads only when it creates, is read here
    /// too, by the same parser; and the node, which the core checks only when it places the
    /// container, against `nodes` (the listing the form offered; `None` when the nodes could not
    /// be listed, and the core alone checks it).
    pub fn parse_all(
        &self,
        manager: &cm_core::Manager,
        nodes: Option<&[NodeReport]>,
    ) -> Result<CreateRequest, Box<FieldErrors>> {
        let config = manager.config();
        let first_type = manager.types().first().map(|t| t.name.to_string());
        let a_type = first_type.as_deref();
        let key_error = (!self.ssh_key.trim().is_empty())
            .then(|| manager.parse_ssh_key(&self.ssh_key).err())
            .flatten()
            .map(|e| e.for_field("ssh_key"));
        let node_error = nodes.and_then(|nodes| self.node_error(nodes));
        let mut request = self.parse_fields(config, a_type);
        for e in [key_error, node_error].into_iter().flatten() {
            match &mut request {
                Ok(_) => request = Err(Box::new(FieldErrors::of(&e))),
                Err(errors) => {
                    errors.add(&e);
                }
            }
        }
        request
    }

    /// Why the chosen node can not take the container, by the rule placement applies
    /// ([`NodeReport::takes_containers`]); `None` when it can or none was chosen.
    fn node_error(&self, nodes: &[NodeReport]) -> Option<cm_core::Error> {
        let chosen = self.node.trim();
        if chosen.is_empty() {
            return None;
        }
        let refuse = |message: String| Some(cm_core::Error::invalid(message).for_field("node"));
        if nodes.is_empty() {
            return refuse(format!(
                "this installation runs one engine: there is no node {chosen} to choose (nodes are a Swarm runtime's)"
            ));
        }
        let names: Vec<String> = node_choices(nodes)
            .iter()
            .map(|r| r.node.name.to_string())
            .collect();
        let offered = if names.is_empty() {
            "no node takes containers now".to_owned()
        } else {
            format!("choose {} or leave it automatic", names.join(", "))
        };
        match nodes.iter().find(|r| r.node.name.as_str() == chosen) {
            Some(report) if report.takes_containers() => None,
            Some(report) => refuse(format!(
                "node {chosen} takes no containers now (it is {}{}): {offered}",
                report.node.state.as_str(),
                if report.node.schedulable { "" } else { ", drained" },
            )),
            None => refuse(format!("there is no node {chosen}: {offered}")),
        }
    }

    fn parse_fields(&self, config: &Config, a_type: Option<&str>) -> Result<CreateRequest, Box<FieldErrors>> {
        let mut form = self.form();
        let mut errors = Box::new(FieldErrors::default());
        let mut failed = false;
        // Each round clears one field, so ten rounds cover every field (nine) and the last check.
        for _ in 0..10 {
            let err = match CreateRequest::parse(&form, config) {
                Ok(request) if !failed => return Ok(request),
                Ok(_) => return Err(errors),
                Err(e) => e,
            };
            failed = true;
            match errors.add(&err) {
                Some("user_id") => form.user_id = "placeholder".to_owned(),
                Some("container_type") => match a_type {
                    Some(name) => form.container_type = name.to_owned(),
                    None => return Err(errors),
                },
                Some("image") => form.image = Some(String::new()),
                Some("command") => form.command = Some(String::new()),
                Some("env") => form.env = Vec::new(),
                Some("memory") => form.memory = Some(String::new()),
                Some("cpus") => form.cpus = Some(String::new()),
                Some("ssh_key") => form.ssh_keys = vec![String::new()],
                Some("node") => form.node = None,
                _ => return Err(errors),
            }
        }
        Err(errors)
    }
}

impl Viewer {
    /// The containers the viewer may see: all for the admin, their own for a user.
    pub async fn listing(&self) -> Result<Listing, PageError> {
        self.require(Action::ReadContainer, None)?;
        let manager = &self.state().manager;
        match self.principal.scope() {
            Some(user) => manager.list_user(user).await,
            None => manager.list_all().await,
        }
        .map_err(|e| self.fail(e, "containers"))
    }
}

/// `GET /`: the containers, filtered, searched, sorted and one page of them.
pub async fn dashboard(viewer: Viewer, params: Query<ListParams>) -> PageResult {
    let listing = viewer.listing().await?;
    let users: BTreeSet<String> = listing.containers.iter().map(|c| c.user_id.to_string()).collect();
    let types: Vec<String> = viewer
        .state()
        .manager
        .types()
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    let idle = viewer.state().manager.idle_stopped().await.unwrap_or_default();
    let (query, mut ignored) = ListQuery::read(&params);
    let rows: Vec<ContainerView> = listing
        .containers
        .iter()
        .map(ContainerView::of)
        .map(|c| c.idle_marked(&idle))
        .collect();
    let list = query.apply(rows, &mut ignored);
    let here = query.link(query.sort, query.desc, list.page);
    let page = minijinja::context! {
        containers => to_value(&list.rows),
        list => to_value(&list),
        total => listing.containers.len(),
        filtered => query.narrowed(),
        filters => to_value(&query),
        ignored => to_value(&ignored),
        sort_keys => to_value(SORT_KEYS),
        page_sizes => to_value(PAGE_SIZES),
        here => here,
        users => to_value(&users),
        types => to_value(&types),
        statuses => to_value(STATUSES.iter().map(|s| s.as_str()).collect::<Vec<_>>()),
        stale => listing.stale,
        routing => viewer.state().manager.proxy_status().enabled,
    };
    viewer.render("containers", "dashboard.html", page)
}

/// `GET /containers/{name}`: one container, its environment, SSH access and keys.
pub async fn container(viewer: Viewer, name: Path<String>) -> PageResult {
    let container = viewer.container(&name, Action::ReadContainer).await?;
    let manager = &viewer.state().manager;
    let (spec, stale) = match manager.get(&container).await {
        Ok(live) => (live, None),
        Err(e) if e.kind() == ErrorKind::Unavailable => {
            let mut stored = container.spec().clone();
            stored.status = cm_core::ContainerStatus::Unknown;
            (stored, Some(e.message().to_owned()))
        }
        Err(e) => return Err(viewer.fail(e, "containers")),
    };
    let (ssh, keys) = ssh_details(&viewer, &container).await?;
    let disk = match manager.disk_usage(&spec).await {
        Ok(usage) => usage.map(DiskView::of),
        Err(e) => return Err(viewer.fail(e, "containers")),
    };
    let history = audit_views(&viewer, spec.container_name.as_str(), None, 20).await;
    // Where the admin may move it: the other nodes that take containers (none on one engine).
    let move_targets: Vec<String> = match (&spec.node, viewer.is_admin()) {
        (Some(here), true) => manager
            .nodes()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| &r.node.name != here && r.takes_containers())
            .map(|r| r.node.name.to_string())
            .collect(),
        _ => Vec::new(),
    };
    // How it is doing: the page shows it without it when the engine can not tell.
    let health = match stale {
        Some(_) => None,
        None => manager
            .health(&spec)
            .await
            .ok()
            .map(|h| super::health::HealthView::of(&h)),
    };
    let page = minijinja::context! {
        health => to_value(&health),
        history => to_value(&history),
        c => to_value(ContainerView::of(&spec).idle_marked(&manager.idle_stopped().await.unwrap_or_default())),
        disk_cap => spec.disk.map(|d| d.to_string()),
        disk => to_value(&disk),
        ssh => ssh,
        keys => to_value(&keys),
        stale => stale,
        routing => manager.proxy_status().enabled,
        move_targets => move_targets,
    };
    viewer.render("containers", "container.html", page)
}

/// One audit entry as the pages show it.
#[derive(Serialize)]
struct AuditView {
    at: String,
    actor: String,
    source: &'static str,
    action: String,
    target: Option<String>,
    result: String,
    ok: bool,
    address: Option<String>,
}

impl AuditView {
    fn of(entry: &cm_core::AuditEntry) -> Self {
        AuditView {
            at: entry.at.chars().take(19).collect::<String>().replace('T', " "),
            actor: match &entry.actor {
                cm_core::Actor::Admin => "admin".to_owned(),
                cm_core::Actor::User(user) => user.to_string(),
                cm_core::Actor::Local(name) => format!("{name} (cm)"),
                cm_core::Actor::Anonymous => "nobody".to_owned(),
                cm_core::Actor::System => "system".to_owned(),
            },
            source: entry.source.as_str(),
            action: entry.action.clone(),
            target: entry.target.clone(),
            ok: entry.result == "ok",
            result: entry.result.clone(),
            address: entry.address.map(|a| a.to_string()),
        }
    }
}

/// The newest audit entries about a container (or a user), as shown to `viewer`: only the
/// admin sees addresses. Empty when the server keeps no trail or it can not be read.
async fn audit_views(
    viewer: &Viewer,
    container: &str,
    user: Option<cm_core::UserId>,
    limit: usize,
) -> Vec<AuditView> {
    let Some(auditor) = &viewer.state().auditor else {
        return Vec::new();
    };
    let query = cm_core::AuditQuery {
        user,
        target: (!container.is_empty()).then(|| container.to_owned()),
        since: None,
        limit: Some(limit),
    };
    // A user sees what they and the admin did, not other users' tries.
    let shown = |entry: &&cm_core::AuditEntry| match (&viewer.principal, &entry.actor) {
        (cm_core::Principal::User(me), cm_core::Actor::User(actor)) => me == actor,
        (cm_core::Principal::User(_), cm_core::Actor::Anonymous) => false,
        _ => true,
    };
    match auditor.query(&query).await {
        Ok(entries) => entries
            .iter()
            .filter(shown)
            .map(AuditView::of)
            .map(|mut view| {
                if !viewer.is_admin() {
                    view.address = None;
                }
                view
            })
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "the audit trail could not be read");
            Vec::new()
        }
    }
}

/// Query parameters of `/audit`.
#[derive(serde::Deserialize)]
pub struct AuditFilter {
    user: Option<String>,
    container: Option<String>,
}

/// `GET /audit`: the trail, newest first, by user or container (admin only).
pub async fn audit(viewer: Viewer, filter: actix_web::web::Query<AuditFilter>) -> PageResult {
    viewer.require(Action::Administer, None)?;
    let user_text = filter.user.as_deref().map(str::trim).filter(|u| !u.is_empty());
    let container_text = filter
        .container
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    let (user, error) = match user_text.map(cm_core::UserId::parse) {
        None => (None, None),
        Some(Ok(user)) => (Some(user), None),
        Some(Err(e)) => (None, Some(e.message().to_owned())),
    };
    let container = match container_text {
        Some(reference) => viewer.state().manager.audit_target(reference).await.0,
        None => String::new(),
    };
    let entries = if error.is_some() {
        Vec::new()
    } else {
        audit_views(&viewer, &container, user, 200).await
    };
    let retention_days = viewer.state().manager.config().audit_retention.as_secs() / 86_400;
    let page = minijinja::context! {
        entries => to_value(&entries),
        show_address => true,
        user => user_text,
        container => container_text,
        error => error,
        retention_days => retention_days,
    };
    viewer.render("audit", "audit.html", page)
}

/// The SSH connection details and keys of an SSH-enabled container the viewer may read.
async fn ssh_details(
    viewer: &Viewer,
    container: &AuthorizedContainer,
) -> Result<(Value, Vec<KeyView>), PageError> {
    let spec = container.spec();
    if spec.ssh_port.is_none() || viewer.require(Action::ReadSshInfo, Some(&spec.user_id)).is_err() {
        return Ok((Value::from(()), Vec::new()));
    }
    let manager = &viewer.state().manager;
    let info = manager
        .ssh_info(container)
        .await
        .map_err(|e| viewer.fail(e, "keys"))?;
    let keys = manager
        .ssh_keys(container)
        .await
        .map_err(|e| viewer.fail(e, "keys"))?;
    Ok((to_value(&info), keys.iter().map(KeyView::of).collect()))
}

/// `GET /containers/{name}/delete`: the confirmation (admin only).
pub async fn delete_page(viewer: Viewer, name: Path<String>) -> PageResult {
    let container = viewer.container(&name, Action::DeleteContainer).await?;
    let spec = match viewer.state().manager.get(&container).await {
        Ok(live) => live,
        Err(_) => container.into_spec(),
    };
    let page = minijinja::context! { c => to_value(ContainerView::of(&spec)) };
    viewer.render("containers", "delete.html", page)
}

/// `GET /create`: the create form (admin only).
pub async fn create_page(viewer: Viewer) -> PageResult {
    viewer.require(Action::CreateContainer, None)?;
    let nodes = create_nodes(&viewer).await;
    create_form(
        &viewer,
        StatusCode::OK,
        &CreateFields::default(),
        &FieldErrors::default(),
        nodes.as_deref(),
    )
}

/// The nodes as a create sees them: empty on a single engine; `None` (logged) when they could
/// not be listed, so the form offers no choice and the core alone checks one.
pub async fn create_nodes(viewer: &Viewer) -> Option<Vec<NodeReport>> {
    match viewer.state().manager.nodes().await {
        Ok(nodes) => Some(nodes),
        Err(e) => {
            tracing::warn!(error = %e, "the nodes could not be listed for the create form");
            None
        }
    }
}

/// The nodes a create may choose: those that take containers, as placement has it.
fn node_choices(nodes: &[NodeReport]) -> Vec<&NodeReport> {
    nodes.iter().filter(|r| r.takes_containers()).collect()
}

/// Bytes as GiB with one decimal.
fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30))
}

/// One choice of the create form's node select.
#[derive(Serialize)]
struct NodeOption {
    value: String,
    label: String,
    selected: bool,
}

/// The create form's node select: automatic first, then each node that takes containers with
/// its free memory, and a chosen value that is none of those (refused, shown with its reason)
/// kept selected. Empty, and not shown, on a single engine with no node chosen.
fn node_options(nodes: &[NodeReport], chosen: &str) -> Vec<NodeOption> {
    let chosen = chosen.trim();
    let choices = node_choices(nodes);
    if choices.is_empty() && chosen.is_empty() {
        return Vec::new();
    }
    let mut options = vec![NodeOption {
        value: String::new(),
        label: "automatic (most free memory)".to_owned(),
        selected: chosen.is_empty(),
    }];
    options.extend(choices.iter().map(|r| NodeOption {
        value: r.node.name.to_string(),
        label: format!(
            "{} ({}, {} free)",
            r.node.name,
            if r.node.manager { "manager" } else { "worker" },
            gib(r.free_memory_bytes())
        ),
        selected: r.node.name.as_str() == chosen,
    }));
    if !chosen.is_empty() && !options.iter().any(|o| o.selected) {
        options.push(NodeOption {
            value: chosen.to_owned(),
            label: format!("{chosen} (not available)"),
            selected: true,
        });
    }
    options
}

/// The create form with the values typed so far and the core's refusal next to its field;
/// `nodes` as [`create_nodes`] listed them.
pub fn create_form(
    viewer: &Viewer,
    status: StatusCode,
    values: &CreateFields,
    errors: &FieldErrors,
    nodes: Option<&[NodeReport]>,
) -> PageResult {
    let types: Vec<TypeView> = viewer
        .state()
        .manager
        .types()
        .into_iter()
        .map(TypeView::of)
        .collect();
    let mut values = values.clone();
    if values.container_type.is_empty()
        && let Some(first) = types.first()
    {
        values.container_type = first.name.clone();
    }
    let node_options = node_options(nodes.unwrap_or_default(), &values.node);
    let page = minijinja::context! {
        types => to_value(&types),
        values => to_value(&values),
        errors => to_value(errors),
        node_options => to_value(&node_options),
    };
    viewer.render_status(status, "create", "create.html", page)
}

/// `GET /nodes` (admin only): the nodes of a Swarm runtime and what each holds.
pub async fn nodes(viewer: Viewer) -> PageResult {
    viewer.require(Action::Administer, None)?;
    #[derive(Serialize)]
    struct NodeView {
        name: String,
        state: &'static str,
        state_class: &'static str,
        schedulable: bool,
        role: &'static str,
        address: String,
        containers: usize,
        memory: String,
        cpus: String,
    }
    let (nodes, error) = match viewer.state().manager.nodes().await {
        Ok(reports) => (
            reports
                .iter()
                .map(|r| NodeView {
                    name: r.node.name.to_string(),
                    state: r.node.state.as_str(),
                    state_class: match r.node.state {
                        cm_core::NodeState::Ready => "ok",
                        cm_core::NodeState::Down => "bad",
                        cm_core::NodeState::Unknown => "warn",
                    },
                    schedulable: r.node.schedulable,
                    role: if r.node.manager { "manager" } else { "worker" },
                    address: r.node.address.to_string(),
                    containers: r.containers,
                    memory: format!("{} of {}", gib(r.reserved_memory_bytes), gib(r.node.memory_bytes)),
                    cpus: format!("{} of {}", r.reserved_cpus, r.node.cpus),
                })
                .collect(),
            None,
        ),
        Err(e) => (Vec::new(), Some(e.message().to_owned())),
    };
    let page = minijinja::context! { nodes => to_value(&nodes), error => error };
    viewer.render("nodes", "nodes.html", page)
}

/// `GET /users`: users with their containers and tokens (admin only).
pub async fn users(viewer: Viewer) -> PageResult {
    viewer.require(Action::Administer, None)?;
    let state = viewer.state();
    let listing = state
        .manager
        .list_all()
        .await
        .map_err(|e| viewer.fail(e, "users"))?;
    let tokens = state.auth.tokens().await.map_err(|e| viewer.fail(e, "users"))?;

    #[derive(Default, Serialize)]
    struct UserView {
        id: String,
        containers: Vec<ContainerView>,
        tokens: Vec<TokenView>,
    }
    #[derive(Serialize)]
    struct TokenView {
        id: String,
        created: String,
    }
    let mut users: BTreeMap<String, UserView> = BTreeMap::new();
    let entry = |users: &mut BTreeMap<String, UserView>, id: &str| {
        users.entry(id.to_owned()).or_insert_with(|| UserView {
            id: id.to_owned(),
            ..UserView::default()
        });
    };
    for spec in &listing.containers {
        let id = spec.user_id.to_string();
        entry(&mut users, &id);
        if let Some(user) = users.get_mut(&id) {
            user.containers.push(ContainerView::of(spec));
        }
    }
    for token in &tokens {
        let id = token.user_id.to_string();
        entry(&mut users, &id);
        if let Some(user) = users.get_mut(&id) {
            user.tokens.push(TokenView {
                id: token.id.clone(),
                created: human_time(&token.created_at),
            });
        }
    }
    let users: Vec<UserView> = users.into_values().collect();
    let page = minijinja::context! {
        users => to_value(&users),
        token_count => tokens.len(),
        stale => listing.stale,
    };
    viewer.render("users", "users.html", page)
}

/// `GET /keys`: SSH-enabled containers, their connection strings and keys; add a key.
pub async fn keys(viewer: Viewer, query: Query<KeysQuery>) -> PageResult {
    keys_page(&viewer, StatusCode::OK, query.container.as_deref(), "", None).await
}

/// The SSH keys page with `selected` chosen, the key text typed so far and the reason it was
/// refused (next to the field), if it was.
pub async fn keys_page(
    viewer: &Viewer,
    status: StatusCode,
    selected: Option<&str>,
    typed: &str,
    error: Option<&str>,
) -> PageResult {
    viewer.require(Action::ReadSshInfo, None)?;
    let manager = &viewer.state().manager;
    let (listed, stale) = manager
        .ssh_containers_for(&viewer.principal, Action::ReadSshInfo)
        .await
        .map_err(|e| viewer.fail(e, "keys"))?;

    #[derive(Serialize)]
    struct SshContainer {
        c: ContainerView,
        info: Value,
        keys: Vec<KeyView>,
    }
    let mut containers = Vec::new();
    for container in &listed {
        let (info, keys) = ssh_details(viewer, container).await?;
        containers.push(SshContainer {
            c: ContainerView::of(container.spec()),
            info,
            keys,
        });
    }
    let selected = selected
        .filter(|wanted| containers.iter().any(|s| s.c.name == *wanted))
        .map(str::to_owned)
        .or_else(|| containers.first().map(|s| s.c.name.clone()))
        .unwrap_or_default();
    let page = minijinja::context! {
        containers => to_value(&containers),
        selected => selected,
        stale => stale,
        key_text => typed,
        key_error => error,
    };
    viewer.render_status(status, "keys", "keys.html", page)
}

/// `GET /settings`: types, port pool, nginx, engine, reconciler, admin key (admin only).
pub async fn settings(viewer: Viewer) -> PageResult {
    viewer.require(Action::Administer, None)?;
    let state = viewer.state();
    let manager = &state.manager;
    let config = manager.config();
    let types: Vec<TypeView> = manager.types().into_iter().map(TypeView::of).collect();
    let pool = config.port_pool;
    let leased: Vec<u16> = manager
        .leased_ports()
        .await
        .map_err(|e| viewer.fail(e, "settings"))?
        .into_iter()
        .collect();
    let in_pool = leased.iter().filter(|p| pool.contains(**p)).count();
    let engine = match manager.engine_info().await {
        Ok(info) => minijinja::context! {
            ok => true,
            version => info.version,
            api_version => info.api_version,
            platform => info.platform,
            error => Value::from(()),
        },
        Err(e) => minijinja::context! { ok => false, error => e.message() },
    };
    let proxy = manager.proxy_status();
    let reconcile = state.reconciler.status(state.statuses.as_deref());
    let report = reconcile.last_report.as_ref().map(|r| {
        minijinja::context! {
            started => human_time(&r.started_at),
            duration_ms => r.duration_ms,
            dry_run => r.dry_run,
            records => r.records,
            findings => to_value(&r.findings),
        }
    });
    let page = minijinja::context! {
        types => to_value(&types),
        pool => minijinja::context! {
            range => pool.to_string(),
            total => pool.len(),
            leased => in_pool,
            free => pool.len().saturating_sub(in_pool),
            ports => to_value(&leased),
        },
        proxy => minijinja::context! {
            enabled => proxy.enabled,
            detail => proxy.detail,
            reloads => proxy.reloads,
            last_reload => proxy.last_reload.as_ref().map(|r| minijinja::context! {
                at => human_time(&r.at),
                error => r.error.clone(),
            }),
            mode => to_value(proxy.mode),
            listen => config.nginx.listen.to_string(),
            host => to_value(config.routing.host),
            available_dir => config.nginx.available_dir.display().to_string(),
            enabled_dir => config.nginx.enabled_dir.display().to_string(),
        },
        engine => engine,
        reconciler => minijinja::context! {
            report => report,
            error => reconcile.last_error.as_ref().map(|e| minijinja::context! {
                at => human_time(&e.at),
                message => e.message.clone(),
            }),
            interval => reconcile.interval_seconds,
            live => reconcile.live_statuses,
        },
        admin_key_from_env => state.auth.admin_key_source() == AdminKeySource::Environment,
        ssh => minijinja::context! {
            bind => config.ssh.bind_address.to_string(),
            host => config.ssh.server_host.clone(),
        },
    };
    viewer.render("settings", "settings.html", page)
}

/// `GET /logs/{name}`: the last lines of a container's output, and a follow switch.
pub async fn logs(viewer: Viewer, name: Path<String>, query: Query<TailQuery>) -> PageResult {
    let container = viewer.container(&name, Action::ReadLogs).await?;
    let tail = match query.tail.as_deref().map(str::trim) {
        None | Some("") => DEFAULT_PAGE_TAIL,
        Some(text) => match text.parse::<u64>() {
            Ok(n) if n <= crate::routes::MAX_TAIL => n,
            _ => {
                return Err(viewer.refuse(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("tail must be a number of lines up to {}", crate::routes::MAX_TAIL),
                ));
            }
        },
    };
    let request = LogRequest {
        tail: Some(usize::try_from(tail).unwrap_or(usize::MAX)),
        follow: false,
        ..LogRequest::default()
    };
    let manager = &viewer.state().manager;
    let mut text = String::new();
    let mut truncated = false;
    let mut error = None;
    match manager.logs(&container, &request).await {
        Ok(mut stream) => {
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(chunk) if text.len() + chunk.text.len() <= PAGE_LOG_BYTES => {
                        text.push_str(&chunk.text)
                    }
                    Ok(_) => {
                        truncated = true;
                        break;
                    }
                    Err(e) => {
                        error = Some(e.message().to_owned());
                        break;
                    }
                }
            }
        }
        Err(e) => error = Some(e.message().to_owned()),
    }
    let status = manager
        .get(&container)
        .await
        .map_or(cm_core::ContainerStatus::Unknown, |s| s.status);
    let spec = container.spec();
    let mut tails: Vec<u64> = TAILS.to_vec();
    if !tails.contains(&tail) {
        tails.push(tail);
        tails.sort_unstable();
    }
    let history = audit_views(&viewer, spec.container_name.as_str(), None, 20).await;
    let page = minijinja::context! {
        history => to_value(&history),
        c => to_value(ContainerView::of(spec)),
        status => status.as_str(),
        status_class => status_class(status),
        tail => tail,
        tails => tails,
        text => text,
        truncated => truncated,
        error => error,
    };
    viewer.render("containers", "logs.html", page)
}
