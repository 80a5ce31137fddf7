//! The parameter sets of the endpoints: what each accepts, read from [`Params`], and described for
//! the OpenAPI document (as query parameters and as the equivalent JSON body).

use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::params::{CommandParam, FromParams, Params};

/// Parameters of `create_container`.
#[derive(Debug, IntoParams, ToSchema)]
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
    pub env: Vec<String>,
    /// A memory limit such as `512m` or `1g`, replacing the type's (also as `memory_limit`).
    pub memory: Option<String>,
    /// A CPU limit such as `0.5`, replacing the type's (also as `cpu_limit`).
    pub cpus: Option<String>,
    /// The original's container name: accepted when it is the one the manager gives,
    /// `{user_id}_{container_type}` (names are not chosen freely: one container per user and type).
    pub container_name: Option<String>,
    /// The original's `pull`: `false` is accepted; `true` is refused, as images are local (built
    /// by `images/build.sh`), never pulled.
    pub pull: Option<bool>,
    /// Turn SSH on for a type where it is optional.
    pub enable_ssh: Option<bool>,
    /// An ed25519 public key to authorize from the start (turns SSH on where optional).
    pub ssh_public_key: Option<String>,
    /// More public keys.
    #[schema(value_type = Option<Vec<String>>)]
    #[param(value_type = Option<Vec<String>>)]
    pub ssh_keys: Vec<String>,
}

/// Parameters of `list_containers` and `list_ssh_containers`.
#[derive(Debug, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only this user's containers (admin). With a user token it may only name that user; it is
    /// never proof of identity.
    pub user_id: Option<String>,
    /// Every user's containers (admin only; the default for the admin without `user_id`).
    pub all: Option<bool>,
}

/// Parameters of the endpoints about one container.
#[derive(Debug, IntoParams, ToSchema)]
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
#[derive(Debug, IntoParams, ToSchema)]
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
#[derive(Debug, IntoParams, ToSchema)]
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
#[derive(Debug, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct UpdateParams {
    /// The container: id, unique id prefix or name.
    pub container_id: String,
    /// The new image; the type's configured image when left out.
    pub image: Option<String>,
}

/// Parameters of `reconcile`.
#[derive(Debug, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct ReconcileParams {
    /// Only report what would be done.
    pub dry_run: Option<bool>,
    /// Also remove orphans (labelled objects no record explains).
    pub prune: Option<bool>,
}

/// Parameters of `container_logs`.
#[derive(Debug, IntoParams, ToSchema)]
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
#[derive(Debug, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct ExecParams {
    /// The container: id, unique id prefix or name. It must be running.
    pub container_id: String,
    /// The command: one line split like a shell splits words (no shell runs it: write
    /// `sh -c '...'` for pipes), or a JSON array of words.
    #[schema(value_type = String)]
    #[param(value_type = String)]
    pub command: Option<CommandParam>,
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
#[derive(Debug, IntoParams, ToSchema)]
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
#[derive(Debug, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct RemoveKeyParams {
    /// The container: id, unique id prefix or name.
    pub container_id: String,
    /// The key's `SHA256:...` fingerprint (see `list_container_ssh_keys`).
    pub fingerprint: String,
}

/// Parameters of `register_ssh_key` (the original's self-service call).
#[derive(Debug, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct RegisterKeyParams {
    /// One `ssh-ed25519 AAAA... comment` line.
    pub ssh_public_key: String,
    /// The container (id, unique id prefix or name). A user token may leave it out: then its
    /// first SSH-enabled container (by name) gets the key. The admin must name one.
    pub container_id: Option<String>,
}

/// Parameters of `get_my_ssh_info`.
#[derive(Debug, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct MySshParams {
    /// Whose containers: a user token's own (it may name only itself); the admin must name one.
    pub user_id: Option<String>,
}

/// Parameters of `create_user_token`.
#[derive(Debug, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct UserParams {
    /// The user the token acts for.
    pub user_id: String,
}

/// Parameters of `audit_log`: which entries, newest first.
#[derive(Debug, IntoParams, ToSchema)]
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
#[derive(Debug, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct TokenParams {
    /// The user the token acts for.
    pub user_id: String,
    /// Let the token stop working after this long: seconds, or a duration such as `30d` or
    /// `12h` (1 minute to 10 years; default: never).
    #[schema(value_type = Option<String>)]
    #[param(value_type = Option<String>)]
    pub expires_in: Option<String>,
}

/// Parameters of `set_user_quota`: the limits to override; absent ones keep their override,
/// `clear` drops every override first.
#[derive(Debug, IntoParams, ToSchema)]
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
    pub cpus: Option<String>,
    /// The sum of the containers' disk caps, such as `20g` (only types with a `disk` cap fit).
    pub disk: Option<String>,
    /// Drop the overrides first (the configured defaults apply again).
    pub clear: Option<bool>,
}

/// Parameters of `revoke_user_token`: exactly one of the two.
#[derive(Debug, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct RevokeParams {
    /// Revoke every token of this user.
    pub user_id: Option<String>,
    /// Revoke the token with this public id.
    pub token_id: Option<String>,
}

/// Endpoints without parameters.
#[derive(Debug)]
pub struct NoParams;

impl FromParams for CreateParams {
    const FIELDS: &'static [&'static str] = &[
        "user_id",
        "container_type",
        "image",
        "command",
        "env",
        "memory",
        "cpus",
        "enable_ssh",
        "ssh_public_key",
        "ssh_keys",
        "container_name",
        "pull",
        // The original's names of env, memory and cpus.
        "environment",
        "memory_limit",
        "cpu_limit",
    ];

    fn from_params(p: &mut Params) -> Result<Self, ApiError> {
        p.alias("env", "environment")?;
        p.alias("memory", "memory_limit")?;
        p.alias("cpus", "cpu_limit")?;
        Ok(CreateParams {
            user_id: p.required_string("user_id")?,
            container_type: p.string("container_type")?,
            image: p.string("image")?,
            command: p.command("command")?,
            env: p.assignments("env")?,
            memory: p.text_or_number("memory")?,
            cpus: p.text_or_number("cpus")?,
            enable_ssh: p.bool("enable_ssh")?,
            ssh_public_key: p.string("ssh_public_key")?,
            ssh_keys: p.strings("ssh_keys")?,
            container_name: p.string("container_name")?,
            pull: p.bool("pull")?,
        })
    }
}

impl FromParams for ListParams {
    const FIELDS: &'static [&'static str] = &["user_id", "all"];

    fn from_params(p: &mut Params) -> Result<Self, ApiError> {
        Ok(ListParams {
            user_id: p.string("user_id")?,
            all: p.bool("all")?,
        })
    }
}

impl FromParams for ContainerRef {
    const FIELDS: &'static [&'static str] = &["container_id"];

    fn from_params(p: &mut Params) -> Result<Self, ApiError> {
        Ok(ContainerRef {
            container_id: p.required_string("container_id")?,
            user_id: p.string("user_id")?,
        })
    }
}

impl FromParams for GetParams {
    const FIELDS: &'static [&'static str] = &["container_id", "health"];

    fn from_params(p: &mut Params) -> Result<Self, ApiError> {
        Ok(GetParams {
            container_id: p.required_string("container_id")?,
            health: p.bool("health")?,
            user_id: p.string("user_id")?,
        })
    }
}

impl FromParams for DeleteParams {
    const FIELDS: &'static [&'static str] = &["container_id", "force", "purge"];

    fn from_params(p: &mut Params) -> Result<Self, ApiError> {
        Ok(DeleteParams {
            container_id: p.required_string("container_id")?,
            force: p.bool("force")?,
            purge: p.bool("purge")?,
            user_id: p.string("user_id")?,
        })
    }
}

impl FromParams for UpdateParams {
    const FIELDS: &'static [&'static str] = &["container_id", "image"];

    fn from_params(p: &mut Params) -> Result<Self, ApiError> {
        Ok(UpdateParams {
            container_id: p.required_string("container_id")?,
            image: p.string("image")?,
        })
    }
}

impl FromParams for ReconcileParams {
    const FIELDS: &'static [&'static str] = &["dry_run", "prune"];

    fn from_params(p: &mut Params) -> Result<Self, ApiError> {
        Ok(ReconcileParams {
            dry_run: p.bool("dry_run")?,
            prune: p.bool("prune")?,
        })
    }
}

impl FromParams for LogsParams {
    const FIELDS: &'static [&'static str] = &["container_id", "tail", "follow", "timestamps", "since"];

    fn from_params(p: &mut Params) -> Result<Self, ApiError> {
        Ok(LogsParams {
            container_id: p.required_string("container_id")?,
            tail: p.uint("tail")?,
            follow: p.bool("follow")?,
            timestamps: p.bool("timestamps")?,
            since: p.string("since")?,
            user_id: p.string("user_id")?,
        })
    }
}

impl FromParams for ExecParams {
    const FIELDS: &'static [&'static str] = &["container_id", "command", "timeout", "user"];

    fn from_params(p: &mut Params) -> Result<Self, ApiError> {
        let container_id = p.required_string("container_id")?;
        let command = p.command("command")?;
        if command.is_none() {
            return Err(ApiError::bad_request("parameter command is required").for_field("command"));
        }
        let user = p.string("user")?;
        if let Some(user) = &user {
            cm_core::check_exec_user(user).map_err(|e| ApiError::from(e).for_field("user"))?;
        }
        Ok(ExecParams {
            container_id,
            command,
            timeout: p.uint("timeout")?,
            user,
            user_id: p.string("user_id")?,
        })
    }
}

impl FromParams for AddKeyParams {
    const FIELDS: &'static [&'static str] = &["container_id", "ssh_public_key"];

    fn from_params(p: &mut Params) -> Result<Self, ApiError> {
        Ok(AddKeyParams {
            container_id: p.required_string("container_id")?,
            ssh_public_key: p.required_string("ssh_public_key")?,
            user_id: p.string("user_id")?,
        })
    }
}

impl FromParams for RemoveKeyParams {
    const FIELDS: &'static [&'static str] = &["container_id", "fingerprint"];

    fn from_params(p: &mut Params) -> Result<Self, ApiError> {
        Ok(RemoveKeyParams {
            container_id: p.required_string("container_id")?,
            fingerprint: p.required_string("fingerprint")?,
        })
    }
}

impl FromParams for RegisterKeyParams {
    const FIELDS: &'static [&'static str] = &["ssh_public_key", "container_id"];

    fn from_params(p: &mut Params) -> Result<Self, ApiError> {
        Ok(RegisterKeyParams {
            ssh_public_key: p.required_string("ssh_public_key")?,
            container_id: p.string("container_id")?,
        })
    }
}

impl FromParams for MySshParams {
    const FIELDS: &'static [&'static str] = &["user_id"];

    fn from_params(p: &mut Params) -> Result<Self, ApiError> {
        Ok(MySshParams {
            user_id: p.string("user_id")?,
        })
    }
}

impl FromParams for UserParams {
    const FIELDS: &'static [&'static str] = &["user_id"];

    fn from_params(p: &mut Params) -> Result<Self, ApiError> {
        Ok(UserParams {
            user_id: p.required_string("user_id")?,
        })
    }
}

impl FromParams for AuditParams {
    const FIELDS: &'static [&'static str] = &["user_id", "container_id", "since", "limit"];

    fn from_params(p: &mut Params) -> Result<Self, ApiError> {
        Ok(AuditParams {
            user_id: p.string("user_id")?,
            container_id: p.string("container_id")?,
            since: p.string("since")?,
            limit: p.uint("limit")?,
        })
    }
}

impl FromParams for TokenParams {
    const FIELDS: &'static [&'static str] = &["user_id", "expires_in"];

    fn from_params(p: &mut Params) -> Result<Self, ApiError> {
        Ok(TokenParams {
            user_id: p.required_string("user_id")?,
            expires_in: p.text_or_number("expires_in")?,
        })
    }
}

impl FromParams for QuotaParams {
    const FIELDS: &'static [&'static str] = &["user_id", "containers", "memory", "cpus", "disk", "clear"];

    fn from_params(p: &mut Params) -> Result<Self, ApiError> {
        Ok(QuotaParams {
            user_id: p.required_string("user_id")?,
            containers: p.uint("containers")?,
            memory: p.string("memory")?,
            cpus: p.text_or_number("cpus")?,
            disk: p.string("disk")?,
            clear: p.bool("clear")?,
        })
    }
}

impl FromParams for RevokeParams {
    const FIELDS: &'static [&'static str] = &["user_id", "token_id"];

    fn from_params(p: &mut Params) -> Result<Self, ApiError> {
        let params = RevokeParams {
            user_id: p.string("user_id")?,
            token_id: p.string("token_id")?,
        };
        if params.user_id.is_some() == params.token_id.is_some() {
            return Err(ApiError::bad_request(
                "give exactly one of user_id (revoke all of a user's tokens) and token_id",
            ));
        }
        Ok(params)
    }
}

impl FromParams for NoParams {
    const FIELDS: &'static [&'static str] = &[];

    fn from_params(_: &mut Params) -> Result<Self, ApiError> {
        Ok(NoParams)
    }
}
