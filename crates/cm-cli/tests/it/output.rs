//! `cm`'s human and `--json` output, hermetic: the commands run through `cm_cli::execute_with`
//! against cm-core's fakes (fixed clock, counting ids), and what they print is snapshotted. The
//! real-engine modules beside this one check the same commands end to end.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use cm_cli::Host;
use cm_cli::cli::Cli;
use cm_core::testing::{FakeWorld, MemoryAudit};

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop";

/// A writer the test reads back after the command.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A fake world with `cm`'s host over it.
struct Fixture {
    world: FakeWorld,
    host: Host,
}

impl Fixture {
    fn new() -> Self {
        let world = FakeWorld::new();
        let host = Host {
            manager: world.manager.clone(),
            auditor: cm_core::Auditor::new(Arc::new(MemoryAudit::default()), Duration::from_secs(3600)),
        };
        Fixture { world, host }
    }

    /// A fixture with alice's `cli_v4` (SSH on, one key) and bob's `project_dev`, both created
    /// through `cm`.
    async fn seeded() -> Self {
        let fixture = Self::new();
        fixture
            .cm(&[
                "create",
                "alice",
                "cli_v4",
                "--ssh",
                "--ssh-key",
                KEY,
                "-e",
                "API_TOKEN=s3cret",
                "-e",
                "MODE=x",
            ])
            .await;
        fixture.cm(&["create", "bob", "project_dev"]).await;
        fixture
    }

    /// [`Fixture::seeded`] on a cluster of a manager and a worker with 4 GiB and 2 CPUs each.
    async fn clustered() -> Self {
        let fixture = Self::new();
        let node = |name: &str, octet: u8| cm_core::NodeInfo {
            name: cm_core::NodeName::parse(name).unwrap(),
            id: format!("id-{name}"),
            address: std::net::IpAddr::from([10, 99, 0, octet]),
            state: cm_core::NodeState::Ready,
            schedulable: true,
            manager: octet == 1,
            memory_bytes: 4 << 30,
            cpus: 2.0,
        };
        fixture
            .world
            .runtime
            .set_nodes(vec![node("manager-1", 1), node("worker-1", 2)]);
        fixture
            .cm(&["create", "alice", "cli_v4", "--node", "worker-1"])
            .await;
        fixture.cm(&["create", "bob", "project_dev"]).await;
        fixture
    }

    /// Runs `cm ARGS` and gives back what it prints on stdout, then its exit code (and the error
    /// `cm` would print on stderr).
    async fn cm(&self, args: &[&str]) -> String {
        let cli = Cli::try_parse_from(std::iter::once("cm").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("cm {args:?} does not parse: {e}"));
        let out = Captured::default();
        let outcome = cm_cli::execute_with(&self.host, cli, Box::new(out.clone())).await;
        let mut text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        match outcome {
            Ok(code) => {
                let number = (0..=u8::MAX).find(|n| std::process::ExitCode::from(*n) == code);
                text.push_str(&format!("[exit {}]\n", number.unwrap()));
            }
            Err(err) => {
                let code = err
                    .downcast_ref::<cm_core::Error>()
                    .map_or(2, |e| cm_cli::exit_code_of(e.kind()));
                text.push_str(&format!("[error, exit {code}] {err:#}\n"));
            }
        }
        text
    }
}

/// The world a command of [`check`] runs in.
#[derive(Clone, Copy)]
enum Seed {
    /// Nothing created.
    Empty,
    /// [`Fixture::seeded`].
    Two,
    /// [`Fixture::seeded`] on a cluster of two nodes.
    Cluster,
}

/// Runs `cm ARGS` and `cm --json ARGS`, each in a fresh world seeded by `seed`, and snapshots
/// both under `name`.
async fn check(seed: Seed, name: &str, args: &[&str]) {
    let fixture = |seed| async move {
        match seed {
            Seed::Empty => Fixture::new(),
            Seed::Two => Fixture::seeded().await,
            Seed::Cluster => Fixture::clustered().await,
        }
    };
    let human = fixture(seed).await.cm(args).await;
    let json_args: Vec<&str> = std::iter::once("--json").chain(args.iter().copied()).collect();
    let json = fixture(seed).await.cm(&json_args).await;
    insta::with_settings!({
        description => format!("cm {}", args.join(" ")),
        filters => vec![
            // The audit trail's times are the wall clock's, its local actor who runs the test.
            (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", "[time]"),
            (r"WHO +VIA", "WHO  VIA"),
            (r"local .+?  +cli", "local [user]  cli"),
            (r#"("kind": "local",\s+"name": )"[^"]*""#, "$1\"[user]\""),
        ],
    }, {
        insta::assert_snapshot!(name.to_owned(), human);
        insta::assert_snapshot!(format!("{name}_json"), json);
    });
}

#[tokio::test]
async fn create() {
    check(Seed::Empty, "create", &["create", "carol", "cli_v4", "--ssh"]).await;
    check(Seed::Two, "create_twice", &["create", "bob", "project_dev"]).await;
    check(Seed::Empty, "create_unknown_type", &["create", "carol", "nope"]).await;
}

#[tokio::test]
async fn list_and_get() {
    check(Seed::Two, "list", &["list"]).await;
    check(Seed::Empty, "list_empty", &["list"]).await;
    check(Seed::Two, "list_user", &["list", "alice"]).await;
    check(Seed::Two, "get", &["get", "alice_cli_v4"]).await;
    check(
        Seed::Two,
        "get_secrets",
        &["get", "alice_cli_v4", "--show-secrets"],
    )
    .await;
    check(Seed::Two, "get_user", &["get", "bob"]).await;
    check(Seed::Two, "get_unknown", &["get", "nobody_cli_v4"]).await;
    check(Seed::Two, "list_ssh", &["list-ssh"]).await;
}

#[tokio::test]
async fn lifecycle_stats_and_keys() {
    check(Seed::Two, "stop", &["stop", "alice_cli_v4"]).await;
    check(Seed::Two, "restart", &["restart", "bob_project_dev"]).await;
    check(Seed::Two, "stats", &["stats", "bob_project_dev"]).await;
    check(Seed::Two, "ssh_keys", &["ssh-keys", "alice_cli_v4"]).await;
    check(Seed::Two, "ssh", &["ssh", "alice_cli_v4"]).await;
}

#[tokio::test]
async fn logs_exec_update_and_key_changes() {
    check(Seed::Two, "logs", &["logs", "bob_project_dev", "--tail", "2"]).await;
    check(
        Seed::Two,
        "exec",
        &["exec", "bob_project_dev", "echo", "hi there"],
    )
    .await;
    check(Seed::Two, "exec_failing", &["exec", "bob_project_dev", "false"]).await;
    check(Seed::Two, "exec_unknown", &["exec", "nobody_cli_v4", "echo"]).await;
    check(Seed::Two, "update", &["update", "bob_project_dev"]).await;
    check(
        Seed::Two,
        "update_bad_image",
        &["update", "bob_project_dev", "--image", "Not An Image"],
    )
    .await;
    check(
        Seed::Two,
        "add_ssh_key_again",
        &["add-ssh-key", "alice_cli_v4", KEY],
    )
    .await;
    check(
        Seed::Two,
        "add_ssh_key_no_ssh",
        &["add-ssh-key", "bob_project_dev", KEY],
    )
    .await;
    check(
        Seed::Two,
        "remove_ssh_key",
        &["remove-ssh-key", "alice_cli_v4", "SHA256:C9okWi0dh2l9GKJl"],
    )
    .await;
    check(
        Seed::Two,
        "remove_ssh_key_unknown",
        &["remove-ssh-key", "alice_cli_v4", "SHA256:nope"],
    )
    .await;
}

#[tokio::test]
async fn nodes_and_placement() {
    check(Seed::Empty, "nodes_single_engine", &["nodes"]).await;
    check(Seed::Cluster, "nodes", &["nodes"]).await;
    check(Seed::Cluster, "get_placed", &["get", "alice_cli_v4"]).await;
    check(
        Seed::Cluster,
        "move",
        &["move", "alice_cli_v4", "--node", "manager-1"],
    )
    .await;
    check(
        Seed::Cluster,
        "move_to_its_node",
        &["move", "alice_cli_v4", "--node", "worker-1"],
    )
    .await;
    check(
        Seed::Cluster,
        "create_on_unknown_node",
        &["create", "carol", "cli_v4", "--node", "worker-9"],
    )
    .await;
    check(
        Seed::Empty,
        "create_on_a_node_of_one_engine",
        &["create", "carol", "cli_v4", "--node", "worker-1"],
    )
    .await;
}

#[tokio::test]
async fn types_quota_and_audit() {
    check(Seed::Empty, "types", &["types"]).await;
    check(Seed::Two, "quota_show", &["quota", "show", "alice"]).await;
    check(
        Seed::Two,
        "quota_set",
        &["quota", "set", "alice", "--containers", "3", "--memory", "4g"],
    )
    .await;
    check(
        Seed::Two,
        "quota_set_bad",
        &["quota", "set", "alice", "--memory", "lots"],
    )
    .await;
    check(Seed::Two, "audit", &["audit", "--user", "alice"]).await;
}

#[tokio::test]
async fn delete_and_reconcile() {
    check(Seed::Two, "delete_running", &["delete", "bob_project_dev"]).await;
    check(Seed::Two, "delete", &["delete", "bob_project_dev", "--force"]).await;
    check(Seed::Two, "reconcile", &["reconcile", "--dry-run"]).await;
    check(Seed::Empty, "volumes", &["volumes"]).await;
}

#[tokio::test]
async fn a_command_is_recorded_with_its_outcome() {
    let fixture = Fixture::seeded().await;
    fixture.cm(&["delete", "bob_project_dev"]).await;
    let entries = fixture
        .host
        .auditor
        .query(&cm_core::AuditQuery::default())
        .await
        .unwrap();
    let results: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e.action.as_str(), e.result.as_str()))
        .collect();
    assert_eq!(
        results,
        [
            ("delete_container", "conflict"),
            ("create_container", "ok"),
            ("create_container", "ok")
        ]
    );
    assert_eq!(fixture.world.runtime.container_names().len(), 2);
}

#[tokio::test]
async fn host_only_commands_are_refused_on_an_injected_host() {
    let fixture = Fixture::new();
    for args in [
        &["health"][..],
        &["token", "list"],
        &["--api", "http://127.0.0.1:1", "list"],
    ] {
        let text = fixture.cm(args).await;
        assert!(text.starts_with("[error, exit 2]"), "cm {args:?}: {text}");
    }
}
