//! The command line of `cm`: clap types only. They are turned into cm-core's validated types in
//! `commands`, before anything is touched.

use clap::{Args, Parser, Subcommand};

/// ContainerManager: per-user isolated, persistent, auto-restarting Docker containers.
///
/// A container is named by its full id, a unique id prefix, or its name ({user_id}_{type}).
/// Environment: CM_CONFIG (TOML configuration), CM_DB (SQLite file), CM_SERVER_HOST (SSH host shown
/// to users), CM_PORT_POOL (START-END), DOCKER_HOST; CM_API and CM_TOKEN for a remote cm-api.
///
/// With --api (or CM_API) every container, SSH, quota, token, type and health command runs through
/// that cm-api instead of this host's database and engine, with the same output and exit codes. The
/// admin key reaches everything; a user token only that user's containers.
#[derive(Debug, Parser)]
#[command(name = "cm", version)]
pub struct Cli {
    /// Print one JSON document on stdout instead of tables.
    #[arg(long, global = true)]
    pub json: bool,

    /// Run through this cm-api (such as https://cm.example.org) instead of the local database and
    /// engine.
    #[arg(long, global = true, env = "CM_API", value_name = "URL")]
    pub api: Option<String>,

    /// The credential for --api: the admin key or a user token.
    #[arg(
        long,
        global = true,
        env = "CM_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,

    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create and start a user's container of a type.
    Create(CreateArgs),
    /// List containers: one user's, or all.
    List {
        /// Only this user's containers.
        user_id: Option<String>,
        /// All containers (the default without a user id).
        #[arg(long)]
        all: bool,
    },
    /// Show one container with its live status.
    Get {
        /// Id, id prefix or name.
        id: String,
        /// Show secret-looking environment values (names with KEY, TOKEN, SECRET, PASSWORD...)
        /// instead of ***.
        #[arg(long)]
        show_secrets: bool,
    },
    /// Start a stopped container.
    Start {
        /// Id, id prefix or name.
        id: String,
    },
    /// Stop a container (it stays stopped until started; its route answers 502 meanwhile).
    Stop {
        /// Id, id prefix or name.
        id: String,
    },
    /// Restart a container.
    Restart {
        /// Id, id prefix or name.
        id: String,
    },
    /// A container's CPU, memory, processes and I/O (sampled over a second), restarts, last exit
    /// code and OOM kill.
    Stats {
        /// Id, id prefix or name.
        id: String,
    },
    /// Print a container's output.
    Logs {
        /// Id, id prefix or name.
        id: String,
        /// Only the last N lines.
        #[arg(long, default_value_t = 100)]
        tail: usize,
        /// Keep printing new output until interrupted.
        #[arg(long, short)]
        follow: bool,
        /// Start each line with its time (RFC 3339, from the engine).
        #[arg(long, short)]
        timestamps: bool,
        /// Only output since this time: a duration ago (10m, 2h, 1d) or an RFC 3339 time.
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
    },
    /// Run a command in a running container; exits with the command's exit code.
    ///
    /// `cm exec NAME ls -la /data` and `cm exec NAME -- ls -la /data` run the words as they are
    /// (as `docker exec` does); one quoted word, `cm exec NAME 'ls -la /data'`, is split like a
    /// shell splits words. No shell runs it unless you name one (`sh -c '...'`).
    Exec {
        /// Kill the command after this many seconds.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        /// Id, id prefix or name.
        id: String,
        /// The program and its arguments, or one quoted command line.
        #[arg(required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Delete a container, its route, keys and ports; the data volume stays unless --purge.
    Delete {
        /// Id, id prefix or name.
        id: String,
        /// Delete even when it is running.
        #[arg(long)]
        force: bool,
        /// Also delete the data volume (irreversible).
        #[arg(long)]
        purge: bool,
    },
    /// Re-create a container with a new image (or its type's current one), keeping its name,
    /// ports, volume, environment, limits, keys and route; rolls back if the new one fails.
    Update {
        /// Id, id prefix or name.
        id: String,
        /// The new image; the type's configured image when left out.
        #[arg(long)]
        image: Option<String>,
    },
    /// Move a container to another node with its data (a Swarm runtime): stopped, its volume
    /// copied, re-created there with the same name, ports, keys and route; back where it was if
    /// anything fails.
    Move {
        /// Id, id prefix or name.
        id: String,
        /// The node to move it to (see `cm nodes`).
        #[arg(long)]
        node: String,
    },
    /// Compare the store with the engine, nginx and the keys, and converge: finish or undo
    /// interrupted operations, re-create lost containers, re-apply keys and routes, free leaked
    /// leases, report orphans.
    Reconcile {
        /// Only report what would be done.
        #[arg(long)]
        dry_run: bool,
        /// Also remove orphans (labelled objects no record explains).
        #[arg(long)]
        prune: bool,
    },
    /// Take over the containers the Python original made (its labels: user-id, container-type,
    /// port, ssh-port), keeping their ports, data and SSH key: in place, or re-created on this
    /// installation's profile with --recreate.
    Adopt {
        /// Only report what would be adopted.
        #[arg(long)]
        dry_run: bool,
        /// Re-create each adopted container from its type's image and limits (same ports and
        /// volume); a failed re-create keeps the original container.
        #[arg(long)]
        recreate: bool,
        /// The original's records (its TBEF.DB export: a JSON object of CONTAINER:: keys) to
        /// take the environment, image and creation time from.
        #[arg(long, value_name = "FILE")]
        records: Option<std::path::PathBuf>,
        /// Only this user's containers (repeatable): move a host user by user.
        #[arg(long = "user", value_name = "USER_ID")]
        users: Vec<String>,
    },
    /// The audit trail: who changed what (API, dashboard, cm) and every sign-in, newest first.
    Audit {
        /// Only entries by or about this user.
        #[arg(long = "user", value_name = "USER_ID")]
        user: Option<String>,
        /// Only entries about this container (name, id or id prefix).
        #[arg(long, value_name = "CONTAINER")]
        container: Option<String>,
        /// Only entries since a duration ago (10m, 2h, 7d) or a time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// At most this many entries.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// List the configured container types.
    Types,
    /// Print a new random admin key (set it as CONTAINER_ADMIN_KEY).
    GenerateKey,
    /// Show the engine's health and the HTTP routing state.
    Health,
    /// Print a shell completion script: `cm completions bash > /etc/bash_completion.d/cm`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write the manual pages (cm.1 and one per command, such as cm-create.1) into a directory.
    Man {
        /// Where to write them (created if missing).
        #[arg(long, default_value = ".")]
        out: std::path::PathBuf,
    },
    /// List the nginx routes with their state; `routes sync` re-renders them from the store.
    Routes {
        /// `sync`: render every route from the store and remove the others.
        #[command(subcommand)]
        action: Option<RoutesCommand>,
    },
    /// Wire nginx: `nginx setup` writes the site file (routes, the route check, the sign-in page)
    /// into nginx's conf.d, checks it with `nginx -t`, then reloads or starts nginx.
    #[command(subcommand)]
    Nginx(NginxCommand),
    /// List the data volumes kept by deletes without --purge; `volumes purge NAME` removes one.
    Volumes {
        /// `purge NAME`: remove a kept data volume for good.
        #[command(subcommand)]
        action: Option<VolumesCommand>,
    },
    /// Manage users' API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Show or set a user's quota (containers, memory, CPUs, disk); `[quota]` sets the defaults.
    #[command(subcommand)]
    Quota(QuotaCommand),
    /// Authorize an SSH public key on a container.
    AddSshKey {
        /// Id, id prefix or name.
        id: String,
        /// The public key line (ssh-ed25519 AAAA... comment).
        key: String,
    },
    /// List the SSH keys of a container with their fingerprints.
    SshKeys {
        /// Id, id prefix or name.
        id: String,
    },
    /// Remove an SSH key from a container by fingerprint.
    RemoveSshKey {
        /// Id, id prefix or name.
        id: String,
        /// The SHA256:... fingerprint.
        fingerprint: String,
    },
    /// List the nodes of a Swarm runtime: state, capacity and what the manager placed on each.
    Nodes,
    /// List the SSH-enabled containers.
    ListSsh {
        /// Only this user's containers.
        user_id: Option<String>,
    },
    /// Show how to connect to a container over SSH.
    Ssh {
        /// Id, id prefix or name.
        id: String,
        /// Run the system ssh client now.
        #[arg(long)]
        connect: bool,
    },
}

/// `cm routes ...`.
#[derive(Debug, Subcommand)]
pub enum RoutesCommand {
    /// Render every route from the store, remove routes no container explains, reload once.
    Sync,
}

/// `cm nginx ...`.
#[derive(Debug, Subcommand)]
pub enum NginxCommand {
    /// Write nginx's configuration for the containers' routes, check it, reload or start nginx.
    Setup {
        /// Where nginx serves the containers (default: `[nginx] listen`, 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// nginx's `server_name` for path routing (default: `[nginx] server_name`, `_`).
        #[arg(long)]
        server_name: Option<String>,
        /// Where cm-api listens (default: CM_LISTEN, else 127.0.0.1:8123).
        #[arg(long, env = "CM_LISTEN", default_value = "127.0.0.1:8123")]
        api: std::net::SocketAddr,
        /// Print the configuration (one file to include at http level) instead of installing it.
        #[arg(long)]
        print: bool,
    },
}

/// `cm volumes ...`.
#[derive(Debug, Subcommand)]
pub enum VolumesCommand {
    /// Remove a kept data volume for good (irreversible).
    Purge {
        /// The volume, such as usr_123_cli_v4_data.
        name: String,
    },
}

/// `cm quota ...`.
#[derive(Debug, Subcommand)]
pub enum QuotaCommand {
    /// The limits in force for a user, the admin's overrides, and what the user's containers hold.
    Show {
        /// The user id.
        user_id: String,
    },
    /// Override a user's quota; limits not given keep their current override. `--clear` drops
    /// every override (the defaults apply again).
    Set {
        /// The user id.
        user_id: String,
        /// How many containers.
        #[arg(long)]
        containers: Option<u32>,
        /// The sum of the containers' memory limits, such as 4g.
        #[arg(long)]
        memory: Option<String>,
        /// The sum of the containers' CPU limits, such as 2.5.
        #[arg(long)]
        cpus: Option<f64>,
        /// The sum of the containers' disk caps, such as 20g (only types with a disk cap fit).
        #[arg(long)]
        disk: Option<String>,
        /// Drop the overrides first.
        #[arg(long)]
        clear: bool,
    },
}

/// `cm token ...`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token for a user; it is shown once.
    Create {
        /// The user the token acts for.
        user_id: String,
        /// Let it stop working after this long, such as 30d or 12h (default: never).
        #[arg(long)]
        expires: Option<humantime::Duration>,
    },
    /// Revoke all tokens of a user, or one token by its id.
    Revoke {
        /// A user id (all their tokens) or a token id.
        user_or_token: String,
    },
    /// List tokens (ids and users, never the secrets).
    List,
}

/// Arguments of `create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The user id (letters, digits, '_' and '-').
    pub user_id: String,
    /// The container type.
    #[arg(default_value = "cli_v4")]
    pub container_type: String,
    /// Use this image instead of the type's.
    #[arg(long)]
    pub image: Option<String>,
    /// Run this command instead of the image's default.
    #[arg(long)]
    pub command: Option<String>,
    /// An environment variable, KEY=VALUE (repeatable).
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Memory limit, such as 512m or 2g.
    #[arg(long)]
    pub memory: Option<String>,
    /// CPU limit, such as 0.5 or 2.
    #[arg(long)]
    pub cpus: Option<String>,
    /// Turn SSH on for a type where it is optional.
    #[arg(long)]
    pub ssh: bool,
    /// An SSH public key to authorize from the start (repeatable).
    #[arg(long = "ssh-key", value_name = "KEY")]
    pub ssh_keys: Vec<String>,
    /// The node to place it on (a Swarm runtime; see `cm nodes`); by default the node with the
    /// most memory free.
    #[arg(long)]
    pub node: Option<String>,
}
