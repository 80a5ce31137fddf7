//! Idle stop and wake-on-request over the in-memory fakes, with a clock the tests move: what
//! counts as activity, what the sweep stops, what a request wakes, and what it must not.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use cm_core::testing::{FakeAppProbe, FakeWorld, as_admin, create_request};
use cm_core::{
    Command, Config, ContainerSpec, ContainerStatus, LogRequest, Manager, Principal, RouteAnswer,
    RouteDenial, StatusView, TypeName, UserId, WakeOutcome,
};

const MINUTE: Duration = Duration::from_secs(60);

fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

fn kind(name: &str) -> TypeName {
    TypeName::parse(name).unwrap()
}

/// A world whose `custom` and `cli_v4` containers stop after 10 idle minutes, with a live status
/// view (as cm-api keeps one), and the manager over it.
struct Idle {
    world: FakeWorld,
    manager: Manager,
    view: Arc<StatusView>,
    feed: tokio::task::JoinHandle<()>,
}

impl Idle {
    fn new(extra: &str) -> Self {
        let config = Config::from_toml(&format!(
            "[types.custom]\nidle_stop_after = \"10m\"\n[types.cli_v4]\nidle_stop_after = 600\n{extra}"
        ))
        .unwrap();
        let world = FakeWorld::with_config(config);
        let view = StatusView::new();
        let manager = world.manager.clone().with_status_view(view.clone());
        let feeder = manager.clone();
        let fed = view.clone();
        let feed = tokio::spawn(async move { feeder.feed_status_view(fed, &|| {}).await });
        Idle {
            world,
            manager,
            view,
            feed,
        }
    }

    fn with_probe(mut self, probe: Arc<FakeAppProbe>) -> Self {
        self.manager = self.manager.clone().with_app_probe(probe);
        self
    }

    async fn create(&self, owner: &str, type_name: &str) -> ContainerSpec {
        let spec = self
            .manager
            .create(create_request(owner, type_name), &|_| {})
            .await
            .unwrap()
            .spec;
        self.view_says(&spec, ContainerStatus::Running).await;
        spec
    }

    /// The names the sweep stopped.
    async fn sweep(&self) -> Vec<String> {
        let sweep = self.manager.idle_sweep().await.unwrap();
        assert!(sweep.failed.is_empty(), "{:?}", sweep.failed);
        sweep
            .stopped
            .iter()
            .map(|s| s.container_name.to_string())
            .collect()
    }

    fn advance(&self, by: Duration) {
        self.world.clock.advance(by);
    }

    async fn status(&self, spec: &ContainerSpec) -> ContainerStatus {
        self.world
            .runtime
            .containers()
            .into_iter()
            .find(|c| c.id == spec.container_id)
            .unwrap()
            .status
    }

    /// Waits until the live view says `status` for the container (the route check answers from
    /// it; the feed applies the engine's events).
    async fn view_says(&self, spec: &ContainerSpec, status: ContainerStatus) {
        let said = tokio::time::timeout(Duration::from_secs(10), async {
            while self.view.snapshot_of(&spec.container_id) != Some(status) {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await;
        assert!(said.is_ok(), "the view never said {status}");
    }
}

impl Drop for Idle {
    fn drop(&mut self) {
        self.feed.abort();
    }
}

#[tokio::test]
async fn an_idle_container_is_stopped_and_its_owner_wakes_it_with_a_request() {
    let idle = Idle::new("");
    let spec = idle.create("alice", "custom").await;
    let (alice, custom) = (user("alice"), kind("custom"));
    let owner = Principal::User(alice.clone());
    assert!(idle.sweep().await.is_empty(), "just created");

    // A request let through is activity: the idle time starts again.
    idle.advance(9 * MINUTE);
    let answer = idle
        .manager
        .check_route(Some(&owner), &alice, &custom)
        .await
        .unwrap();
    assert!(matches!(answer, RouteAnswer::Allow { .. }), "{answer:?}");
    idle.advance(9 * MINUTE);
    assert!(idle.sweep().await.is_empty(), "active 9 minutes ago");
    idle.advance(MINUTE);
    assert_eq!(idle.sweep().await, [spec.container_name.to_string()]);
    assert_eq!(idle.status(&spec).await, ContainerStatus::Exited);
    assert!(
        idle.manager
            .idle_stopped()
            .await
            .unwrap()
            .contains(&spec.container_name)
    );
    idle.view_says(&spec, ContainerStatus::Exited).await;
    assert!(idle.sweep().await.is_empty(), "stopped once");

    // Nobody else wakes it, and a stranger learns nothing.
    let bob = Principal::User(user("bob"));
    let (answer, woken) = idle
        .manager
        .check_route_waking(Some(&bob), &alice, &custom)
        .await
        .unwrap();
    assert_eq!(
        answer,
        RouteAnswer::Deny {
            denial: RouteDenial::Forbidden
        }
    );
    assert!(woken.is_none());
    let (answer, woken) = idle
        .manager
        .check_route_waking(None, &alice, &custom)
        .await
        .unwrap();
    assert_eq!(
        answer,
        RouteAnswer::Deny {
            denial: RouteDenial::SignIn
        }
    );
    assert!(woken.is_none());
    assert_eq!(idle.status(&spec).await, ContainerStatus::Exited);

    // The owner's request starts it and goes through.
    let (answer, woken) = idle
        .manager
        .check_route_waking(Some(&owner), &alice, &custom)
        .await
        .unwrap();
    assert!(matches!(answer, RouteAnswer::Allow { .. }), "{answer:?}");
    let woken = woken.unwrap();
    assert!(woken.started_here);
    assert!(matches!(woken.outcome, WakeOutcome::Ready), "{woken:?}");
    assert_eq!(idle.status(&spec).await, ContainerStatus::Running);
    assert!(
        idle.manager.idle_stopped().await.unwrap().is_empty(),
        "the mark is gone"
    );
    // Woken, it gets a full idle period again.
    idle.advance(9 * MINUTE);
    assert!(idle.sweep().await.is_empty());
    idle.advance(MINUTE);
    assert_eq!(idle.sweep().await.len(), 1);
}

#[tokio::test]
async fn a_container_stopped_on_purpose_is_never_woken_by_a_request() {
    let idle = Idle::new("");
    let spec = idle.create("alice", "custom").await;
    let (alice, custom) = (user("alice"), kind("custom"));
    let owner = Principal::User(alice.clone());
    let container = as_admin(&idle.manager, spec.container_name.as_str())
        .await
        .unwrap();

    // Stopped by its owner: the route says so, and nothing starts it.
    idle.manager.stop(&container).await.unwrap();
    idle.view_says(&spec, ContainerStatus::Exited).await;
    let (answer, woken) = idle
        .manager
        .check_route_waking(Some(&owner), &alice, &custom)
        .await
        .unwrap();
    assert_eq!(
        answer,
        RouteAnswer::Deny {
            denial: RouteDenial::NotRunning(ContainerStatus::Exited)
        }
    );
    assert!(woken.is_none());
    assert_eq!(idle.status(&spec).await, ContainerStatus::Exited);

    // Idle-stopped, then stopped again on purpose: the purpose wins.
    idle.manager.start(&container).await.unwrap();
    idle.advance(11 * MINUTE);
    assert_eq!(idle.sweep().await.len(), 1);
    idle.manager.stop(&container).await.unwrap();
    assert!(idle.manager.idle_stopped().await.unwrap().is_empty());
    let (_, woken) = idle
        .manager
        .check_route_waking(Some(&Principal::Admin), &alice, &custom)
        .await
        .unwrap();
    assert!(woken.is_none());
    assert_eq!(idle.status(&spec).await, ContainerStatus::Exited);

    // Deleting drops the mark with the record.
    idle.manager.start(&container).await.unwrap();
    idle.advance(11 * MINUTE);
    assert_eq!(idle.sweep().await.len(), 1);
    idle.manager
        .delete(
            &as_admin(&idle.manager, spec.container_name.as_str())
                .await
                .unwrap(),
            cm_core::DeleteOptions {
                force: true,
                purge: false,
            },
        )
        .await
        .unwrap();
    assert!(idle.manager.idle_stopped().await.unwrap().is_empty());
}

#[tokio::test]
async fn types_without_idle_stop_after_are_never_stopped() {
    let idle = Idle::new("");
    let spec = idle.create("alice", "preview_server").await;
    idle.advance(1000 * MINUTE);
    assert!(idle.sweep().await.is_empty());
    assert_eq!(idle.status(&spec).await, ContainerStatus::Running);
    // Nothing is configured at all: the sweep does not even ask.
    let world = FakeWorld::new();
    world
        .manager
        .create(create_request("bob", "custom"), &|_| {})
        .await
        .unwrap();
    world.clock.advance(1000 * MINUTE);
    let sweep = world.manager.idle_sweep().await.unwrap();
    assert!(sweep.stopped.is_empty() && sweep.failed.is_empty());
}

#[tokio::test]
async fn commands_and_followed_logs_keep_a_container_active() {
    let idle = Idle::new("");
    let spec = idle.create("alice", "custom").await;
    let name = spec.container_name.as_str();
    assert!(idle.sweep().await.is_empty());

    // A command is activity when it ends.
    idle.advance(9 * MINUTE);
    idle.manager
        .exec(
            &as_admin(&idle.manager, name).await.unwrap(),
            Command::parse("echo hi").unwrap(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    idle.advance(9 * MINUTE);
    assert!(idle.sweep().await.is_empty());

    // A followed log keeps it active for as long as it is open, and its end is activity.
    let follow = idle
        .manager
        .logs(
            &as_admin(&idle.manager, name).await.unwrap(),
            &LogRequest {
                follow: true,
                ..LogRequest::default()
            },
        )
        .await
        .unwrap();
    idle.advance(60 * MINUTE);
    assert!(idle.sweep().await.is_empty(), "a follow is open");
    drop(follow);
    idle.advance(9 * MINUTE);
    assert!(idle.sweep().await.is_empty(), "the follow ended 9 minutes ago");
    idle.advance(MINUTE);
    assert_eq!(idle.sweep().await, [spec.container_name.to_string()]);
}

/// `/proc/net/tcp` of a container with sshd listening on 2222 (hex 08AE) and the app on 8080
/// (1F90), with a connection established to the port `connected` (hex), if any.
fn tcp_table(connected: Option<&str>) -> String {
    let mut table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
                     0: 00000000:08AE 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1\n\
                     1: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1\n"
        .to_owned();
    if let Some(port) = connected {
        table.push_str(&format!(
            "   2: 0B00A8C0:{port} 0100A8C0:D2F4 01 00000000:00000000 02:000A7B1C 00000000     0        0 2\n"
        ));
    }
    table
}

#[tokio::test]
async fn an_open_ssh_session_keeps_a_container_active_and_an_unreadable_table_keeps_it_running() {
    let idle = Idle::new("");
    let spec = idle.create("alice", "cli_v4").await;
    assert!(spec.ssh_port.is_some());
    assert!(idle.sweep().await.is_empty());
    idle.advance(11 * MINUTE);
    idle.world
        .runtime
        .put_file(&spec.container_id, "/proc/net/tcp", "");
    // No table to read (an image without cat, say): not stopped.
    let sweep = idle.manager.idle_sweep().await.unwrap();
    assert!(sweep.stopped.is_empty() && sweep.failed.is_empty());
    assert_eq!(idle.status(&spec).await, ContainerStatus::Running);

    // It is asked again only after another idle period, then with a session: active now.
    idle.world
        .runtime
        .put_file(&spec.container_id, "/proc/net/tcp", &tcp_table(Some("08AE")));
    idle.advance(9 * MINUTE);
    assert!(idle.sweep().await.is_empty());
    idle.advance(MINUTE);
    assert!(idle.sweep().await.is_empty());
    idle.world
        .runtime
        .put_file(&spec.container_id, "/proc/net/tcp", &tcp_table(None));
    idle.advance(9 * MINUTE);
    assert!(
        idle.sweep().await.is_empty(),
        "the session was seen 9 minutes ago"
    );
    idle.advance(MINUTE);
    assert_eq!(idle.sweep().await, [spec.container_name.to_string()]);
}

#[tokio::test]
async fn concurrent_requests_start_a_container_once_and_wait_for_its_app() {
    let probe = Arc::new(FakeAppProbe::default());
    let idle = Idle::new("[idle]\nwake_wait_seconds = 1\n").with_probe(probe.clone());
    let spec = idle.create("alice", "custom").await;
    let (alice, custom) = (user("alice"), kind("custom"));
    assert!(idle.sweep().await.is_empty());
    idle.advance(11 * MINUTE);
    assert_eq!(idle.sweep().await.len(), 1);
    idle.view_says(&spec, ContainerStatus::Exited).await;

    // The app does not answer within the wait: "starting", started by exactly one request.
    let owner = Principal::User(alice.clone());
    let wakes = (0..4).map(|_| idle.manager.check_route_waking(Some(&owner), &alice, &custom));
    let results = futures_util::future::join_all(wakes).await;
    let mut started = 0;
    for result in results {
        let (answer, woken) = result.unwrap();
        assert_eq!(
            answer,
            RouteAnswer::Deny {
                denial: RouteDenial::Starting
            }
        );
        let woken = woken.unwrap();
        assert!(matches!(woken.outcome, WakeOutcome::Starting), "{woken:?}");
        started += usize::from(woken.started_here);
    }
    assert_eq!(started, 1, "one start for four requests");
    assert!(probe.asked() > 0);
    assert_eq!(idle.status(&spec).await, ContainerStatus::Running);

    // The app answers: the next request goes through (the container runs, nothing to wake).
    probe.answer_on(spec.port);
    let (answer, woken) = idle
        .manager
        .check_route_waking(Some(&owner), &alice, &custom)
        .await
        .unwrap();
    assert!(matches!(answer, RouteAnswer::Allow { .. }), "{answer:?}");
    assert!(woken.is_none());
}

#[tokio::test]
async fn an_open_connection_to_the_app_keeps_a_container_active() {
    // A WebSocket through nginx passes one route check when it opens, none while it is open.
    let idle = Idle::new("");
    let spec = idle.create("alice", "custom").await;
    assert!(idle.sweep().await.is_empty());
    idle.world
        .runtime
        .put_file(&spec.container_id, "/proc/net/tcp", &tcp_table(Some("1F90")));
    idle.advance(11 * MINUTE);
    assert!(idle.sweep().await.is_empty(), "a connection to the app is open");
    // A connection from another port (the app's own outgoing one, say) is not activity.
    idle.world
        .runtime
        .put_file(&spec.container_id, "/proc/net/tcp", &tcp_table(Some("D2F4")));
    idle.advance(10 * MINUTE);
    assert_eq!(idle.sweep().await, [spec.container_name.to_string()]);
}
