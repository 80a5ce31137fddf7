//! The site file of `cm nginx setup`: real nginx accepts every mode, answers its ping, and
//! `setup` never overwrites a file it did not write.

use std::net::SocketAddr;

use cm_core::{Config, HostMode, RoutingMode};
use cm_nginx::{SITE_FILE, Site, render_site};
use cm_testkit::nginx::TestNginx;

fn site(mode: RoutingMode, host: HostMode, port: u16, enabled_dir: &str) -> Site {
    Site {
        mode,
        host,
        listen: SocketAddr::from(([127, 0, 0, 1], port)),
        server_name: "_".into(),
        base_domain: Some("apps.example.org".into()),
        api: SocketAddr::from(([127, 0, 0, 1], 1)),
        enabled_dir: enabled_dir.into(),
    }
}

fn get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn nginx_accepts_every_mode_and_answers_the_ping() {
    for (mode, host) in [
        (RoutingMode::Dynamic, HostMode::Path),
        (RoutingMode::Dynamic, HostMode::Subdomain),
        (RoutingMode::Files, HostMode::Path),
    ] {
        let test = format!("site {mode:?} {host:?}");
        let render = |port: u16| {
            let dir = std::env::temp_dir().join("cm-site-test-box-enabled");
            std::fs::create_dir_all(&dir).unwrap();
            render_site(&site(mode, host, port, &dir.display().to_string())).unwrap()
        };
        let Some(nginx) = TestNginx::start_site(&test, &render) else {
            return;
        };
        let answer = get(nginx.port, "/_cm/ping");
        assert!(answer.starts_with("HTTP/1.1 200"), "{test}: {answer}");
        // The route check is internal: never reachable from outside.
        assert!(
            get(nginx.port, "/_cm/check").starts_with("HTTP/1.1 404"),
            "{test}"
        );
        assert!(
            get(nginx.port, "/_cm_internal/check").starts_with("HTTP/1.1 404"),
            "{test}"
        );
    }
}

#[test]
fn hostile_paths_never_reach_the_site_file() {
    let bad = site(
        RoutingMode::Files,
        HostMode::Path,
        8080,
        "/etc/nginx/box enabled; evil",
    );
    assert!(render_site(&bad).is_err());
    let no_domain = Site {
        base_domain: None,
        ..site(RoutingMode::Dynamic, HostMode::Subdomain, 8080, "/x")
    };
    assert!(render_site(&no_domain).is_err());
}

#[tokio::test]
async fn setup_refuses_to_overwrite_a_foreign_file_and_restores_on_refusal() {
    let placeholder =
        |port: u16| format!("server {{ listen 127.0.0.1:{port}; location / {{ return 404; }} }}\n");
    let Some(nginx) = TestNginx::start_site("setup", &placeholder) else {
        return;
    };
    let mut settings = Config::defaults().nginx;
    settings.binary = nginx.binary.clone();
    settings.args = nginx.args.clone();
    settings.conf_dir = nginx.conf_dir();
    let path = nginx.conf_dir().join(SITE_FILE);
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let ours = site(RoutingMode::Dynamic, HostMode::Path, port, "/x");

    // A file someone else wrote stays untouched.
    let foreign = std::fs::read_to_string(&path).unwrap();
    let err = cm_nginx::setup(&settings, &ours).await.unwrap_err();
    assert!(err.message().contains("not written by ContainerManager"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), foreign);

    // Route files of files mode (an upgrade) are retired; anything else there stays.
    let available = nginx.prefix.join("old-available");
    let enabled = nginx.prefix.join("old-enabled");
    std::fs::create_dir_all(&available).unwrap();
    std::fs::create_dir_all(&enabled).unwrap();
    let route =
        "# Managed by ContainerManager (cm-nginx). Do not edit.\nlocation /container/a/b/ { return 200; }\n";
    std::fs::write(available.join("container-a-b.conf"), route).unwrap();
    std::fs::write(available.join("container-a-b.conf.failed"), "refused").unwrap();
    std::os::unix::fs::symlink(
        available.join("container-a-b.conf"),
        enabled.join("container-a-b.conf"),
    )
    .unwrap();
    std::fs::write(enabled.join("container-hand-made.conf"), "# mine\n").unwrap();
    settings.available_dir = available.clone();
    settings.enabled_dir = enabled.clone();

    // Ours is written, tested and reloaded; nginx then serves on the new port.
    std::fs::rename(&path, nginx.conf_dir().join("placeholder.conf")).unwrap();
    let report = cm_nginx::setup(&settings, &ours).await.unwrap();
    assert!(report.changed);
    assert_eq!(report.nginx, "reloaded");
    assert_eq!(report.retired_routes, 1);
    assert!(!enabled.join("container-a-b.conf").exists());
    assert!(!available.join("container-a-b.conf").exists());
    assert!(!available.join("container-a-b.conf.failed").exists());
    assert!(
        enabled.join("container-hand-made.conf").exists(),
        "not ours: kept"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "nginx never listened on {port}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(get(port, "/_cm/ping").starts_with("HTTP/1.1 200"));

    // A second run changes nothing on disk.
    let again = cm_nginx::setup(&settings, &ours).await.unwrap();
    assert!(!again.changed);

    // A configuration nginx refuses (the same port twice) leaves the last good file in place.
    let good = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        nginx.conf_dir().join("other.conf"),
        format!("server {{ listen 127.0.0.1:{port}; server_name x; location / {{ return 200; }} }}\nupstream cm_api {{ server 127.0.0.1:1; }}\n"),
    )
    .unwrap();
    let changed = site(RoutingMode::Dynamic, HostMode::Path, port, "/y");
    let refused = cm_nginx::setup(
        &settings,
        &Site {
            server_name: "other.example".into(),
            ..changed
        },
    )
    .await;
    assert!(refused.is_err());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), good);
    std::fs::remove_file(nginx.conf_dir().join("other.conf")).unwrap();
}
