//! The fake container engine: containers, networks, volumes, files and events in memory, and
//! failures injected at a chosen operation.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use crate::error::{Error, ErrorKind, Result};
use crate::names::VolumeName;
use crate::network::{PortRange, Subnet};
use crate::ports::{
    ContainerEvent, ContainerPlan, ContainerRuntime, ContainerStats, EngineContainer, EngineInfo, Ensured,
    EventStream, ExecOutput, ExecRequest, ForeignContainer, LogChunk, LogRequest, LogStream, NetworkPlan,
    ObservedContainer, ObservedObject, OutputStream, RemoveMode, UploadEntry, VolumePlan,
};
use crate::spec::{ContainerStatus, labels};
use crate::values::{EnvVars, ImageRef};

/// The header of `/proc/net/tcp` in a fake container: no connection at all.
pub const FAKE_TCP_TABLE: &str =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";

/// Engine operations a test can make fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FakeOp {
    /// `engine_info`.
    EngineInfo,
    /// `ensure_network`.
    EnsureNetwork,
    /// `remove_network`.
    RemoveNetwork,
    /// `ensure_volume`.
    EnsureVolume,
    /// `remove_volume`.
    RemoveVolume,
    /// `copy_volume` (a move).
    CopyVolume,
    /// `create_container`.
    CreateContainer,
    /// `start_container`.
    StartContainer,
    /// `stop_container`.
    StopContainer,
    /// `remove_container`.
    RemoveContainer,
    /// `inspect_container`.
    Inspect,
    /// `upload`.
    Upload,
}

/// A container in the fake engine.
#[derive(Debug, Clone)]
pub struct FakeContainer {
    /// Its id.
    pub id: String,
    /// Its current name (the plan's, unless renamed).
    pub name: String,
    /// The plan it was created from.
    pub plan: ContainerPlan,
    /// Its state.
    pub status: ContainerStatus,
    /// Files uploaded into it, by absolute path, with their mode and owner.
    pub files: BTreeMap<String, (u32, u64, Option<Vec<u8>>)>,
    /// How often the engine restarted it since its last deliberate start.
    pub restart_count: i64,
    /// Its last run's exit code.
    pub exit_code: i64,
}

#[derive(Default)]
struct Engine {
    down: bool,
    failing: BTreeMap<FakeOp, ErrorKind>,
    images: BTreeSet<String>,
    /// Images whose containers exit at once, again and again (see [`FakeRuntime::add_crashing_image`]).
    crashing_images: BTreeSet<String>,
    next_id: u64,
    containers: BTreeMap<String, FakeContainer>,
    networks: BTreeMap<String, NetworkPlan>,
    volumes: BTreeMap<String, BTreeMap<String, String>>,
    /// The caps of capped volumes (recorded, not enforced), in bytes.
    volume_caps: BTreeMap<String, u64>,
    foreign_ports: BTreeSet<u16>,
    /// Ports someone grabs between the probe and the bind: a start publishing one fails.
    grabbed_ports: BTreeSet<u16>,
    events: Option<tokio::sync::broadcast::Sender<ContainerEvent>>,
    /// The nodes of a cluster (see [`FakeRuntime::set_nodes`]); none for a single engine.
    nodes: Vec<crate::ports::NodeInfo>,
    /// Set when renames are refused, as Swarm refuses them (see [`FakeRuntime::refuse_renames`]).
    no_renames: bool,
    /// Volumes copied between nodes: (volume, from, to).
    copies: Vec<(String, String, String)>,
    /// Volumes removed from one node: (volume, node).
    removed_on: Vec<(String, String)>,
    /// Set when every start is a new container, as on Swarm (see [`FakeRuntime::start_afresh`]).
    fresh_starts: bool,
    /// Holds `copy_volume` until released (see [`FakeRuntime::hold_copies`]).
    copy_gate: Option<CopyGate>,
}

/// A held `copy_volume`: `entered` is notified when a copy reaches the gate, which then waits
/// for `release`.
#[derive(Clone, Default)]
pub struct CopyGate {
    /// Notified when a copy waits at the gate.
    pub entered: Arc<tokio::sync::Notify>,
    /// Lets the waiting copy go on.
    pub release: Arc<tokio::sync::Notify>,
}

impl Engine {
    fn emit(&self, id: &str, action: &str) {
        if let Some(events) = &self.events {
            let _ = events.send(ContainerEvent {
                id: id.to_owned(),
                action: action.to_owned(),
            });
        }
    }
}

/// An in-memory container engine.
#[derive(Default)]
pub struct FakeRuntime {
    engine: Mutex<Engine>,
}

impl FakeRuntime {
    /// An engine that knows the images of the default configuration.
    pub fn new() -> Self {
        let runtime = FakeRuntime::default();
        runtime.add_image("toolboxv2:latest");
        runtime.add_image("toolboxv2:dev");
        runtime
    }

    fn engine(&self) -> MutexGuard<'_, Engine> {
        self.engine.lock().unwrap()
    }

    /// Puts a file into a container (such as `/proc/net/tcp`, which `cat` then shows).
    pub fn put_file(&self, id: &str, path: &str, contents: &str) {
        if let Some(c) = self.engine().containers.get_mut(id) {
            c.files
                .insert(path.to_owned(), (0o444, 0, Some(contents.as_bytes().to_vec())));
        }
    }

    /// Makes an image available.
    pub fn add_image(&self, image: &str) {
        self.engine().images.insert(image.to_owned());
    }

    /// Makes the container named `name` exit with code 1 again and again from now on, as if
    /// its program started failing: the engine restarts it and it crash-loops.
    pub fn crash_loop(&self, name: &str) {
        let mut engine = self.engine();
        let id = engine.containers.values_mut().find(|c| c.name == name).map(|c| {
            c.status = ContainerStatus::CrashLooping;
            c.restart_count = crate::spec::CRASH_LOOP_RESTARTS;
            c.exit_code = 1;
            c.id.clone()
        });
        if let Some(id) = id {
            engine.emit(&id, "die");
        }
    }

    /// Makes `image` known, with a program that exits with code 1 at once: its containers
    /// crash-loop from their first start.
    pub fn add_crashing_image(&self, image: &str) {
        let mut engine = self.engine();
        engine.images.insert(image.to_owned());
        engine.crashing_images.insert(image.to_owned());
    }

    /// Makes `op` fail with `kind` until [`FakeRuntime::heal`].
    pub fn fail(&self, op: FakeOp, kind: ErrorKind) {
        self.engine().failing.insert(op, kind);
    }

    /// Stops every injected failure.
    pub fn heal(&self) {
        self.engine().failing.clear();
    }

    /// Takes the whole engine down (every call is `Unavailable`) or brings it back.
    pub fn set_down(&self, down: bool) {
        let mut engine = self.engine();
        engine.down = down;
        if down {
            // As a real engine's: its event streams end when it goes away.
            engine.events = None;
        }
    }

    /// Pretends someone binds `port` on the host unseen by the probe, just before our start: a
    /// start publishing it fails as the engine's "port is already allocated" does.
    pub fn grab_port_at_bind(&self, port: u16) {
        self.engine().grabbed_ports.insert(port);
    }

    /// Pretends a container we do not own publishes `port`.
    pub fn publish_foreign_port(&self, port: u16) {
        self.engine().foreign_ports.insert(port);
    }

    /// The containers.
    pub fn containers(&self) -> Vec<FakeContainer> {
        self.engine().containers.values().cloned().collect()
    }

    /// The container names.
    pub fn container_names(&self) -> Vec<String> {
        self.engine()
            .containers
            .values()
            .map(|c| c.name.clone())
            .collect()
    }

    /// The network names.
    pub fn networks(&self) -> Vec<String> {
        self.engine().networks.keys().cloned().collect()
    }

    /// The volume names.
    pub fn volumes(&self) -> Vec<String> {
        self.engine().volumes.keys().cloned().collect()
    }

    /// Changes a container's state behind the manager's back (a crash, `docker stop`).
    pub fn set_status(&self, id: &str, status: ContainerStatus) {
        let mut engine = self.engine();
        if let Some(c) = engine.containers.get_mut(id) {
            c.status = status;
            engine.emit(id, "die");
        }
    }

    /// Makes every start a new container, as on Swarm: a restart loses the files outside the
    /// volume, and [`ContainerRuntime::starts_afresh`] says so.
    pub fn start_afresh(&self) {
        self.engine().fresh_starts = true;
    }

    /// The runtime restarting a container by itself (its process died; the restart policy brings
    /// it back): `die`, then `start`; on a runtime that starts afresh, its files are gone.
    pub fn restart_behind_back(&self, id: &str) {
        let mut engine = self.engine();
        let fresh = engine.fresh_starts;
        if let Some(c) = engine.containers.get_mut(id) {
            if fresh {
                c.files.clear();
            }
            c.status = ContainerStatus::Running;
            c.restart_count += 1;
            engine.emit(id, "die");
            engine.emit(id, "start");
        }
    }

    /// Holds every `copy_volume` (a move's copy) at a gate until the test releases it.
    pub fn hold_copies(&self) -> CopyGate {
        let gate = CopyGate::default();
        self.engine().copy_gate = Some(gate.clone());
        gate
    }

    /// Removes a container behind the manager's back (`docker rm -f`).
    pub fn remove_behind_back(&self, id: &str) {
        let mut engine = self.engine();
        engine.containers.remove(id);
        engine.emit(id, "destroy");
    }

    /// Makes it a cluster of `nodes` (a create then places containers on them).
    pub fn set_nodes(&self, nodes: Vec<crate::ports::NodeInfo>) {
        self.engine().nodes = nodes;
    }

    /// Refuses renames from now on, as Swarm does (an update then replaces containers).
    pub fn refuse_renames(&self) {
        self.engine().no_renames = true;
    }

    /// The volumes copied between nodes, as (volume, from, to).
    pub fn copies(&self) -> Vec<(String, String, String)> {
        self.engine().copies.clone()
    }

    /// The volumes removed from one node, as (volume, node).
    pub fn removed_on(&self) -> Vec<(String, String)> {
        self.engine().removed_on.clone()
    }

    /// Sets a node's state (a node that is down shows its containers as `node-down`).
    pub fn set_node_state(&self, name: &str, state: crate::ports::NodeState) {
        for node in &mut self.engine().nodes {
            if node.name.as_str() == name {
                node.state = state;
            }
        }
    }

    /// Adds a container that wears our labels but that the manager never made.
    pub fn add_foreign(&self, name: &str, labels: BTreeMap<String, String>) -> String {
        let mut engine = self.engine();
        engine.next_id += 1;
        let id = format!("{:02x}f0e1{}", engine.next_id, "0".repeat(58));
        let template = engine.containers.values().next().map(|c| c.plan.clone());
        let plan = ContainerPlan {
            labels,
            ..template.unwrap_or_else(|| unreachable!("add_foreign needs one container first"))
        };
        engine.containers.insert(
            id.clone(),
            FakeContainer {
                id: id.clone(),
                name: name.to_owned(),
                plan,
                status: ContainerStatus::Running,
                files: BTreeMap::new(),
                restart_count: 0,
                exit_code: 0,
            },
        );
        id
    }

    /// Adds a container as the Python original made it: `labels`, its data in `volume`, `env`.
    pub fn add_original(
        &self,
        name: &str,
        labels: BTreeMap<String, String>,
        volume: &str,
        env: &[(&str, &str)],
    ) -> String {
        let id = self.add_foreign(name, labels);
        let mut engine = self.engine();
        let container = engine.containers.get_mut(&id).unwrap();
        container.plan.volume = VolumeName::parse(volume).unwrap();
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        container.plan.env = EnvVars::try_from(env).unwrap();
        container.plan.image = ImageRef::parse("toolboxv2:latest").unwrap();
        id
    }

    /// Adds a volume that wears our labels.
    pub fn add_volume(&self, name: &str, labels: BTreeMap<String, String>) {
        self.engine().volumes.insert(name.to_owned(), labels);
    }

    fn check(&self, op: FakeOp) -> Result<MutexGuard<'_, Engine>> {
        let engine = self.engine();
        if engine.down {
            return Err(Error::unavailable("docker engine is not reachable (fake)"));
        }
        if let Some(kind) = engine.failing.get(&op) {
            return Err(Error::new(*kind, format!("injected failure at {op:?}")));
        }
        Ok(engine)
    }

    fn observed(c: &FakeContainer, nodes: &[crate::ports::NodeInfo]) -> ObservedContainer {
        // Like Swarm: a container on a node that is down can not be seen running.
        let node_down = c.plan.node.as_ref().is_some_and(|name| {
            nodes
                .iter()
                .any(|n| &n.name == name && n.state == crate::ports::NodeState::Down)
        });
        ObservedContainer {
            id: c.id.clone(),
            name: c.name.clone(),
            status: if node_down {
                ContainerStatus::NodeDown
            } else {
                c.status
            },
            image: c.plan.image.to_string(),
            labels: c.plan.labels.clone(),
            start_error: None,
            restart_count: Some(c.restart_count),
            exit_code: Some(c.exit_code),
        }
    }
}

#[async_trait]
impl ContainerRuntime for FakeRuntime {
    async fn engine_info(&self) -> Result<EngineInfo> {
        let _engine = self.check(FakeOp::EngineInfo)?;
        Ok(EngineInfo {
            version: "fake".into(),
            api_version: "1.41".into(),
            platform: "memory".into(),
            runtime: "docker".into(),
            weaker: Vec::new(),
        })
    }

    async fn ensure_network(&self, plan: &NetworkPlan) -> Result<Ensured> {
        let mut engine = self.check(FakeOp::EnsureNetwork)?;
        if let Some(existing) = engine.networks.get(plan.name.as_str()) {
            // Like cm-docker: a network of the name that is someone else's is a conflict.
            if owner_of(&existing.labels) != owner_of(&plan.labels) {
                return Err(Error::conflict(format!(
                    "network {} belongs to someone else",
                    plan.name
                )));
            }
            return Ok(Ensured::Existing);
        }
        engine.networks.insert(plan.name.to_string(), plan.clone());
        Ok(Ensured::Created)
    }

    async fn remove_network(&self, name: &str) -> Result<()> {
        let mut engine = self.check(FakeOp::RemoveNetwork)?;
        if engine
            .containers
            .values()
            .any(|c| c.plan.network.as_str() == name)
        {
            return Err(Error::conflict(format!("network {name} has containers attached")));
        }
        engine.networks.remove(name);
        Ok(())
    }

    async fn network_subnets(&self) -> Result<BTreeSet<Subnet>> {
        let engine = self.check(FakeOp::EnsureNetwork)?;
        Ok(engine.networks.values().map(|n| n.subnet).collect())
    }

    async fn ensure_volume(&self, plan: &VolumePlan) -> Result<Ensured> {
        let mut engine = self.check(FakeOp::EnsureVolume)?;
        if let Some(existing) = engine.volumes.get(plan.name.as_str()) {
            if owner_of(existing) != owner_of(&plan.labels) {
                return Err(Error::conflict(format!(
                    "volume {} belongs to someone else",
                    plan.name
                )));
            }
            return Ok(Ensured::Existing);
        }
        engine.volumes.insert(plan.name.to_string(), plan.labels.clone());
        if let Some(size) = plan.size {
            engine.volume_caps.insert(plan.name.to_string(), size.bytes());
        }
        Ok(Ensured::Created)
    }

    fn disk_support(&self) -> crate::ports::DiskSupport {
        crate::ports::DiskSupport {
            enforced: true,
            detail: "fake: caps are recorded, not enforced".to_owned(),
        }
    }

    async fn volume_usage(&self, name: &str) -> Result<Option<crate::ports::DiskUsage>> {
        let engine = self.check(FakeOp::Inspect)?;
        Ok(engine
            .volume_caps
            .get(name)
            .map(|&size_bytes| crate::ports::DiskUsage {
                size_bytes,
                used_bytes: size_bytes / 4,
            }))
    }

    async fn remove_volume(&self, name: &str) -> Result<()> {
        let mut engine = self.check(FakeOp::RemoveVolume)?;
        // Like the engine: a volume a container holds (running or not) stays.
        if engine.containers.values().any(|c| c.plan.volume.as_str() == name) {
            return Err(Error::conflict(format!("volume {name} is in use")));
        }
        engine.volumes.remove(name);
        engine.volume_caps.remove(name);
        Ok(())
    }

    async fn create_container(&self, plan: &ContainerPlan) -> Result<String> {
        let mut engine = self.check(FakeOp::CreateContainer)?;
        if !engine.images.contains(plan.image.as_str()) {
            return Err(Error::not_found(format!("no such image: {}", plan.image)));
        }
        if engine.containers.values().any(|c| c.name == plan.name.as_str()) {
            return Err(Error::conflict(format!("name {} is in use", plan.name)));
        }
        engine.next_id += 1;
        let id = format!("{:02x}c0ffee{}", engine.next_id, "0".repeat(56));
        let container = FakeContainer {
            id: id.clone(),
            name: plan.name.to_string(),
            plan: plan.clone(),
            status: ContainerStatus::Created,
            restart_count: 0,
            exit_code: 0,
            // Its TCP table: nothing connected (see [`FakeRuntime::put_file`]).
            files: BTreeMap::from([(
                "/proc/net/tcp".to_owned(),
                (0o444, 0, Some(FAKE_TCP_TABLE.as_bytes().to_vec())),
            )]),
        };
        engine.containers.insert(id.clone(), container);
        Ok(id)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        let mut engine = self.check(FakeOp::StartContainer)?;
        let grabbed = engine.grabbed_ports.clone();
        let crashing_images = engine.crashing_images.clone();
        let c = engine
            .containers
            .get_mut(id)
            .ok_or_else(|| Error::not_found(format!("no such container: {id}")))?;
        let crashing = crashing_images.contains(c.plan.image.as_str());
        if let Some(port) = c
            .plan
            .ports
            .iter()
            .map(|p| p.host_port)
            .find(|p| grabbed.contains(p))
        {
            return Err(Error::conflict(format!(
                "Bind for 127.0.0.1:{port} failed: port is already allocated (fake)"
            ))
            .for_field(crate::PORT_TAKEN_FIELD));
        }
        if crashing {
            c.status = ContainerStatus::observed("restarting", crate::spec::CRASH_LOOP_RESTARTS);
            c.restart_count = crate::spec::CRASH_LOOP_RESTARTS;
            c.exit_code = 1;
        } else {
            c.status = ContainerStatus::Running;
            c.restart_count = 0;
            c.exit_code = 0;
        }
        engine.emit(id, "start");
        Ok(())
    }

    async fn stop_container(&self, id: &str) -> Result<()> {
        let mut engine = self.check(FakeOp::StopContainer)?;
        let c = engine
            .containers
            .get_mut(id)
            .ok_or_else(|| Error::not_found(format!("no such container: {id}")))?;
        c.status = ContainerStatus::Exited;
        engine.emit(id, "die");
        Ok(())
    }

    async fn restart_container(&self, id: &str) -> Result<()> {
        let mut engine = self.check(FakeOp::StartContainer)?;
        let c = engine
            .containers
            .get_mut(id)
            .ok_or_else(|| Error::not_found(format!("no such container: {id}")))?;
        c.status = ContainerStatus::Running;
        // Like the engine: the old process dies, a new one starts.
        engine.emit(id, "die");
        engine.emit(id, "start");
        Ok(())
    }

    async fn remove_container(&self, id: &str, mode: RemoveMode) -> Result<()> {
        let mut engine = self.check(FakeOp::RemoveContainer)?;
        if let Some(c) = engine.containers.get(id)
            && c.status == ContainerStatus::Running
            && mode == RemoveMode::IfStopped
        {
            return Err(Error::conflict("container is running"));
        }
        if engine.containers.remove(id).is_some() {
            engine.emit(id, "destroy");
        }
        Ok(())
    }

    async fn nodes(&self) -> Result<Vec<crate::ports::NodeInfo>> {
        let engine = self.check(FakeOp::Inspect)?;
        Ok(engine.nodes.clone())
    }

    async fn inspect_container(&self, id_or_name: &str) -> Result<Option<ObservedContainer>> {
        let engine = self.check(FakeOp::Inspect)?;
        Ok(engine
            .containers
            .values()
            .find(|c| c.id == id_or_name || c.name == id_or_name)
            .map(|c| Self::observed(c, &engine.nodes)))
    }

    async fn list_managed(&self, filter: &BTreeMap<String, String>) -> Result<Vec<ObservedContainer>> {
        let engine = self.check(FakeOp::Inspect)?;
        Ok(engine
            .containers
            .values()
            .filter(|c| {
                c.plan.labels.get(labels::MANAGED_BY).map(String::as_str) == Some(labels::MANAGED_BY_VALUE)
                    && filter.iter().all(|(k, v)| c.plan.labels.get(k) == Some(v))
            })
            .map(|c| Self::observed(c, &engine.nodes))
            .collect())
    }

    async fn published_ports(&self, range: PortRange) -> Result<BTreeSet<u16>> {
        let engine = self.check(FakeOp::Inspect)?;
        let ours = engine
            .containers
            .values()
            .filter(|c| c.status == ContainerStatus::Running)
            .flat_map(|c| c.plan.ports.iter().map(|p| p.host_port));
        Ok(ours
            .chain(engine.foreign_ports.iter().copied())
            .filter(|p| range.contains(*p))
            .collect())
    }

    async fn stats(&self, id: &str) -> Result<ContainerStats> {
        let engine = self.check(FakeOp::Inspect)?;
        let c = engine
            .containers
            .get(id)
            .ok_or_else(|| Error::not_found(format!("no container {id} (fake)")))?;
        let running = c.status == ContainerStatus::Running;
        Ok(ContainerStats {
            memory_limit_bytes: c.plan.memory.bytes(),
            memory_bytes: if running { 1 << 24 } else { 0 },
            cpu_percent: if running { 1.5 } else { 0.0 },
            pids: u64::from(running),
            restart_count: c.restart_count,
            exit_code: c.exit_code,
            started_at: running.then(|| "2026-01-01T00:00:00Z".to_owned()),
            ..ContainerStats::default()
        })
    }

    async fn logs(&self, id: &str, request: &LogRequest) -> Result<LogStream> {
        let engine = self.check(FakeOp::Inspect)?;
        let c = engine
            .containers
            .get(id)
            .ok_or_else(|| Error::not_found(format!("no such container: {id}")))?;
        let lines: Vec<Result<LogChunk>> = (1..=5)
            .map(|i| {
                Ok(LogChunk {
                    stream: OutputStream::Stdout,
                    text: format!("{} line {i}\n", c.plan.name),
                })
            })
            .collect();
        let skip = request.tail.map_or(0, |t| lines.len().saturating_sub(t));
        Ok(Box::pin(futures_util::stream::iter(lines.into_iter().skip(skip))))
    }

    async fn exec(&self, id: &str, request: &ExecRequest) -> Result<ExecOutput> {
        let engine = self.check(FakeOp::Inspect)?;
        if !engine.containers.contains_key(id) {
            return Err(Error::not_found(format!("no such container: {id}")));
        }
        let args = request.command.args();
        match args[0].as_str() {
            "echo" => Ok(ExecOutput {
                exit_code: 0,
                stdout: format!("{}\n", args[1..].join(" ")),
                stderr: String::new(),
            }),
            "false" => Ok(ExecOutput {
                exit_code: 1,
                stdout: String::new(),
                stderr: String::new(),
            }),
            "sleep" => Err(Error::new(
                ErrorKind::Timeout,
                format!("command did not finish within {:?}", request.timeout),
            )),
            // The files uploaded or put into the container (see [`FakeRuntime::put_file`]).
            "cat" => {
                let files = &engine.containers[id].files;
                let mut output = ExecOutput {
                    exit_code: 0,
                    stdout: String::new(),
                    stderr: String::new(),
                };
                for path in &args[1..] {
                    match files.get(path) {
                        Some((_, _, Some(bytes))) => output.stdout.push_str(&String::from_utf8_lossy(bytes)),
                        _ => {
                            output.exit_code = 1;
                            output
                                .stderr
                                .push_str(&format!("cat: {path}: No such file or directory\n"));
                        }
                    }
                }
                Ok(output)
            }
            other => Ok(ExecOutput {
                exit_code: 127,
                stdout: String::new(),
                stderr: format!("{other}: not found\n"),
            }),
        }
    }

    async fn upload(&self, id: &str, destination: &str, entries: &[UploadEntry]) -> Result<()> {
        let mut engine = self.check(FakeOp::Upload)?;
        let c = engine
            .containers
            .get_mut(id)
            .ok_or_else(|| Error::not_found(format!("no such container: {id}")))?;
        for entry in entries {
            c.files.insert(
                format!("{destination}/{}", entry.path),
                (entry.mode, entry.uid, entry.contents.clone()),
            );
        }
        Ok(())
    }

    async fn download(&self, id: &str, path: &str) -> Result<Option<Vec<u8>>> {
        let engine = self.check(FakeOp::Inspect)?;
        let c = engine
            .containers
            .get(id)
            .ok_or_else(|| Error::not_found(format!("no such container: {id}")))?;
        Ok(c.files.get(path).and_then(|(_, _, contents)| contents.clone()))
    }

    async fn list_all_containers(&self) -> Result<Vec<EngineContainer>> {
        let engine = self.check(FakeOp::Inspect)?;
        Ok(engine
            .containers
            .values()
            .map(|c| EngineContainer {
                id: c.id.clone(),
                name: c.name.clone(),
                image: c.plan.image.to_string(),
                status: c.status.to_string(),
                labels: c.plan.labels.clone(),
                ports: c
                    .plan
                    .ports
                    .iter()
                    .map(|p| (format!("{}/tcp", p.container_port), p.host_port))
                    .collect(),
                networks: vec![c.plan.network.to_string()],
            })
            .collect())
    }

    async fn inspect_foreign(&self, id: &str) -> Result<Option<ForeignContainer>> {
        let engine = self.check(FakeOp::Inspect)?;
        Ok(engine.containers.get(id).map(|c| ForeignContainer {
            observed: Self::observed(c, &engine.nodes),
            env: c
                .plan
                .env
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            data_volume: Some(c.plan.volume.to_string()),
            created: "2026-01-02T03:04:05Z".to_owned(),
        }))
    }

    fn renames(&self) -> bool {
        !self.engine().no_renames
    }

    fn starts_afresh(&self) -> bool {
        self.engine().fresh_starts
    }

    async fn copy_volume(
        &self,
        plan: &crate::ports::VolumePlan,
        from: &crate::names::NodeName,
        to: &crate::names::NodeName,
        _via: &ImageRef,
    ) -> Result<u64> {
        let gate = self.engine().copy_gate.clone();
        if let Some(gate) = gate {
            gate.entered.notify_one();
            gate.release.notified().await;
        }
        let mut engine = self.check(FakeOp::CopyVolume)?;
        if !engine.volumes.contains_key(plan.name.as_str()) {
            return Err(Error::not_found(format!(
                "no volume {} on node {from}",
                plan.name
            )));
        }
        engine
            .copies
            .push((plan.name.to_string(), from.to_string(), to.to_string()));
        Ok(4096)
    }

    async fn remove_volume_on(&self, name: &str, node: &crate::names::NodeName) -> Result<()> {
        let mut engine = self.check(FakeOp::RemoveVolume)?;
        engine.removed_on.push((name.to_owned(), node.to_string()));
        Ok(())
    }

    async fn rename_container(&self, id: &str, new_name: &str) -> Result<()> {
        let mut engine = self.check(FakeOp::CreateContainer)?;
        if engine.no_renames {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!("can not rename {id} to {new_name}: this fake refuses renames, as Swarm does"),
            ));
        }
        if engine.containers.values().any(|c| c.name == new_name) {
            return Err(Error::conflict(format!("name {new_name} is in use")));
        }
        let c = engine
            .containers
            .get_mut(id)
            .ok_or_else(|| Error::not_found(format!("no such container: {id}")))?;
        c.name = new_name.to_owned();
        Ok(())
    }

    async fn list_managed_volumes(&self) -> Result<Vec<ObservedObject>> {
        let engine = self.check(FakeOp::Inspect)?;
        Ok(engine
            .volumes
            .iter()
            .filter(|(_, l)| l.get(labels::MANAGED_BY).map(String::as_str) == Some(labels::MANAGED_BY_VALUE))
            .map(|(name, l)| ObservedObject {
                name: name.clone(),
                id: name.clone(),
                labels: l.clone(),
            })
            .collect())
    }

    async fn list_managed_networks(&self) -> Result<Vec<ObservedObject>> {
        let engine = self.check(FakeOp::Inspect)?;
        Ok(engine
            .networks
            .values()
            .filter(|n| {
                n.labels.get(labels::MANAGED_BY).map(String::as_str) == Some(labels::MANAGED_BY_VALUE)
            })
            .map(|n| ObservedObject {
                name: n.name.to_string(),
                id: format!("net-{}", n.name),
                labels: n.labels.clone(),
            })
            .collect())
    }

    async fn container_events(&self) -> Result<EventStream> {
        let mut engine = self.check(FakeOp::Inspect)?;
        let sender = engine
            .events
            .get_or_insert_with(|| tokio::sync::broadcast::channel(1024).0)
            .clone();
        let receiver = sender.subscribe();
        let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
            match receiver.recv().await {
                Ok(event) => Some((Ok(event), receiver)),
                Err(_) => None,
            }
        });
        Ok(Box::pin(stream))
    }
}

/// Who an engine object belongs to, by its labels (as cm-docker judges it).
fn owner_of(labels: &BTreeMap<String, String>) -> (Option<&String>, Option<&String>, Option<&String>) {
    (
        labels.get(labels::MANAGED_BY),
        labels.get(labels::USER_ID),
        labels.get(labels::CONTAINER_TYPE),
    )
}
