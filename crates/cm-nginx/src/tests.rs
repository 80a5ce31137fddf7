//! Unit tests of the engine against a fake nginx that judges the linked files like nginx would
//! for the two faults we model: port 0 in a route, and a broken operator file.

use std::fs;
use std::path::PathBuf;
use std::sync::Mutex;

use cm_core::RouteState;

use super::*;

const FAST: Duration = Duration::from_millis(20);

/// Refuses any linked file containing `127.0.0.1:0` or the word `broken`.
struct FakeNginx {
    enabled: PathBuf,
    calls: Mutex<Vec<Action>>,
    reload_error: Mutex<Option<String>>,
}

#[async_trait]
impl Runner for FakeNginx {
    async fn run(&self, action: Action) -> std::result::Result<String, RunError> {
        self.calls.lock().unwrap().push(action);
        if action == Action::Version {
            return Ok("nginx version: nginx/1.22.1-fake".into());
        }
        // Like nginx, a reload parses the configuration first.
        let mut names: Vec<_> = fs::read_dir(&self.enabled)
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        names.sort();
        for path in names {
            let text = fs::read_to_string(&path).unwrap_or_default();
            if text.contains("127.0.0.1:0") {
                return Err(RunError::Refused(format!(
                    "[emerg] invalid port in upstream \"127.0.0.1:0/\" in {}:12",
                    path.display()
                )));
            }
            if text.contains("broken") {
                return Err(RunError::Refused(format!(
                    "[emerg] unknown directive \"broken\" in {}:1",
                    path.display()
                )));
            }
        }
        if action == Action::Reload
            && let Some(message) = self.reload_error.lock().unwrap().clone()
        {
            return Err(RunError::Refused(message));
        }
        Ok(String::new())
    }
}

struct Fixture {
    _tmp: tempfile::TempDir,
    proxy: NginxProxy,
    nginx: Arc<FakeNginx>,
    available: PathBuf,
    enabled: PathBuf,
}

async fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let available = tmp.path().join("box-available");
    let enabled = tmp.path().join("box-enabled");
    let nginx = Arc::new(FakeNginx {
        enabled: enabled.clone(),
        calls: Mutex::default(),
        reload_error: Mutex::default(),
    });
    let settings = NginxSettings {
        enabled: true,
        available_dir: available.clone(),
        enabled_dir: enabled.clone(),
        binary: "nginx".into(),
        args: vec![],
        mode: cm_core::RoutingMode::Files,
        ..cm_core::Config::defaults().nginx
    };
    let proxy = NginxProxy::detect_with(&settings, nginx.clone(), FAST).await;
    Fixture {
        _tmp: tmp,
        proxy,
        nginx,
        available,
        enabled,
    }
}

impl Fixture {
    fn count(&self, action: Action) -> usize {
        self.nginx
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|a| **a == action)
            .count()
    }

    fn file(&self, user: &str, kind: &str) -> Option<String> {
        fs::read_to_string(self.available.join(format!("container-{user}-{kind}.conf"))).ok()
    }

    fn linked(&self, user: &str, kind: &str) -> bool {
        fs::symlink_metadata(self.enabled.join(format!("container-{user}-{kind}.conf"))).is_ok()
    }

    async fn states(&self) -> Vec<(String, Option<u16>, RouteState)> {
        self.proxy
            .routes()
            .await
            .unwrap()
            .into_iter()
            .map(|s| (format!("{}/{}", s.user, s.kind), s.port, s.state))
            .collect()
    }
}

fn route(user: &str, kind: &str, port: u16) -> Route {
    Route {
        user: UserId::parse(user).unwrap(),
        kind: TypeName::parse(kind).unwrap(),
        port,
        strip_prefix: true,
    }
}

#[tokio::test]
async fn a_burst_shares_one_test_and_one_reload() {
    let f = Arc::new(fixture().await);
    let mut tasks = Vec::new();
    for i in 0..20u16 {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            f.proxy.apply(&route(&format!("user{i}"), "web", 9000 + i)).await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(f.count(Action::Test), 1);
    assert_eq!(f.count(Action::Reload), 1);
    assert_eq!(f.proxy.reload_count(), 1);
    assert_eq!(f.proxy.stats().last_reload.unwrap().error, None);
    let states = f.states().await;
    assert_eq!(states.len(), 20);
    assert!(states.iter().all(|(_, _, s)| *s == RouteState::Active));
}

#[tokio::test]
async fn processes_share_reloads_through_the_ledger() {
    // Ten proxies on the same directories stand for ten `cm` processes (each its own lock file
    // handle, batch and debounce). Each applies one route at once: the first to come back from
    // the debounce reloads for every batch written so far; the rest see it in the ledger.
    let f = fixture().await;
    let settings = NginxSettings {
        enabled: true,
        available_dir: f.available.clone(),
        enabled_dir: f.enabled.clone(),
        binary: "nginx".into(),
        args: vec![],
        mode: cm_core::RoutingMode::Files,
        ..cm_core::Config::defaults().nginx
    };
    let mut proxies = Vec::new();
    for _ in 0..10 {
        proxies.push(Arc::new(
            NginxProxy::detect_with(&settings, f.nginx.clone(), FAST).await,
        ));
    }
    let tasks: Vec<_> = proxies
        .iter()
        .enumerate()
        .map(|(i, proxy)| {
            let proxy = proxy.clone();
            let port = 9000 + u16::try_from(i).unwrap();
            tokio::spawn(async move { proxy.apply(&route(&format!("user{i}"), "web", port)).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let reloads = f.count(Action::Reload);
    // How many batches one window catches depends on scheduling (seen: 2 to 5 of 10), so the
    // bound is loose; the point is that processes share reloads instead of one each.
    assert!((1..=7).contains(&reloads), "{reloads} reloads for 10 processes");
    let shared: u64 = proxies.iter().map(|p| p.stats().shared_reloads).sum();
    assert_eq!(
        shared + u64::try_from(reloads).unwrap(),
        10,
        "every batch is covered by one reload"
    );
    assert_eq!(f.states().await.len(), 10);
}

#[tokio::test]
async fn changes_spread_over_time_go_live_at_most_once_per_interval() {
    let f = fixture().await;
    let settings = NginxSettings {
        enabled: true,
        available_dir: f.available.clone(),
        enabled_dir: f.enabled.clone(),
        binary: "nginx".into(),
        args: vec![],
        mode: cm_core::RoutingMode::Files,
        ..cm_core::Config::defaults().nginx
    };
    let timing = Timing {
        debounce: FAST,
        share_window: FAST,
        min_interval: Duration::from_millis(600),
    };
    let proxy = Arc::new(NginxProxy::detect_timed(&settings, f.nginx.clone(), timing).await);
    proxy.apply(&route("first", "web", 9000)).await.unwrap();
    assert_eq!(f.count(Action::Reload), 1);
    // Five more changes, one every 50 ms, right after that reload: they wait for the interval and
    // go live together (the worker batches what queued meanwhile).
    let mut tasks = Vec::new();
    for i in 0..5u16 {
        let proxy = proxy.clone();
        tasks.push(tokio::spawn(async move {
            proxy.apply(&route(&format!("later{i}"), "web", 9001 + i)).await
        }));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let reloads = f.count(Action::Reload);
    assert!((2..=3).contains(&reloads), "{reloads} reloads for 6 changes");
    assert_eq!(f.states().await.len(), 6);
}

#[tokio::test]
async fn applying_the_same_route_again_changes_nothing() {
    let f = fixture().await;
    f.proxy.apply(&route("alice", "web", 9001)).await.unwrap();
    f.proxy.apply(&route("alice", "web", 9001)).await.unwrap();
    assert_eq!(f.count(Action::Reload), 1);
    assert_eq!(f.count(Action::Test), 1);
    // Removing a route that is not there is fine and costs nothing either.
    f.proxy
        .remove(&UserId::parse("bob").unwrap(), &TypeName::parse("web").unwrap())
        .await
        .unwrap();
    assert_eq!(f.count(Action::Reload), 1);
}

#[tokio::test]
async fn a_refused_change_restores_the_previous_file_and_is_marked_failed() {
    let f = fixture().await;
    f.proxy.apply(&route("alice", "web", 9001)).await.unwrap();
    let good = f.file("alice", "web").unwrap();

    let err = f.proxy.apply(&route("alice", "web", 0)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(
        err.message().contains("invalid port in upstream"),
        "{}",
        err.message()
    );
    assert!(
        err.message().contains("container-alice-web.conf"),
        "{}",
        err.message()
    );
    assert_eq!(f.file("alice", "web").unwrap(), good);
    assert!(f.linked("alice", "web"));
    let states = f.states().await;
    assert!(
        matches!(&states[..], [(name, Some(9001), RouteState::Failed(m))] if name == "alice/web" && m.contains("invalid port")),
        "{states:?}"
    );
    assert_eq!(f.count(Action::Reload), 1, "a refused change does not reload");

    // Applying the good route again clears the failure without a reload: it is what is live.
    f.proxy.apply(&route("alice", "web", 9001)).await.unwrap();
    assert_eq!(
        f.states().await,
        vec![("alice/web".into(), Some(9001), RouteState::Active)]
    );
    assert_eq!(f.count(Action::Reload), 1);
}

#[tokio::test]
async fn a_refused_new_route_leaves_no_file_and_no_link() {
    let f = fixture().await;
    let err = f.proxy.apply(&route("carol", "web", 0)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(f.file("carol", "web"), None);
    assert!(!f.linked("carol", "web"));
    let states = f.states().await;
    assert!(
        matches!(&states[..], [(_, None, RouteState::Failed(_))]),
        "{states:?}"
    );
    // Removing it clears the failure.
    f.proxy
        .remove(&UserId::parse("carol").unwrap(), &TypeName::parse("web").unwrap())
        .await
        .unwrap();
    assert!(f.states().await.is_empty());
}

#[tokio::test]
async fn bisecting_a_batch_finds_exactly_the_refused_routes() {
    let f = Arc::new(fixture().await);
    let bad = [3u16, 7];
    let mut tasks = Vec::new();
    for i in 0..10u16 {
        let f = f.clone();
        let port = if bad.contains(&i) { 0 } else { 9000 + i };
        tasks.push(tokio::spawn(async move {
            f.proxy.apply(&route(&format!("u{i}"), "web", port)).await
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let result = task.await.unwrap();
        assert_eq!(result.is_err(), bad.contains(&(i as u16)), "u{i}: {result:?}");
    }
    assert_eq!(f.count(Action::Reload), 1);
    // The batch, the baseline, then [0-4] [0-1] [2] [3] [4] and [5-9] [5-6] [7] [8-9].
    assert_eq!(f.count(Action::Test), 11);
    for i in 0..10u16 {
        assert_eq!(f.linked(&format!("u{i}"), "web"), !bad.contains(&i), "u{i}");
    }
}

#[tokio::test]
async fn a_configuration_broken_elsewhere_refuses_puts_but_still_removes() {
    let f = fixture().await;
    f.proxy.apply(&route("alice", "web", 9001)).await.unwrap();
    fs::write(f.enabled.join("operator.conf"), "broken;").unwrap();

    let err = f.proxy.apply(&route("bob", "web", 9002)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.message().contains("even without it"), "{}", err.message());
    assert!(err.message().contains("operator.conf"), "{}", err.message());
    assert_eq!(f.file("bob", "web"), None);

    let err = f
        .proxy
        .remove(&UserId::parse("alice").unwrap(), &TypeName::parse("web").unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.message().contains("removed from disk"), "{}", err.message());
    assert_eq!(f.file("alice", "web"), None);
    assert!(!f.linked("alice", "web"));
    assert_eq!(f.count(Action::Reload), 1, "nothing reloads a broken tree");
}

#[tokio::test]
async fn a_failed_reload_is_an_error_and_is_recorded() {
    let f = fixture().await;
    *f.nginx.reload_error.lock().unwrap() =
        Some("[error] invalid PID number \"\" in \"/run/nginx.pid\"".into());
    let err = f.proxy.apply(&route("alice", "web", 9001)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(
        err.message()
            .contains("reloading nginx failed: [error] invalid PID"),
        "{}",
        err.message()
    );
    // The route is valid and stays on disk: it goes live with the next successful reload.
    assert!(f.linked("alice", "web"));
    let stats = f.proxy.stats();
    assert_eq!((stats.reloads, stats.failed_reloads), (1, 1));
    assert!(stats.last_reload.unwrap().error.unwrap().contains("invalid PID"));
    assert!(f.proxy.status().detail.contains("failed: [error] invalid PID"));

    *f.nginx.reload_error.lock().unwrap() = None;
    f.proxy.reload().await.unwrap();
    assert_eq!(f.proxy.stats().last_reload.unwrap().error, None);
}

#[tokio::test]
async fn sync_makes_the_routes_exactly_these_with_one_reload() {
    let f = fixture().await;
    f.proxy.apply(&route("old", "web", 9001)).await.unwrap();
    f.proxy.apply(&route("keep", "web", 9002)).await.unwrap();
    fs::write(
        f.available.join("container-stale-web.conf.failed"),
        "refused once",
    )
    .unwrap();
    let reloads = f.count(Action::Reload);

    let wanted = [
        route("keep", "web", 9002),
        route("new", "web", 9003),
        route("new", "ide", 9004),
    ];
    let states = f.proxy.sync(&wanted).await.unwrap();
    let got: Vec<_> = states
        .iter()
        .map(|s| (format!("{}/{}", s.user, s.kind), s.port, s.state.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("keep/web".into(), Some(9002), RouteState::Active),
            ("new/ide".into(), Some(9004), RouteState::Active),
            ("new/web".into(), Some(9003), RouteState::Active),
        ]
    );
    assert_eq!(f.count(Action::Reload), reloads + 1);

    // In sync already: nothing to do.
    f.proxy.sync(&wanted).await.unwrap();
    assert_eq!(f.count(Action::Reload), reloads + 1);
}

#[tokio::test]
async fn sync_reports_refusals_in_the_states() {
    let f = fixture().await;
    let states = f
        .proxy
        .sync(&[route("a", "web", 9001), route("b", "web", 0)])
        .await
        .unwrap();
    assert_eq!(states.len(), 2);
    assert_eq!(states[0].state, RouteState::Active);
    assert!(matches!(&states[1].state, RouteState::Failed(m) if m.contains("invalid port")));
}

#[tokio::test]
async fn an_interrupted_batch_is_undone_before_the_next_one() {
    let f = fixture().await;
    f.proxy.apply(&route("alice", "web", 9001)).await.unwrap();
    let good = f.file("alice", "web").unwrap();
    // A crashed process journaled alice/web and left an unchecked file behind.
    let mut journal = b"linked\npresent\n".to_vec();
    journal.extend_from_slice(good.as_bytes());
    fs::write(f.available.join(".container-alice-web.conf.undo"), journal).unwrap();
    fs::write(f.available.join("container-alice-web.conf"), "unchecked").unwrap();

    f.proxy.apply(&route("bob", "web", 9002)).await.unwrap();
    assert_eq!(f.file("alice", "web").unwrap(), good);
    assert!(!f.available.join(".container-alice-web.conf.undo").exists());
}

#[tokio::test]
async fn without_nginx_routing_is_disabled_and_nothing_pretends() {
    let tmp = tempfile::tempdir().unwrap();
    let settings = NginxSettings {
        enabled: true,
        available_dir: tmp.path().join("a"),
        enabled_dir: tmp.path().join("e"),
        binary: "/nonexistent/sbin/nginx".into(),
        args: vec![],
        mode: cm_core::RoutingMode::Files,
        ..cm_core::Config::defaults().nginx
    };
    let proxy = NginxProxy::detect(&settings).await;
    let status = proxy.status();
    assert!(!status.enabled);
    assert!(
        status
            .detail
            .starts_with("HTTP exposure disabled: nginx not found ("),
        "{}",
        status.detail
    );
    assert!(!proxy.is_enabled());
    let err = proxy.apply(&route("alice", "web", 9001)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    let err = proxy
        .remove(&UserId::parse("alice").unwrap(), &TypeName::parse("web").unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(proxy.sync(&[]).await.unwrap_err().kind(), ErrorKind::Unavailable);
    assert!(proxy.routes().await.unwrap().is_empty());
    assert_eq!(proxy.reload_count(), 0);
    assert!(!tmp.path().join("a").exists(), "a disabled proxy writes nothing");
}

#[tokio::test]
async fn routing_switched_off_in_the_configuration_is_disabled() {
    let settings = NginxSettings {
        enabled: false,
        available_dir: "/nonexistent/a".into(),
        enabled_dir: "/nonexistent/e".into(),
        binary: "nginx".into(),
        args: vec![],
        mode: cm_core::RoutingMode::Files,
        ..cm_core::Config::defaults().nginx
    };
    let proxy = NginxProxy::detect(&settings).await;
    assert!(!proxy.status().enabled);
    assert!(proxy.status().detail.contains("disabled by configuration"));
    assert_eq!(
        proxy.apply(&route("a", "web", 9001)).await.unwrap_err().kind(),
        ErrorKind::Unavailable
    );
}

#[test]
fn the_map_snippet_installs_atomically() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("conf.d").join(MAP_SNIPPET_FILE);
    install_map_snippet(&path).unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), render_map_snippet());
    assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
}

#[tokio::test]
async fn nginx_gets_a_clean_environment() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dump = tmp.path().join("env.txt");
    let script = tmp.path().join("nginx");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\nenv > {}\necho 'nginx version: nginx/9.9'\n",
            dump.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let settings = NginxSettings {
        binary: script,
        mode: cm_core::RoutingMode::Files,
        available_dir: tmp.path().join("a"),
        enabled_dir: tmp.path().join("e"),
        ..cm_core::Config::defaults().nginx
    };
    // The test process has CARGO_* and HOME set; none of it (nor CONTAINER_ADMIN_KEY, were it
    // set) may reach nginx.
    assert!(std::env::var_os("CARGO_PKG_NAME").is_some());
    let proxy = NginxProxy::detect(&settings).await;
    assert!(proxy.is_enabled());
    let env = fs::read_to_string(&dump).unwrap();
    let names: Vec<&str> = env.lines().filter_map(|l| l.split('=').next()).collect();
    assert!(names.contains(&"PATH"), "{env}");
    for name in &names {
        assert!(
            ["PATH", "PWD", "SHLVL", "_", "OLDPWD"].contains(name),
            "{name} reached nginx: {env}"
        );
    }
}
