//! ContainerManager's core: validated domain types, the ports (traits) adapters implement, and the
//! use cases in [`Manager`]. This crate does no I/O; adapters and frontends do.
//!
//! Embedding it means building a [`Manager`] from a [`Config`] and a set of [`Adapters`]: the real
//! ones (cm-docker, cm-store, cm-nginx, cm-ssh) or, with the `testing` feature, the in-memory fakes
//! in [`testing`].

mod access;
mod actions;
mod adopt;
mod audit;
mod auth;
mod config;
mod engine_view;
mod error;
mod events;
mod health;
mod idle;
mod keys;
mod limits;
mod live;
mod manager;
mod metrics;
mod names;
mod network;
mod placement;
mod ports;
mod quota;
mod reconcile;
mod routing;
mod spec;
mod usecase;
mod values;

#[cfg(feature = "testing")]
pub mod contract;
#[cfg(feature = "testing")]
pub mod testing;

pub use access::AuthorizedContainer;
pub use adopt::{AdoptOptions, AdoptOutcome, Adoption, OriginalRecords};
pub use audit::{Actor, AuditEntry, AuditLog, AuditQuery, Auditor, Source as AuditSource, name_like};
pub use auth::{
    Action, AdminKeySource, Auth, CredentialStore, Entropy, ExternalIdentity, IdentityVerifier, Principal,
    Secret, SecretHash, Ticket, TokenRecord, UserAction, UserActions,
};
pub use config::{
    Access, Config, ContainerType, DATA_PATH, Envelope, HealthSettings, HostMode, IdleSettings,
    LimitSettings, NginxSettings, RestartPolicy, RoutingMode, RoutingSettings, RuntimeKind, RuntimeSettings,
    SSH_CONTAINER_PORT, SSH_USER, SshMode, SshSettings, ToolboxIdentity, check_exec_user, check_label,
};
pub use engine_view::{DiscoveredService, EngineCounts};
pub use error::{Error, ErrorKind, Result};
pub use events::{ContainerState, LiveEvent, LiveEvents};
pub use health::{ContainerHealth, HISTORY_POINTS, LAST_LOG_LINES, UsagePoint};
pub use idle::{IdleStop, IdleSweep, WakeOutcome, Woken};
pub use keys::{
    COMMENT_MAX, ED25519, KEY_LINE_MAX, SshPublicKey, StoredKey, comment_is_safe, render_authorized_keys,
};
pub use limits::Slot;
pub use live::StatusView;
pub use manager::{Adapters, Manager};
pub use names::{ContainerName, NetworkName, NodeName, TypeName, UserId, VolumeName};
pub use network::{PortProbe, PortRange, Subnet, SubnetPool};
pub use ports::{
    AppProbe, Clock, ContainerEvent, ContainerPlan, ContainerRuntime, ContainerStats, CreateReservation,
    DiskSupport, DiskUsage, EngineContainer, EngineInfo, Ensured, EventStream, ExecOutput, ExecRequest,
    FailPoints, ForeignContainer, KeyParser, LogChunk, LogRequest, LogStream, NetworkPlan, NoFailPoints,
    NoProxy, NodeInfo, NodeState, ObservedContainer, ObservedObject, Operation, OperationKind, OutputStream,
    PortBinding, PortLease, Proxy, ProxyStatus, ReloadOutcome, RemoveMode, Route, RouteState, RouteStatus,
    Store, SystemClock, UploadEntry, VolumePlan,
};
pub use quota::{QuotaReport, QuotaUse, UserQuota};
pub use reconcile::{
    CONCURRENCY, Finding, FindingKind, Outcome, PREVIOUS_SUFFIX, RECORD_TIME_LIMIT, ReconcileOptions,
    ReconcileReport,
};
pub use routing::{RouteAnswer, RouteDenial};
pub use spec::{CRASH_LOOP_RESTARTS, ContainerSpec, ContainerStatus, labels, owner_labels, url_path};
pub use usecase::create::{CreateForm, CreateOutcome, CreateRequest, PORT_TAKEN_FIELD};
pub use usecase::delete::DeleteOptions;
pub use usecase::exec::DEFAULT_EXEC_TIMEOUT;
pub use usecase::keys::{KeyAdded, SshInfo, ssh_command};
pub use usecase::lifecycle::Lifecycle;
pub use usecase::lookup::{Listing, ListingRevision};
pub use usecase::nodes::NodeReport;
pub use usecase::relocate::Moved;
pub use values::{
    Command, CpuLimit, DiskSize, EnvVars, ImageRef, LogRotation, MemoryLimit, REDACTED, SECRET_MARKERS,
    is_secret_name,
};
