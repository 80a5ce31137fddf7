//! The parameter sets of the endpoints, declared once: each struct's fields are what the endpoint
//! accepts (read with serde through [`crate::params::Params::parse`], which refuses any other
//! name), and what the OpenAPI document describes (as query parameters and as the equivalent JSON
//! body).

use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::params::{CommandParam, ParamSet, assignments, text_or_number};

/// Parameters of `create_container`.
#[derive(Debug, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct CreateParams {
    /// The owner: 1-63 letters, digits, `_` and `-`, starting with a letter or digit.
    pub user_id: String,
    /// A configured type (`cli_v4`, `project_dev`, `preview_server`, `custom`, ... see
    /// `list_types`); `cli_v4` when absent, as in the original.
    pub container_type: Option<String>,
    /// An image replacing the type's default.
    pub image: Option<String>,
    /// A command replacing the type's: one line (split like a shell splits words, never run by a
    /// host shell) or a JSON array of words.
    #[schema(value_type = Option<String>)]
    #[param(value_type = Option<String>)]
    pub command: Option<CommandParam>,
    /// Extra environment: `KEY=VALUE` texts (repeat the query parameter for several) or a JSON
    /// object of names to values. The original's name `environment` is accepted too.
    #[schema(value_type = Option<Vec<String>>)]
    #[param(value_type = Option<Vec<String>>)]
    #[serde(default, deserialize_with = "assignments")]
    pub env: Vec<String>,
    /// A memory limit such as `512m` or `1g`, replacing the type's (also as `memory_limit`).
    #[serde(default, deserialize_with = "text_or_number")]
    pub memory: Option<String>,
    /// A CPU limit such as `0.5`, replacing the type's (also as `cpu_limit`).
    #[serde(default, deserialize_with = "text_or_number")]
    pub cpus: Option<String>,
    /// Turn SSH on for a type where it is optional.
    pub enable_ssh: Option<bool>,
    /// An ed25519 public key to authorize from the start (turns SSH on where optional).
    pub ssh_public_key: Option<String>,
    /// More public keys.
    #[schema(value_type = Option<Vec<String>>)]
    #[param(value_type = Option<Vec<String>>)]
    #[serde(default)]
    pub ssh_keys: Vec<String>,
    /// The original's container name: accepted when it is the one the manager gives,
    /// `{user_id}_{container_type}` (names are not chosen freely: one container per user and type).
    pub container_name: Option<String>,
    /// The original's `pull`: `false` is accepted; `true` is refused, as images are local (built
    /// by `images/build.sh`), never pulled.
    pub pull: Option<bool>,
    /// The node to place it on, by host name (a Swarm runtime only; see `list_nodes`); left out,
    /// the node with the most memory free.
    pub node: Option<String>,
}

/// Parameters of `list_containers` and `list_ssh_containers`.
#[derive(Debug, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only this user's containers (admin). With a user token it may only name that user; it is
    /// never proof of identity.
    pub user_id: Option<String>,
    /// Every user's containers (admin only; the default for the admin without `user_id`).
    pub all: Option<bool>,
}

/// Parameters of the endpoints about one container.
#[derive(Debug, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct ContainerRef {
    /// The container: its Docker id, a unique id prefix, or its name `{user_id}_{type}`.
    pub container_id: String,
    /// Accepted for compatibility with the original clients and ignored: ownership comes from the
    /// credentials.
    #[allow(
        dead_code,
        reason = "read only to accept it; ownership comes from the credentials"
    )]
    pub user_id: Option<String>,
}

/// Parameters of `get_container`.
#[derive(Debug, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct GetParams {
    /// The container: its Docker id, a unique id prefix, or its name `{user_id}_{type}`.
    pub container_id: String,
    /// Also report how it is doing (`health`): uptime, restarts, last exit code, OOM kill, CPU
    /// and memory use (the engine samples for about a second), recent use, and the last output
    /// lines of a failing container.
    pub health: Option<bool>,
    /// Accepted and ignored (compatibility).
    #[allow(
        dead_code,
        reason = "read only to accept it; ownership comes from the credentials"
    )]
    pub user_id: Option<String>,
}

/// Parameters of `delete_container`.
#[derive(Debug, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct DeleteParams {
    /// The container: id, unique id prefix or name.
    pub container_id: String,
    /// Kill a running container instead of refusing with 409.
    pub force: Option<bool>,
    /// Also remove the data volume (by default the data outlives the container).
    pub purge: Option<bool>,
    /// Accepted and ignored (compatibility).
    #[allow(
        dead_code,
        reason = "read only to accept it; ownership comes from the credentials"
    )]
    pub user_id: Option<String>,
}

/// Parameters of `update_container`.
#[derive(Debug, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct UpdateParams {
    /// The container: id, unique id prefix or name.
    pub container_id: String,
    /// The new image; the type's configured image when left out.
    pub image: Option<String>,
}

/// Parameters of `move_container`.
#[derive(Debug, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct MoveParams {
    /// The container: id, unique id prefix or name.
    pub container_id: String,
    /// The node to move it to, by host name (see `list_nodes`).
    pub node: String,
}

/// Parameters of `reconcile`.
#[derive(Debug, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct ReconcileParams {
    /// Only report what would be done.
    pub dry_run: Option<bool>,
    /// Also remove orphans (labelled objects no record explains).
    pub prune: Option<bool>,
}

/// Parameters of `container_logs`.
#[derive(Debug, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct LogsParams {
    /// The container: id, unique id prefix or name.
    pub container_id: String,
    /// How many last lines (default 100, at most 100000).
    pub tail: Option<u64>,
    /// Keep the answer open and stream new output as `text/plain` (chunked) until the client
    /// disconnects or the container stops.
    pub follow: Option<bool>,
    /// Start each line with the engine's RFC 3339 time of it.
    pub timestamps: Option<bool>,
    /// Only output since then: a duration ago (`10m`, `2h`, `1d`) or an RFC 3339 time.
    pub since: Option<String>,
    /// Accepted and ignored (compatibility).
    #[allow(
        dead_code,
        reason = "read only to accept it; ownership comes from the credentials"
    )]
    pub user_id: Option<String>,
}

/// Parameters of `container_exec`.
#[derive(Debug, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct ExecParams {
    /// The container: id, unique id prefix or name. It must be running.
    pub container_id: String,
    /// The command: one line split like a shell splits words (no shell runs it: write
    /// `sh -c '...'` for pipes), or a JSON array of words.
    #[schema(value_type = String)]
    #[param(value_type = String)]
    pub command: CommandParam,
    /// The time limit in seconds (default 60, 1 to 3600); past it the command is killed and the
    /// answer is 504.
    pub timeout: Option<u64>,
    /// Admin only: the user to run as (a name, uid or uid:gid; default the image's user). A user
    /// token's commands always run as the type's `exec_user`.
    pub user: Option<String>,
    /// Accepted and ignored (compatibility).
    #[allow(
        dead_code,
        reason = "read only to accept it; ownership comes from the credentials"
    )]
    pub user_id: Option<String>,
}

/// Parameters of `add_ssh_key_to_container`.
#[derive(Debug, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct AddKeyParams {
    /// The container: id, unique id prefix or name.
    pub container_id: String,
    /// One `ssh-ed25519 AAAA... comment` line; other algorithms, options and several lines are
    /// refused.
    pub ssh_public_key: String,
    /// Accepted and ignored (compatibility).
    #[allow(
        dead_code,
        reason = "read only to accept it; ownership comes from the credentials"
    )]
    pub user_id: Option<String>,
}

/// Parameters of `remove_ssh_key_from_container`.
#[derive(Debug, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct RemoveKeyParams {
    /// The container: id, unique id prefix or name.
    pub container_id: String,
    /// The key's `SHA256:...` fingerprint (see `list_container_ssh_keys`).
    pub fingerprint: String,
}

/// Parameters of `register_ssh_key` (the original's self-service call).
#[derive(Debug, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct RegisterKeyParams {
    /// One `ssh-ed25519 AAAA... comment` line.
    pub ssh_public_key: String,
    /// The container (id, unique id prefix or name). A user token may leave it out: then its
    /// first SSH-enabled container (by name) gets the key. The admin must name one.
    pub container_id: Option<String>,
}

/// Parameters of `get_my_ssh_info`.
#[derive(Debug, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct MySshParams {
    /// Whose containers: a user token's own (it may name only itself); the admin must name one.
    pub user_id: Option<String>,
}

/// Parameters of `create_user_token`.
#[derive(Debug, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct UserParams {
    /// The user the token acts for.
    pub user_id: String,
}

/// Parameters of `audit_log`: which entries, newest first.
#[derive(Debug, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only those by or about this user (their own actions and those on their containers).
    pub user_id: Option<String>,
    /// Only those about this container (its name, id or id prefix).
    pub container_id: Option<String>,
    /// Only those since: a duration ago (`10m`, `2h`, `7d`) or a time (RFC 3339).
    pub since: Option<String>,
    /// At most this many (default 100, at most 10000).
    pub limit: Option<u64>,
}

/// Parameters of `create_user_token`.
#[derive(Debug, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct TokenParams {
    /// The user the token acts for.
    pub user_id: String,
    /// Let the token stop working after this long: seconds, or a duration such as `30d` or
    /// `12h` (1 minute to 10 years; default: never).
    #[schema(value_type = Option<String>)]
    #[param(value_type = Option<String>)]
    #[serde(default, deserialize_with = "text_or_number")]
    pub expires_in: Option<String>,
}

/// Parameters of `set_user_quota`: the limits to override; absent ones keep their override,
/// `clear` drops every override first.
#[derive(Debug, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct QuotaParams {
    /// The user.
    pub user_id: String,
    /// How many containers.
    pub containers: Option<u64>,
    /// The sum of the containers' memory limits, such as `4g`.
    pub memory: Option<String>,
    /// The sum of the containers' CPU limits, such as `2.5` (a number or its text).
    #[schema(value_type = Option<String>)]
    #[param(value_type = Option<String>)]
    #[serde(default, deserialize_with = "text_or_number")]
    pub cpus: Option<String>,
    /// The sum of the containers' disk caps, such as `20g` (only types with a `disk` cap fit).
    pub disk: Option<String>,
    /// Drop the overrides first (the configured defaults apply again).
    pub clear: Option<bool>,
}

/// Parameters of `revoke_user_token`: exactly one of the two.
#[derive(Debug, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct RevokeParams {
    /// Revoke every token of this user.
    pub user_id: Option<String>,
    /// Revoke the token with this public id.
    pub token_id: Option<String>,
}

/// Endpoints without parameters.
#[derive(Debug, Deserialize)]
pub struct NoParams;

impl ParamSet for CreateParams {
    const ALIASES: &'static [(&'static str, &'static str)] = &[
        ("env", "environment"),
        ("memory", "memory_limit"),
        ("cpus", "cpu_limit"),
    ];
}

impl ParamSet for ListParams {}

impl ParamSet for ContainerRef {
    const UNLISTED: &'static [&'static str] = &["user_id"];
}

impl ParamSet for GetParams {
    const UNLISTED: &'static [&'static str] = &["user_id"];
}

impl ParamSet for DeleteParams {
    const UNLISTED: &'static [&'static str] = &["user_id"];
}

impl ParamSet for UpdateParams {}
impl ParamSet for MoveParams {}

impl ParamSet for ReconcileParams {}

impl ParamSet for LogsParams {
    const UNLISTED: &'static [&'static str] = &["user_id"];
}

impl ParamSet for ExecParams {
    const UNLISTED: &'static [&'static str] = &["user_id"];

    fn check(self) -> Result<Self, ApiError> {
        if let Some(user) = &self.user {
            cm_core::check_exec_user(user).map_err(|e| ApiError::from(e).for_field("user"))?;
        }
        Ok(self)
    }
}

impl ParamSet for AddKeyParams {
    const UNLISTED: &'static [&'static str] = &["user_id"];
}

impl ParamSet for RemoveKeyParams {}

impl ParamSet for RegisterKeyParams {}

impl ParamSet for MySshParams {}

impl ParamSet for UserParams {}

impl ParamSet for AuditParams {}

impl ParamSet for TokenParams {}

impl ParamSet for QuotaParams {}

impl ParamSet for RevokeParams {
    fn check(self) -> Result<Self, ApiError> {
        if self.user_id.is_some() == self.token_id.is_some() {
            return Err(ApiError::bad_request(
                "give exactly one of user_id (revoke all of a user's tokens) and token_id",
            ));
        }
        Ok(self)
    }
}

impl ParamSet for NoParams {}
