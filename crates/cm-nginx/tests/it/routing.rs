//! Routing through a real nginx: each test starts its own on its own port and prefix.

use std::fs;
use std::sync::Arc;

use cm_core::{ErrorKind, Proxy, RouteState, RouteStatus, TypeName, UserId};

use crate::helpers::{Nginx, Upstream, http_get, route, websocket_echo};

/// Starts nginx for `test`, or returns from the test after the skip line.
macro_rules! nginx_or_skip {
    ($test:literal) => {
        match Nginx::start($test) {
            Some(nginx) => nginx,
            None => return,
        }
    };
}

fn states(routes: &[RouteStatus]) -> Vec<(String, Option<u16>, RouteState)> {
    routes
        .iter()
        .map(|s| (format!("{}/{}", s.user, s.kind), s.port, s.state.clone()))
        .collect()
}

#[tokio::test]
async fn get_reaches_the_right_upstream_for_two_users_and_two_types() {
    let nginx = nginx_or_skip!("get_reaches_the_right_upstream_for_two_users_and_two_types");
    let proxy = Arc::new(nginx.proxy().await);
    // `web` strips the prefix, `ide` is prefix-aware and keeps it.
    let cases = [
        ("alice", "web", true),
        ("alice", "ide", false),
        ("bob", "web", true),
        ("bob", "ide", false),
    ];
    let mut upstreams = Vec::new();
    let mut tasks = Vec::new();
    for (user, kind, strip) in cases {
        let upstream = Upstream::start(&format!("{user}-{kind}")).await;
        let (proxy, r) = (proxy.clone(), route(user, kind, upstream.port, strip));
        tasks.push(tokio::spawn(async move { proxy.apply(&r).await }));
        upstreams.push(upstream);
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }

    for ((user, kind, strip), upstream) in cases.iter().zip(&upstreams) {
        let prefix = format!("/container/{user}/{kind}");
        nginx.get_until(&format!("{prefix}/"), |r| r.status == 200).await;
        let answer = http_get(
            nginx.port,
            &format!("{prefix}/hello/there?x=1"),
            &[
                ("Authorization", "Bearer admin-secret"),
                ("X-Forwarded-Proto", "gopher"),
            ],
        )
        .await;
        assert_eq!(answer.status, 200, "{prefix}: {answer:?}");
        assert_eq!(answer.field("upstream"), Some(format!("{user}-{kind}").as_str()));
        let path = if *strip {
            "/hello/there?x=1".to_owned()
        } else {
            format!("{prefix}/hello/there?x=1")
        };
        assert_eq!(answer.field("path"), Some(path.as_str()), "{prefix}");
        assert_eq!(answer.field("x-forwarded-prefix"), Some(prefix.as_str()));
        assert_eq!(
            answer.field("x-forwarded-proto"),
            Some("http"),
            "nginx sets the scheme itself"
        );
        assert_eq!(answer.field("x-forwarded-for"), Some("127.0.0.1"));
        assert_eq!(
            answer.field("authorization"),
            Some("-"),
            "credentials never reach a container"
        );
        assert_eq!(answer.field("host"), Some("localhost"));
        assert!(answer.header("access-control-allow-origin").is_none());

        // The bare path redirects to the slash form, keeping the query.
        let bare = nginx.get(&format!("{prefix}?q=2")).await;
        assert_eq!(bare.status, 301, "{prefix}");
        let location = bare.header("location").unwrap();
        assert!(location.ends_with(&format!("{prefix}/?q=2")), "{location}");
        let _ = upstream;
    }

    assert_eq!(nginx.get("/container/carol/web/").await.status, 404);
    let routes = proxy.routes().await.unwrap();
    let expected: Vec<_> = [("alice/ide", 1), ("alice/web", 0), ("bob/ide", 3), ("bob/web", 2)]
        .iter()
        .map(|(name, i)| (name.to_string(), Some(upstreams[*i].port), RouteState::Active))
        .collect();
    assert_eq!(states(&routes), expected);
}

#[tokio::test]
async fn websocket_upgrade_through_nginx_echoes_frames() {
    let nginx = nginx_or_skip!("websocket_upgrade_through_nginx_echoes_frames");
    let proxy = nginx.proxy().await;
    let upstream = Upstream::start("terminal").await;
    proxy
        .apply(&route("alice", "cli_v4", upstream.port, true))
        .await
        .unwrap();
    nginx
        .get_until("/container/alice/cli_v4/", |r| r.status == 200)
        .await;

    let echoed = websocket_echo(nginx.port, "/container/alice/cli_v4/ws", "hello through nginx").await;
    assert_eq!(echoed.as_deref(), Ok("terminal echoes hello through nginx"));
}

#[tokio::test]
async fn remove_answers_404_and_leaves_the_other_routes() {
    let nginx = nginx_or_skip!("remove_answers_404_and_leaves_the_other_routes");
    let proxy = nginx.proxy().await;
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    proxy.apply(&route("alice", "web", a.port, true)).await.unwrap();
    proxy.apply(&route("bob", "web", b.port, true)).await.unwrap();
    assert_eq!(
        nginx
            .get_until("/container/alice/web/", |r| r.status == 200)
            .await
            .status,
        200
    );

    let (alice, web) = (UserId::parse("alice").unwrap(), TypeName::parse("web").unwrap());
    proxy.remove(&alice, &web).await.unwrap();
    let gone = nginx
        .get_until("/container/alice/web/", |r| r.status == 404)
        .await;
    assert_eq!(gone.status, 404);
    assert_eq!(
        nginx.get("/container/alice/web").await.status,
        404,
        "the redirect is gone too"
    );
    let other = nginx.get_until("/container/bob/web/", |r| r.status == 200).await;
    assert_eq!((other.status, other.field("upstream")), (200, Some("b")));
    assert!(!nginx.available().join("container-alice-web.conf").exists());
    assert!(fs::symlink_metadata(nginx.enabled().join("container-alice-web.conf")).is_err());
    assert_eq!(states(&proxy.routes().await.unwrap()).len(), 1);

    // Removing it again is fine.
    proxy.remove(&alice, &web).await.unwrap();
}

#[tokio::test]
async fn a_refused_route_is_rolled_back_and_the_others_keep_serving() {
    let nginx = nginx_or_skip!("a_refused_route_is_rolled_back_and_the_others_keep_serving");
    let proxy = nginx.proxy().await;
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    proxy.apply(&route("alice", "web", a.port, true)).await.unwrap();
    proxy.apply(&route("bob", "web", b.port, true)).await.unwrap();
    nginx.get_until("/container/bob/web/", |r| r.status == 200).await;
    let good = fs::read(nginx.available().join("container-alice-web.conf")).unwrap();
    let reloads = proxy.reload_count();

    // Port 0 renders a file nginx refuses ("invalid port in upstream"): no test hook needed.
    let err = proxy.apply(&route("alice", "web", 0, true)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(
        err.message()
            .contains("[emerg] invalid port in upstream \"127.0.0.1:0/\""),
        "{}",
        err.message()
    );
    assert!(
        err.message().contains("container-alice-web.conf"),
        "{}",
        err.message()
    );
    assert_eq!(
        fs::read(nginx.available().join("container-alice-web.conf")).unwrap(),
        good
    );
    assert_eq!(proxy.reload_count(), reloads, "nothing was reloaded");

    for (path, name) in [("/container/alice/web/", "a"), ("/container/bob/web/", "b")] {
        let answer = nginx.get(path).await;
        assert_eq!(
            (answer.status, answer.field("upstream")),
            (200, Some(name)),
            "{path}"
        );
    }
    let routes = states(&proxy.routes().await.unwrap());
    assert!(
        matches!(&routes[0], (name, Some(port), RouteState::Failed(m)) if name == "alice/web" && *port == a.port && m.contains("invalid port")),
        "{routes:?}"
    );
    assert_eq!(
        routes[1],
        ("bob/web".to_owned(), Some(b.port), RouteState::Active)
    );

    // The state survives the process: a fresh proxy on the same directories reports it too.
    let other_process = nginx.proxy().await;
    assert_eq!(states(&other_process.routes().await.unwrap()), routes);

    // Re-applying the good route clears the failure.
    proxy.apply(&route("alice", "web", a.port, true)).await.unwrap();
    assert_eq!(proxy.routes().await.unwrap()[0].state, RouteState::Active);
}

#[tokio::test]
async fn a_new_route_colliding_with_the_operators_config_leaves_nothing_behind() {
    let nginx = nginx_or_skip!("a_new_route_colliding_with_the_operators_config_leaves_nothing_behind");
    let proxy = nginx.proxy().await;
    let (a, c) = (Upstream::start("a").await, Upstream::start("c").await);
    proxy.apply(&route("alice", "web", a.port, true)).await.unwrap();
    // The operator claimed carol's path by hand.
    fs::write(
        nginx.enabled().join("operator.conf"),
        "location /container/carol/web/ { return 418; }\n",
    )
    .unwrap();

    let err = proxy
        .apply(&route("carol", "web", c.port, true))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(
        err.message()
            .contains("duplicate location \"/container/carol/web/\""),
        "{}",
        err.message()
    );
    assert!(!nginx.available().join("container-carol-web.conf").exists());
    assert!(fs::symlink_metadata(nginx.enabled().join("container-carol-web.conf")).is_err());
    assert!(matches!(
        proxy.routes().await.unwrap()[1].state,
        RouteState::Failed(_)
    ));
    assert_eq!(
        nginx
            .get_until("/container/alice/web/", |r| r.status == 200)
            .await
            .status,
        200
    );

    fs::remove_file(nginx.enabled().join("operator.conf")).unwrap();
    proxy.apply(&route("carol", "web", c.port, true)).await.unwrap();
    let answer = nginx
        .get_until("/container/carol/web/", |r| r.status == 200)
        .await;
    assert_eq!(answer.field("upstream"), Some("c"));
}

#[tokio::test]
async fn a_hand_broken_route_file_is_reported_and_healed_by_sync() {
    let nginx = nginx_or_skip!("a_hand_broken_route_file_is_reported_and_healed_by_sync");
    let proxy = nginx.proxy().await;
    let (a, d) = (Upstream::start("a").await, Upstream::start("d").await);
    proxy.apply(&route("alice", "web", a.port, true)).await.unwrap();
    // Someone broke dave's route file by hand (and linked it).
    let broken = nginx.available().join("container-dave-web.conf");
    fs::write(
        &broken,
        "location /container/dave/web/ { proxy_pass http://127.0.0.1:1/ \n",
    )
    .unwrap();
    std::os::unix::fs::symlink(&broken, nginx.enabled().join("container-dave-web.conf")).unwrap();

    // Other changes are refused, saying where nginx's configuration is broken, and nothing reloads.
    let err = proxy
        .apply(&route("erin", "web", a.port, true))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(
        err.message().contains("container-dave-web.conf"),
        "{}",
        err.message()
    );
    let alice = nginx
        .get_until("/container/alice/web/", |r| r.status == 200)
        .await;
    assert_eq!(alice.status, 200, "the live config is untouched");

    // A sync from the store rewrites dave's file and applies erin's route, with one reload.
    let reloads = proxy.reload_count();
    let wanted = [
        route("alice", "web", a.port, true),
        route("dave", "web", d.port, true),
        route("erin", "web", a.port, true),
    ];
    let routes = proxy.sync(&wanted).await.unwrap();
    assert!(routes.iter().all(|r| r.state == RouteState::Active), "{routes:?}");
    assert_eq!(proxy.reload_count(), reloads + 1);
    let answer = nginx.get_until("/container/dave/web/", |r| r.status == 200).await;
    assert_eq!(answer.field("upstream"), Some("d"));
}

#[tokio::test]
async fn a_burst_of_20_route_changes_reloads_at_most_3_times() {
    let nginx = nginx_or_skip!("a_burst_of_20_route_changes_reloads_at_most_3_times");
    let proxy = Arc::new(nginx.proxy().await);
    let upstream = Upstream::start("shared").await;

    let before = proxy.reload_count();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (proxy, r) = (
                proxy.clone(),
                route(&format!("user{i}"), "web", upstream.port, true),
            );
            tokio::spawn(async move { proxy.apply(&r).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let creates = proxy.reload_count() - before;
    assert!((1..=3).contains(&creates), "{creates} reloads for 20 creates");
    for i in [0, 7, 19] {
        let answer = nginx
            .get_until(&format!("/container/user{i}/web/"), |r| r.status == 200)
            .await;
        assert_eq!(answer.field("upstream"), Some("shared"));
    }

    let before = proxy.reload_count();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let proxy = proxy.clone();
            tokio::spawn(async move {
                let (user, kind) = (
                    UserId::parse(&format!("user{i}")).unwrap(),
                    TypeName::parse("web").unwrap(),
                );
                proxy.remove(&user, &kind).await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let deletes = proxy.reload_count() - before;
    assert!((1..=3).contains(&deletes), "{deletes} reloads for 20 deletes");
    assert!(proxy.routes().await.unwrap().is_empty());
    assert_eq!(
        nginx
            .get_until("/container/user7/web/", |r| r.status == 404)
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn two_processes_on_the_same_directories_do_not_trample_each_other() {
    let nginx = nginx_or_skip!("two_processes_on_the_same_directories_do_not_trample_each_other");
    // Two proxies stand for two `cm` processes: separate queues, one lock file.
    let (first, second) = (Arc::new(nginx.proxy().await), Arc::new(nginx.proxy().await));
    let upstream = Upstream::start("shared").await;
    let mut tasks = Vec::new();
    for i in 0..6 {
        for (who, proxy) in [("p", &first), ("q", &second)] {
            let (proxy, r) = (
                proxy.clone(),
                route(&format!("{who}{i}"), "web", upstream.port, true),
            );
            tasks.push(tokio::spawn(async move { proxy.apply(&r).await }));
        }
    }
    // One of them also carries a refused change, which must not take the others down.
    let bad = {
        let proxy = second.clone();
        tokio::spawn(async move { proxy.apply(&route("bad", "web", 0, true)).await })
    };
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(bad.await.unwrap().unwrap_err().kind(), ErrorKind::Conflict);

    let routes = first.routes().await.unwrap();
    assert_eq!(routes.len(), 13);
    assert_eq!(
        routes.iter().filter(|r| r.state == RouteState::Active).count(),
        12
    );
    for name in ["p0", "q5"] {
        let answer = nginx
            .get_until(&format!("/container/{name}/web/"), |r| r.status == 200)
            .await;
        assert_eq!(answer.status, 200, "{name}");
    }
    assert!(first.reload_count() + second.reload_count() <= 4);
}

#[tokio::test]
async fn the_rendered_files_pass_nginx_t_for_every_option() {
    let nginx = nginx_or_skip!("the_rendered_files_pass_nginx_t_for_every_option");
    let proxy = nginx.proxy().await;
    let longest_user = "U".repeat(63);
    let longest_type = "t".repeat(32);
    let wanted = [
        route(&longest_user, &longest_type, 65535, true),
        route("a", "b", 1, false),
        route("0-_", "x_1", 9000, true),
    ];
    let routes = proxy.sync(&wanted).await.unwrap();
    assert!(routes.iter().all(|r| r.state == RouteState::Active), "{routes:?}");
    let stats = proxy.stats();
    assert_eq!(stats.last_reload.unwrap().error, None);
    assert_eq!(stats.validations, 1);
}
