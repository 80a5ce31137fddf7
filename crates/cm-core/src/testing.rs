//! In-memory fakes of every port, for unit tests of cm-core and of embedders (feature `testing`).
//!
//! They keep enough state to assert on (containers, volumes, networks, leases, files) and can be
//! told to fail at a chosen operation, so every failure point of a use case can be tested.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::Config;
use crate::auth::{Auth, CredentialStore, Entropy, SecretHash, TokenRecord};
use crate::error::{Error, ErrorKind, Result};
use crate::keys::{SshPublicKey, StoredKey};
use crate::manager::{Adapters, Manager};
use crate::names::{ContainerName, TypeName, UserId, VolumeName};
use crate::network::{PortProbe, PortRange, Subnet, SubnetPool};
use crate::ports::{
    Clock, ContainerEvent, ContainerPlan, ContainerRuntime, ContainerStats, CreateReservation,
    EngineContainer, EngineInfo, Ensured, EventStream, ExecOutput, ExecRequest, FailPoints, ForeignContainer,
    KeyParser, LogChunk, LogRequest, LogStream, NetworkPlan, ObservedContainer, ObservedObject, Operation,
    OperationKind, OutputStream, PortLease, Proxy, ProxyStatus, RemoveMode, Route, RouteState, RouteStatus,
    Store, UploadEntry, VolumePlan,
};
use crate::spec::{ContainerSpec, ContainerStatus, labels};
use crate::values::{EnvVars, ImageRef};

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

    /// Removes a container behind the manager's back (`docker rm -f`).
    pub fn remove_behind_back(&self, id: &str) {
        let mut engine = self.engine();
        engine.containers.remove(id);
        engine.emit(id, "destroy");
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

    fn observed(c: &FakeContainer) -> ObservedContainer {
        ObservedContainer {
            id: c.id.clone(),
            name: c.name.clone(),
            status: c.status,
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

    async fn inspect_container(&self, id_or_name: &str) -> Result<Option<ObservedContainer>> {
        let engine = self.check(FakeOp::Inspect)?;
        Ok(engine
            .containers
            .values()
            .find(|c| c.id == id_or_name || c.name == id_or_name)
            .map(Self::observed))
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
            .map(Self::observed)
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
            observed: Self::observed(c),
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

    async fn rename_container(&self, id: &str, new_name: &str) -> Result<()> {
        let mut engine = self.check(FakeOp::CreateContainer)?;
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

#[derive(Default)]
struct Records {
    specs: BTreeMap<String, ContainerSpec>,
    operations: BTreeMap<ContainerName, Operation>,
    /// Operations whose process is alive (or that a reconcile claimed).
    owned: BTreeSet<ContainerName>,
    retained: BTreeSet<VolumeName>,
    leases: BTreeMap<u16, String>,
    subnets: BTreeMap<UserId, Subnet>,
    keys: BTreeMap<ContainerName, Vec<StoredKey>>,
    quotas: BTreeMap<UserId, crate::quota::UserQuota>,
    idle_stopped: BTreeMap<ContainerName, SystemTime>,
}

/// An in-memory store with the same semantics as the SQLite one.
#[derive(Default)]
pub struct MemoryStore {
    records: Mutex<Records>,
}

impl MemoryStore {
    fn records(&self) -> MutexGuard<'_, Records> {
        self.records.lock().unwrap()
    }

    /// Simulates the death of the process that runs the unfinished operations.
    pub fn crash(&self) {
        self.records().owned.clear();
    }
}

impl Records {
    fn end(&mut self, name: &ContainerName) {
        self.operations.remove(name);
        self.owned.remove(name);
    }
}

fn unix_seconds(time: SystemTime) -> i64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

#[async_trait]
impl Store for MemoryStore {
    async fn begin_create(&self, request: &CreateReservation, probe: Arc<dyn PortProbe>) -> Result<Vec<u16>> {
        let mut records = self.records();
        if records.specs.values().any(|s| s.container_name == request.name) {
            return Err(Error::conflict(format!("container {} exists", request.name)));
        }
        if records.operations.contains_key(&request.name) {
            return Err(Error::conflict(format!(
                "another operation on {} is in progress",
                request.name
            )));
        }
        let mut taken: BTreeSet<u16> = records.leases.keys().copied().collect();
        taken.extend(&request.exclude);
        let ports = request.range.pick(request.ports, &taken, probe.as_ref())?;
        for port in &ports {
            records.leases.insert(*port, request.name.to_string());
        }
        records.operations.insert(
            request.name.clone(),
            Operation {
                name: request.name.clone(),
                user_id: request.user.clone(),
                container_type: request.kind.clone(),
                kind: OperationKind::Create,
                started_at: unix_seconds(request.started),
                steps: Vec::new(),
            },
        );
        records.owned.insert(request.name.clone());
        Ok(ports)
    }

    async fn finish_create(&self, spec: &ContainerSpec) -> Result<()> {
        let mut records = self.records();
        records.specs.insert(spec.container_id.clone(), spec.clone());
        records.retained.remove(&spec.volume_name);
        records.end(&spec.container_name);
        Ok(())
    }

    async fn abandon_create(&self, name: &ContainerName) -> Result<()> {
        let mut records = self.records();
        records.leases.retain(|_, owner| owner != name.as_str());
        records.keys.remove(name);
        records.end(name);
        Ok(())
    }

    async fn begin_operation(
        &self,
        spec: &ContainerSpec,
        kind: OperationKind,
        started: SystemTime,
    ) -> Result<()> {
        let name = &spec.container_name;
        let mut records = self.records();
        if let Some(op) = records.operations.get(name) {
            let takes_over = matches!(op.kind, OperationKind::Delete | OperationKind::Purge)
                && matches!(kind, OperationKind::Delete | OperationKind::Purge)
                && !records.owned.contains(name);
            if !takes_over {
                return Err(Error::conflict(format!(
                    "another operation on {name} is in progress"
                )));
            }
        }
        records.operations.insert(
            name.clone(),
            Operation {
                name: name.clone(),
                user_id: spec.user_id.clone(),
                container_type: spec.container_type.clone(),
                kind,
                started_at: unix_seconds(started),
                steps: Vec::new(),
            },
        );
        records.owned.insert(name.clone());
        Ok(())
    }

    async fn end_operation(&self, name: &ContainerName) -> Result<()> {
        self.records().end(name);
        Ok(())
    }

    async fn finish_delete(&self, spec: &ContainerSpec) -> Result<()> {
        let mut records = self.records();
        let name = &spec.container_name;
        records.specs.retain(|_, s| &s.container_name != name);
        records.leases.retain(|_, owner| owner != name.as_str());
        records.keys.remove(name);
        records.idle_stopped.remove(name);
        match records.operations.get(name).map(|op| op.kind) {
            Some(OperationKind::Purge) => {
                records.retained.remove(&spec.volume_name);
            }
            _ => {
                records.retained.insert(spec.volume_name.clone());
            }
        }
        records.end(name);
        Ok(())
    }

    async fn operations(&self) -> Result<Vec<Operation>> {
        Ok(self.records().operations.values().cloned().collect())
    }

    async fn record_step(&self, name: &ContainerName, step: &str) -> Result<()> {
        if let Some(op) = self.records().operations.get_mut(name) {
            op.steps.push(step.to_owned());
        }
        Ok(())
    }

    async fn claim_abandoned(&self) -> Result<Vec<Operation>> {
        let mut records = self.records();
        let abandoned: Vec<Operation> = records
            .operations
            .values()
            .filter(|op| !records.owned.contains(&op.name))
            .cloned()
            .collect();
        for op in &abandoned {
            records.owned.insert(op.name.clone());
        }
        Ok(abandoned)
    }

    async fn unclaim(&self, name: &ContainerName) -> Result<()> {
        self.records().owned.remove(name);
        Ok(())
    }

    async fn release_ports(&self, owner: &str) -> Result<()> {
        self.records().leases.retain(|_, o| o != owner);
        Ok(())
    }

    async fn subnet_leases(&self) -> Result<Vec<(UserId, Subnet)>> {
        Ok(self
            .records()
            .subnets
            .iter()
            .map(|(u, s)| (u.clone(), *s))
            .collect())
    }

    async fn subnet_of(&self, user: &UserId) -> Result<Option<Subnet>> {
        Ok(self.records().subnets.get(user).copied())
    }

    async fn forget_retained(&self, name: &VolumeName) -> Result<bool> {
        Ok(self.records().retained.remove(name))
    }

    async fn retained_volumes(&self) -> Result<Vec<VolumeName>> {
        Ok(self.records().retained.iter().cloned().collect())
    }

    async fn adopt(&self, spec: &ContainerSpec) -> Result<()> {
        let mut records = self.records();
        let name = &spec.container_name;
        if records.specs.values().any(|s| &s.container_name == name) {
            return Err(Error::conflict(format!("container {name} exists")));
        }
        if records.operations.contains_key(name) {
            return Err(Error::conflict(format!(
                "another operation on {name} is in progress"
            )));
        }
        let ports: Vec<u16> = std::iter::once(spec.port).chain(spec.ssh_port).collect();
        if let Some((port, owner)) = ports
            .iter()
            .find_map(|p| records.leases.get(p).map(|owner| (p, owner)))
        {
            return Err(Error::conflict(format!("port {port} is leased to {owner}")));
        }
        for port in ports {
            records.leases.insert(port, name.to_string());
        }
        records.specs.insert(spec.container_id.clone(), spec.clone());
        Ok(())
    }

    async fn put(&self, spec: &ContainerSpec) -> Result<()> {
        let mut records = self.records();
        records
            .specs
            .retain(|_, s| s.container_name != spec.container_name);
        records.specs.insert(spec.container_id.clone(), spec.clone());
        Ok(())
    }

    async fn get(&self, container_id: &str) -> Result<Option<ContainerSpec>> {
        Ok(self.records().specs.get(container_id).cloned())
    }

    async fn get_by_name(&self, name: &ContainerName) -> Result<Option<ContainerSpec>> {
        Ok(self
            .records()
            .specs
            .values()
            .find(|s| &s.container_name == name)
            .cloned())
    }

    async fn list_all(&self) -> Result<Vec<ContainerSpec>> {
        let mut specs: Vec<ContainerSpec> = self.records().specs.values().cloned().collect();
        specs.sort_by(|a, b| a.container_name.cmp(&b.container_name));
        Ok(specs)
    }

    async fn list_user(&self, user: &UserId) -> Result<Vec<ContainerSpec>> {
        let mut specs = self.list_all().await?;
        specs.retain(|s| &s.user_id == user);
        Ok(specs)
    }

    async fn port_leases(&self) -> Result<Vec<PortLease>> {
        Ok(self
            .records()
            .leases
            .iter()
            .map(|(port, owner)| PortLease {
                port: *port,
                owner: owner.clone(),
            })
            .collect())
    }

    async fn lease_subnet(
        &self,
        user: &UserId,
        pool: SubnetPool,
        exclude: &BTreeSet<Subnet>,
    ) -> Result<Subnet> {
        let mut records = self.records();
        if let Some(subnet) = records.subnets.get(user) {
            return Ok(*subnet);
        }
        let mut taken: BTreeSet<Subnet> = records.subnets.values().copied().collect();
        taken.extend(exclude);
        let subnet = pool.pick(&taken)?;
        records.subnets.insert(user.clone(), subnet);
        Ok(subnet)
    }

    async fn release_subnet(&self, user: &UserId) -> Result<()> {
        self.records().subnets.remove(user);
        Ok(())
    }

    async fn user_quota(&self, user: &UserId) -> Result<Option<crate::quota::UserQuota>> {
        Ok(self.records().quotas.get(user).copied())
    }

    async fn set_user_quota(&self, user: &UserId, quota: Option<&crate::quota::UserQuota>) -> Result<()> {
        let mut records = self.records();
        match quota {
            Some(quota) => records.quotas.insert(user.clone(), *quota),
            None => records.quotas.remove(user),
        };
        Ok(())
    }

    async fn add_key(&self, name: &ContainerName, key: &SshPublicKey, added: SystemTime) -> Result<bool> {
        let mut records = self.records();
        let keys = records.keys.entry(name.clone()).or_default();
        if keys.iter().any(|k| k.key.fingerprint() == key.fingerprint()) {
            return Ok(false);
        }
        keys.push(StoredKey {
            key: key.clone(),
            added_at: rfc3339(added),
        });
        Ok(true)
    }

    async fn remove_key(&self, name: &ContainerName, fingerprint: &str) -> Result<bool> {
        let mut records = self.records();
        let Some(keys) = records.keys.get_mut(name) else {
            return Ok(false);
        };
        let before = keys.len();
        keys.retain(|k| k.key.fingerprint() != fingerprint);
        Ok(keys.len() != before)
    }

    async fn keys(&self, name: &ContainerName) -> Result<Vec<StoredKey>> {
        Ok(self.records().keys.get(name).cloned().unwrap_or_default())
    }

    async fn mark_idle_stopped(&self, name: &ContainerName, at: SystemTime) -> Result<()> {
        self.records().idle_stopped.insert(name.clone(), at);
        Ok(())
    }

    async fn clear_idle_stopped(&self, name: &ContainerName) -> Result<bool> {
        Ok(self.records().idle_stopped.remove(name).is_some())
    }

    async fn idle_stopped(&self) -> Result<BTreeMap<ContainerName, SystemTime>> {
        Ok(self.records().idle_stopped.clone())
    }
}

/// A proxy that remembers its routes.
#[derive(Default)]
pub struct FakeProxy {
    routes: Mutex<BTreeMap<(String, String), Route>>,
    refuse: Mutex<Option<String>>,
}

impl FakeProxy {
    /// The live routes.
    pub fn routes_now(&self) -> Vec<Route> {
        self.routes.lock().unwrap().values().cloned().collect()
    }

    /// Makes `apply` fail with this nginx-like message.
    pub fn refuse_with(&self, message: &str) {
        *self.refuse.lock().unwrap() = Some(message.to_owned());
    }
}

#[async_trait]
impl Proxy for FakeProxy {
    fn status(&self) -> ProxyStatus {
        ProxyStatus {
            enabled: true,
            mode: Some(crate::config::RoutingMode::Files),
            answers: None,
            detail: "fake proxy".into(),
            reloads: 0,
            last_reload: None,
        }
    }

    async fn apply(&self, route: &Route) -> Result<()> {
        if let Some(message) = self.refuse.lock().unwrap().clone() {
            // Like nginx: a refused route is a conflict with the rest of the configuration.
            return Err(Error::conflict(message));
        }
        self.routes
            .lock()
            .unwrap()
            .insert((route.user.to_string(), route.kind.to_string()), route.clone());
        Ok(())
    }

    async fn remove(&self, user: &UserId, kind: &TypeName) -> Result<()> {
        self.routes
            .lock()
            .unwrap()
            .remove(&(user.to_string(), kind.to_string()));
        Ok(())
    }

    async fn routes(&self) -> Result<Vec<RouteStatus>> {
        Ok(self
            .routes_now()
            .into_iter()
            .map(|r| RouteStatus {
                user: r.user.to_string(),
                kind: r.kind.to_string(),
                port: Some(r.port),
                state: RouteState::Active,
            })
            .collect())
    }

    async fn sync(&self, routes: &[Route]) -> Result<Vec<RouteStatus>> {
        {
            let mut live = self.routes.lock().unwrap();
            live.clear();
            for route in routes {
                live.insert((route.user.to_string(), route.kind.to_string()), route.clone());
            }
        }
        self.routes().await
    }
}

/// A key parser that accepts `ssh-ed25519 <base64> [comment]` with a made-up fingerprint.
#[derive(Default)]
pub struct FakeKeyParser;

impl KeyParser for FakeKeyParser {
    fn parse(&self, raw: &str) -> Result<SshPublicKey> {
        let mut parts = raw.trim().splitn(3, ' ');
        let (algorithm, body, comment) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        if algorithm != "ssh-ed25519" || body.len() < 16 {
            return Err(Error::invalid(
                "invalid ssh key: only ssh-ed25519 keys are accepted",
            ));
        }
        let line = if comment.is_empty() {
            format!("{algorithm} {body}")
        } else {
            format!("{algorithm} {body} {comment}")
        };
        SshPublicKey::from_parsed(&line, &format!("SHA256:{}", &body[body.len() - 16..]), comment)
    }
}

/// A port probe that calls the listed ports busy.
#[derive(Default)]
pub struct FakeProbe {
    busy: Mutex<BTreeSet<u16>>,
}

impl FakeProbe {
    /// Marks a port as held by another process.
    pub fn hold(&self, port: u16) {
        self.busy.lock().unwrap().insert(port);
    }
}

impl PortProbe for FakeProbe {
    fn is_free(&self, port: u16) -> bool {
        !self.busy.lock().unwrap().contains(&port)
    }
}

/// The header of `/proc/net/tcp` in a fake container: no connection at all.
pub const FAKE_TCP_TABLE: &str =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";

/// An app probe whose apps answer on the ports a test says (none at first).
#[derive(Default)]
pub struct FakeAppProbe {
    answering: Mutex<BTreeSet<u16>>,
    asked: Mutex<usize>,
}

impl FakeAppProbe {
    /// The app on `port` answers from now on.
    pub fn answer_on(&self, port: u16) {
        self.answering.lock().unwrap().insert(port);
    }

    /// How often it was asked.
    pub fn asked(&self) -> usize {
        *self.asked.lock().unwrap()
    }
}

#[async_trait]
impl crate::ports::AppProbe for FakeAppProbe {
    async fn answers(&self, port: u16) -> bool {
        *self.asked.lock().unwrap() += 1;
        self.answering.lock().unwrap().contains(&port)
    }
}

/// A clock fixed at 2026-01-01T00:00:00Z that tests can move.
pub struct FixedClock(Mutex<SystemTime>);

impl Default for FixedClock {
    fn default() -> Self {
        FixedClock(Mutex::new(
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600),
        ))
    }
}

impl FixedClock {
    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap()
    }
}

/// In-memory credentials.
#[derive(Default)]
pub struct MemoryCredentials {
    admin: Mutex<Option<SecretHash>>,
    tokens: Mutex<Vec<TokenRecord>>,
}

#[async_trait]
impl CredentialStore for MemoryCredentials {
    async fn admin_key_hash(&self) -> Result<Option<SecretHash>> {
        Ok(self.admin.lock().unwrap().clone())
    }

    async fn set_admin_key_hash(&self, hash: &SecretHash) -> Result<()> {
        *self.admin.lock().unwrap() = Some(hash.clone());
        Ok(())
    }

    async fn insert_token(&self, record: &TokenRecord) -> Result<()> {
        self.tokens.lock().unwrap().push(record.clone());
        Ok(())
    }

    async fn token_by_hash(&self, hash: &SecretHash) -> Result<Option<TokenRecord>> {
        Ok(self
            .tokens
            .lock()
            .unwrap()
            .iter()
            .find(|t| &t.hash == hash)
            .cloned())
    }

    async fn revoke_user_tokens(&self, user: &UserId) -> Result<usize> {
        let mut tokens = self.tokens.lock().unwrap();
        let before = tokens.len();
        tokens.retain(|t| &t.user_id != user);
        Ok(before - tokens.len())
    }

    async fn revoke_token(&self, id: &str) -> Result<bool> {
        let mut tokens = self.tokens.lock().unwrap();
        let before = tokens.len();
        tokens.retain(|t| t.id != id);
        Ok(tokens.len() != before)
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        Ok(self.tokens.lock().unwrap().clone())
    }

    async fn touch_token(&self, id: &str, at: &str) -> Result<()> {
        for token in self.tokens.lock().unwrap().iter_mut().filter(|t| t.id == id) {
            token.last_used_at = Some(at.to_owned());
        }
        Ok(())
    }
}

/// Deterministic "random" bytes: a counter, so every secret differs.
#[derive(Default)]
pub struct CountingEntropy(Mutex<u8>);

impl Entropy for CountingEntropy {
    fn secret_bytes(&self) -> [u8; 32] {
        let mut counter = self.0.lock().unwrap();
        *counter = counter.wrapping_add(1);
        [*counter; 32]
    }
}

/// An `Auth` over in-memory credentials, with `env_admin_key` as `CONTAINER_ADMIN_KEY`.
pub fn fake_auth(env_admin_key: Option<&str>) -> Auth {
    Auth::new(
        Arc::new(MemoryCredentials::default()),
        Arc::new(CountingEntropy::default()),
        Arc::new(FixedClock::default()),
        env_admin_key.map(crate::auth::Secret::new),
    )
    .unwrap()
}

/// Fail points that panic at one armed point: the use case stops there as if the process died
/// (no undo runs).
#[derive(Default)]
pub struct PanicAt(Mutex<Option<String>>);

impl PanicAt {
    /// Arms a point; `None` disarms.
    pub fn arm(&self, point: Option<&str>) {
        *self.0.lock().unwrap() = point.map(str::to_owned);
    }
}

impl FailPoints for PanicAt {
    fn reached(&self, point: &str) {
        let armed = self.0.lock().unwrap().clone();
        if armed.as_deref() == Some(point) {
            panic!("fail point {point} reached");
        }
    }
}

/// A manager over fresh fakes, and the fakes to inspect.
pub struct FakeWorld {
    /// The manager.
    pub manager: Manager,
    /// Its engine.
    pub runtime: Arc<FakeRuntime>,
    /// Its store.
    pub store: Arc<MemoryStore>,
    /// Its proxy.
    pub proxy: Arc<FakeProxy>,
    /// Its port probe.
    pub probe: Arc<FakeProbe>,
    /// Its clock.
    pub clock: Arc<FixedClock>,
    /// Its fail points.
    pub fail_points: Arc<PanicAt>,
}

/// The audit trail in memory.
#[derive(Default)]
pub struct MemoryAudit {
    entries: Mutex<Vec<crate::audit::AuditEntry>>,
}

impl MemoryAudit {
    /// Every entry, oldest first.
    pub fn entries(&self) -> Vec<crate::audit::AuditEntry> {
        self.entries.lock().unwrap().clone()
    }
}

#[async_trait]
impl crate::audit::AuditLog for MemoryAudit {
    async fn append(&self, entry: &crate::audit::AuditEntry) -> Result<()> {
        let mut entries = self.entries.lock().unwrap();
        let mut entry = entry.clone();
        entry.id = i64::try_from(entries.len()).unwrap_or(i64::MAX) + 1;
        entries.push(entry);
        Ok(())
    }

    async fn query(&self, query: &crate::audit::AuditQuery) -> Result<Vec<crate::audit::AuditEntry>> {
        let about = |e: &crate::audit::AuditEntry| match &query.user {
            None => true,
            Some(user) => {
                e.subject.as_ref() == Some(user) || e.actor == crate::audit::Actor::User(user.clone())
            }
        };
        Ok(self
            .entries
            .lock()
            .unwrap()
            .iter()
            .rev()
            .filter(|e| about(e) && query.target.as_ref().is_none_or(|t| e.target.as_ref() == Some(t)))
            .filter(|e| {
                query
                    .since
                    .is_none_or(|since| humantime::parse_rfc3339_weak(&e.at).is_ok_and(|at| at >= since))
            })
            .take(query.limit())
            .cloned()
            .collect())
    }

    async fn prune(&self, before: SystemTime) -> Result<usize> {
        let mut entries = self.entries.lock().unwrap();
        let count = entries.len();
        entries.retain(|e| humantime::parse_rfc3339_weak(&e.at).is_ok_and(|at| at >= before));
        Ok(count - entries.len())
    }
}

/// The installation id of a [`FakeWorld`]'s manager.
pub const FAKE_INSTALLATION: &str = "fake-installation";

impl FakeWorld {
    /// A world with the default configuration.
    pub fn new() -> Self {
        Self::with_config(Config::defaults())
    }

    /// A world with `config`; its manager is installation [`FAKE_INSTALLATION`].
    pub fn with_config(mut config: Config) -> Self {
        // The fake engine's containers crash as they start or never: a millisecond's watch for
        // an early exit sees it, and keeps every create of the tests fast.
        config.health.exit_check = config.health.exit_check.min(Duration::from_millis(1));
        let runtime = Arc::new(FakeRuntime::new());
        let store = Arc::new(MemoryStore::default());
        let proxy = Arc::new(FakeProxy::default());
        let probe = Arc::new(FakeProbe::default());
        let clock = Arc::new(FixedClock::default());
        let fail_points = Arc::new(PanicAt::default());
        let adapters = Adapters {
            fail_points: fail_points.clone(),
            runtime: runtime.clone(),
            store: store.clone(),
            proxy: proxy.clone(),
            keys: Arc::new(FakeKeyParser),
            probe: probe.clone(),
            clock: clock.clone(),
        };
        FakeWorld {
            manager: Manager::new(config, adapters).with_installation(FAKE_INSTALLATION),
            runtime,
            store,
            proxy,
            probe,
            clock,
            fail_points,
        }
    }
}

impl FakeWorld {
    /// Asserts the world holds nothing: no container, volume, network, record, lease, intent or
    /// route.
    pub async fn assert_empty(&self) {
        let names = self.runtime.container_names();
        assert!(names.is_empty(), "containers: {names:?}");
        let volumes = self.runtime.volumes();
        assert!(volumes.is_empty(), "volumes: {volumes:?}");
        let networks = self.runtime.networks();
        assert!(networks.is_empty(), "networks: {networks:?}");
        assert!(self.store.list_all().await.unwrap().is_empty(), "records");
        assert!(self.store.port_leases().await.unwrap().is_empty(), "port leases");
        assert!(self.store.operations().await.unwrap().is_empty(), "intents");
        assert!(
            self.store.subnet_leases().await.unwrap().is_empty(),
            "subnet leases"
        );
        assert!(self.proxy.routes_now().is_empty(), "routes");
    }
}

/// A create request for `user` and `kind` with nothing else set (default configuration).
pub fn create_request(user: &str, kind: &str) -> crate::CreateRequest {
    let form = crate::CreateForm {
        user_id: user.into(),
        container_type: kind.into(),
        ..crate::CreateForm::default()
    };
    crate::CreateRequest::parse(&form, &Config::defaults()).unwrap()
}

impl Default for FakeWorld {
    fn default() -> Self {
        Self::new()
    }
}
