//! What callers may do: the actions a request asks for, and the actions an installation lets user
//! tokens do to their own containers (`[auth] user_actions`). The rule of who may do what is
//! `Principal::authorize` in `auth.rs`.

use serde::Serialize;

use crate::error::{Error, Result};

/// What a caller wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Create a container (admin only).
    CreateContainer,
    /// Delete a container, keeping its data volume (a user action).
    DeleteContainer,
    /// Remove a container's data volume with it (admin only).
    PurgeData,
    /// Re-create a container with a new image (admin only).
    UpdateContainer,
    /// List, get, or read the status of containers.
    ReadContainer,
    /// Start a container.
    StartContainer,
    /// Stop a container.
    StopContainer,
    /// Restart a container.
    RestartContainer,
    /// Read logs.
    ReadLogs,
    /// Run a command inside.
    Exec,
    /// Add an SSH key.
    AddSshKey,
    /// Remove an SSH key.
    RemoveSshKey,
    /// Read SSH connection details and keys.
    ReadSshInfo,
    /// Create, revoke and list tokens, rotate the admin key, reconcile, routes (admin only).
    Administer,
    /// Read the engine's health.
    ReadHealth,
    /// Reach a container's app through the proxy.
    ReachApp,
}

/// What a user token may be allowed to do to its own containers (`[auth] user_actions`).
/// Reading them, their SSH details and reaching their apps is always allowed; creating, updating,
/// purging data and administration never are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserAction {
    /// Start a stopped container.
    Start,
    /// Stop a container.
    Stop,
    /// Restart a container.
    Restart,
    /// Read logs.
    Logs,
    /// Run commands inside.
    Exec,
    /// Delete a container (its data volume stays).
    Delete,
    /// Register one's own SSH key.
    AddSshKey,
    /// Remove one's own SSH key.
    RemoveSshKey,
}

impl UserAction {
    /// Every user action, in order.
    pub const ALL: [UserAction; 8] = [
        UserAction::Start,
        UserAction::Stop,
        UserAction::Restart,
        UserAction::Logs,
        UserAction::Exec,
        UserAction::Delete,
        UserAction::AddSshKey,
        UserAction::RemoveSshKey,
    ];

    /// The configuration name, such as `add_ssh_key`.
    pub fn name(self) -> &'static str {
        match self {
            UserAction::Start => "start",
            UserAction::Stop => "stop",
            UserAction::Restart => "restart",
            UserAction::Logs => "logs",
            UserAction::Exec => "exec",
            UserAction::Delete => "delete",
            UserAction::AddSshKey => "add_ssh_key",
            UserAction::RemoveSshKey => "remove_ssh_key",
        }
    }

    /// Parses a configuration name.
    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.name() == name.trim())
            .ok_or_else(|| {
                let known: Vec<&str> = Self::ALL.iter().map(|a| a.name()).collect();
                Error::invalid(format!(
                    "unknown user action {name:?}: the user actions are {}",
                    known.join(", ")
                ))
            })
    }

    pub(crate) fn verb(self) -> &'static str {
        match self {
            UserAction::Start => "start containers",
            UserAction::Stop => "stop containers",
            UserAction::Restart => "restart containers",
            UserAction::Logs => "read logs",
            UserAction::Exec => "run commands in containers",
            UserAction::Delete => "delete containers",
            UserAction::AddSshKey => "add SSH keys",
            UserAction::RemoveSshKey => "remove SSH keys",
        }
    }
}

/// The user actions an installation allows; by default all of them, as in the original.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserActions(pub(crate) std::collections::BTreeSet<UserAction>);

impl Default for UserActions {
    fn default() -> Self {
        UserActions(UserAction::ALL.into_iter().collect())
    }
}

/// How an action is decided for a user token.
pub(crate) enum Rule {
    Always,
    AdminOnly,
    Configured(UserAction),
}

impl UserActions {
    /// Exactly these actions.
    pub fn only(actions: impl IntoIterator<Item = UserAction>) -> Self {
        UserActions(actions.into_iter().collect())
    }

    /// Whether users may do `action` (to their own containers).
    pub fn allows(&self, action: Action) -> bool {
        match Self::rule(action) {
            Rule::Always => true,
            Rule::AdminOnly => false,
            Rule::Configured(name) => self.0.contains(&name),
        }
    }

    /// The allowed actions, in order.
    pub fn iter(&self) -> impl Iterator<Item = UserAction> + '_ {
        self.0.iter().copied()
    }

    pub(crate) fn rule(action: Action) -> Rule {
        match action {
            Action::ReadContainer | Action::ReadSshInfo | Action::ReadHealth | Action::ReachApp => {
                Rule::Always
            }
            Action::CreateContainer | Action::UpdateContainer | Action::PurgeData | Action::Administer => {
                Rule::AdminOnly
            }
            Action::StartContainer => Rule::Configured(UserAction::Start),
            Action::StopContainer => Rule::Configured(UserAction::Stop),
            Action::RestartContainer => Rule::Configured(UserAction::Restart),
            Action::ReadLogs => Rule::Configured(UserAction::Logs),
            Action::Exec => Rule::Configured(UserAction::Exec),
            Action::DeleteContainer => Rule::Configured(UserAction::Delete),
            Action::AddSshKey => Rule::Configured(UserAction::AddSshKey),
            Action::RemoveSshKey => Rule::Configured(UserAction::RemoveSshKey),
        }
    }
}
