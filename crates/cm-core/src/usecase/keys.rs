//! SSH keys: parse, store, render into the container, and the connection details.

use serde::{Deserialize, Serialize};

use crate::access::AuthorizedContainer;
use crate::auth::Action;
use crate::config::SSH_USER;
use crate::error::{Error, Result};
use crate::keys::{SshPublicKey, StoredKey, render_authorized_keys};

use crate::names::{UserId, quote};

use crate::ports::UploadEntry;

use crate::spec::{ContainerSpec, ContainerStatus};

use crate::manager::Manager;

use super::lookup::Listing;

/// The `ssh` command line that reaches a container's SSH `port` on `host`.
pub fn ssh_command(host: &str, port: u16) -> String {
    format!("ssh -p {port} {SSH_USER}@{host}")
}

/// The outcome of adding a key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyAdded {
    /// The parsed key.
    pub key: SshPublicKey,
    /// False when the container had it already.
    pub added: bool,
    /// True when written into the running container now; false when it is stopped and gets it at start.
    pub applied: bool,
}

/// How a user reaches a container over SSH.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SshInfo {
    /// The container.
    pub container_name: String,
    /// The host to connect to.
    pub host: String,
    /// The port.
    pub port: u16,
    /// The login user.
    pub user: String,
    /// A ready command line.
    pub command: String,
    /// The docksh command line.
    pub docksh: String,
    /// The fingerprints of the authorized keys.
    pub fingerprints: Vec<String>,
}

/// The uid and gid of the `cli` user in SSH-enabled images.
pub(crate) const CLI_UID: u64 = 1000;

/// The home directory of `cli`.
pub(crate) const CLI_HOME: &str = "/home/cli";

/// How often [`Manager::install_keys`] writes when the keys keep changing under it.
const KEY_WRITE_TRIES: usize = 3;

pub(crate) fn require_ssh(spec: &ContainerSpec) -> Result<u16> {
    spec.ssh_port.ok_or_else(|| {
        Error::invalid(format!(
            "container {} has no SSH access (type {})",
            spec.container_name, spec.container_type
        ))
    })
}

impl Manager {
    /// Parses and validates a public key without storing it (for forms that check as you type).
    pub fn parse_ssh_key(&self, raw: &str) -> Result<SshPublicKey> {
        self.adapters.keys.parse(raw)
    }

    /// Parses a key and authorizes it on a container; applied now when it runs, else at its next start.
    pub async fn add_ssh_key(&self, container: &AuthorizedContainer, raw_key: &str) -> Result<KeyAdded> {
        let key = self
            .adapters
            .keys
            .parse(raw_key)
            .map_err(|e| e.for_field("ssh_public_key"))?;
        let spec = self.permitted(container, Action::AddSshKey)?;
        require_ssh(spec)?;
        let added = self
            .adapters
            .store
            .add_key(&spec.container_name, &key, self.adapters.clock.now())
            .await?;
        let applied = self.apply_keys_if_running(spec).await?;
        Ok(KeyAdded { key, added, applied })
    }

    /// Removes a key by fingerprint; `NotFound` when the container has no such key.
    pub async fn remove_ssh_key(&self, container: &AuthorizedContainer, fingerprint: &str) -> Result<bool> {
        let spec = self.permitted(container, Action::RemoveSshKey)?;
        require_ssh(spec)?;
        if !self
            .adapters
            .store
            .remove_key(&spec.container_name, fingerprint.trim())
            .await?
        {
            return Err(Error::not_found(format!(
                "container {} has no key with fingerprint {}",
                spec.container_name,
                quote(fingerprint)
            )));
        }
        self.apply_keys_if_running(spec).await
    }

    /// The keys of a container.
    pub async fn ssh_keys(&self, container: &AuthorizedContainer) -> Result<Vec<StoredKey>> {
        let spec = self.permitted(container, Action::ReadSshInfo)?;
        self.adapters.store.keys(&spec.container_name).await
    }

    /// The host users connect to over SSH, as connection strings show it (`[ssh] server_host`,
    /// else a `<server>` placeholder).
    pub fn ssh_host(&self) -> String {
        self.config
            .ssh
            .server_host
            .clone()
            .unwrap_or_else(|| "<server>".to_owned())
    }

    /// The host users connect to over SSH for this container: on a node of the cluster other than
    /// this host's (a Swarm worker in `[runtime.nodes]`), the node's address, where its ports are
    /// published; else [`Manager::ssh_host`]. A node gone from the cluster has no address: a
    /// placeholder says so.
    pub async fn ssh_host_of(&self, spec: &ContainerSpec) -> String {
        match &spec.node {
            Some(node) if self.config.runtime.nodes.contains_key(node.as_str()) => {
                match self.ports_address(Some(node)).await {
                    Some(address) => address.to_string(),
                    None => format!("<node {node}, not in the cluster>"),
                }
            }
            _ => self.ssh_host(),
        }
    }

    /// How to connect to a container over SSH.
    pub async fn ssh_info(&self, container: &AuthorizedContainer) -> Result<SshInfo> {
        let spec = self.permitted(container, Action::ReadSshInfo)?;
        let port = require_ssh(spec)?;
        let host = self.ssh_host_of(spec).await;
        let keys = self.adapters.store.keys(&spec.container_name).await?;
        Ok(SshInfo {
            container_name: spec.container_name.to_string(),
            command: ssh_command(&host, port),
            docksh: format!("docksh connect {host} {port}"),
            host,
            port,
            user: SSH_USER.to_owned(),
            fingerprints: keys.iter().map(|k| k.key.fingerprint().to_owned()).collect(),
        })
    }

    /// The SSH-enabled containers, of one user or all.
    pub async fn list_ssh(&self, user: Option<&UserId>) -> Result<Listing> {
        let mut listing = match user {
            Some(user) => self.list_user(user).await?,
            None => self.list_all().await?,
        };
        listing.containers.retain(|s| s.ssh_port.is_some());
        Ok(listing)
    }

    pub(crate) async fn apply_keys_if_running(&self, spec: &ContainerSpec) -> Result<bool> {
        let running = self
            .adapters
            .runtime
            .inspect_container(&spec.container_id)
            .await?
            .is_some_and(|c| c.status == ContainerStatus::Running);
        if running {
            self.install_keys(spec).await?;
        }
        Ok(running)
    }

    /// Writes the whole `authorized_keys`, rendered from the store, into the container without a
    /// shell; then reads the store again and writes once more if the keys changed meanwhile. Two
    /// writers (a key removal, the status feed after a fresh start, another process) may read the
    /// store in one order and write in the other: whoever writes last has looked at the store
    /// after writing, so a removed key never stays behind a stale write.
    pub(crate) async fn install_keys(&self, spec: &ContainerSpec) -> Result<()> {
        let mut text = render_authorized_keys(&self.adapters.store.keys(&spec.container_name).await?);
        for _ in 0..KEY_WRITE_TRIES {
            self.write_keys(spec, &text).await?;
            let now = render_authorized_keys(&self.adapters.store.keys(&spec.container_name).await?);
            if now == text {
                return Ok(());
            }
            text = now;
        }
        Err(Error::conflict(format!(
            "the SSH keys of {} kept changing while they were written: try again",
            spec.container_name
        )))
    }

    async fn write_keys(&self, spec: &ContainerSpec, text: &str) -> Result<()> {
        let entries = [
            UploadEntry {
                path: ".ssh".to_owned(),
                mode: 0o700,
                uid: CLI_UID,
                gid: CLI_UID,
                contents: None,
            },
            UploadEntry {
                path: ".ssh/authorized_keys".to_owned(),
                mode: 0o600,
                uid: CLI_UID,
                gid: CLI_UID,
                contents: Some(text.as_bytes().to_vec()),
            },
        ];
        self.adapters
            .runtime
            .upload(&spec.container_id, CLI_HOME, &entries)
            .await
            .map_err(|e| e.context("installing ssh keys"))
    }
}
