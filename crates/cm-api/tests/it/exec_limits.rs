//! Commands in containers, as a hostile user would run them, against the real `cm-api` and the
//! real engine: concurrency limits per user and in all, a time limit that holds while a command
//! floods its output, commands killed when their client hangs up, and the user they run as.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use cm_testkit::{TestEnv, docker_ok, require_docker, wait_until};
use serde_json::{Value, json};

use crate::helpers::{Server, api, http};

/// The command lines of the processes running in `container` (read from /proc: the image has no
/// `ps`).
fn processes(container: &str) -> String {
    docker_ok(&[
        "exec",
        container,
        "sh",
        "-c",
        "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done",
    ])
}

/// Starts `container_exec` of `body` in a thread of `scope`; its status (0: no answer).
fn spawn_exec<'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    port: u16,
    auth: &str,
    body: Value,
) -> std::thread::ScopedJoinHandle<'scope, u16> {
    let auth = auth.to_owned();
    scope.spawn(move || {
        http(
            port,
            "POST",
            &api("container_exec"),
            &[("Authorization", &auth)],
            Some(&body.to_string()),
        )
        .map_or(0, |(status, _)| status)
    })
}

#[test]
fn execs_are_bounded_killed_on_time_and_on_hang_up_and_run_as_the_exec_user() {
    if !require_docker() {
        return;
    }
    let env = TestEnv::new();
    env.set_config_extra("[limits]\nexec_per_user = 2\nexec_total = 3\n");
    let admin = "exec-limits-admin-key-0123456789";
    let mut vars = env.vars();
    vars.push(("CONTAINER_ADMIN_KEY", admin.to_owned()));
    let server = Server::start(&vars, &[]);
    let admin_auth = format!("Bearer {admin}");
    let call = |auth: &str, name: &str, body: Value| {
        server.request("POST", &api(name), &[("Authorization", auth)], Some(&body))
    };
    let (alice, bob) = (env.user("alice"), env.user("bob"));
    for user in [&alice, &bob] {
        let (status, created) = call(
            &admin_auth,
            "create_container",
            json!({"user_id": user, "container_type": "preview_server"}),
        );
        assert_eq!(status, 201, "{created}");
    }
    let token = |user: &str| {
        let (_, answer) = call(&admin_auth, "create_user_token", json!({"user_id": user}));
        format!("Bearer {}", answer["token"].as_str().unwrap())
    };
    let (alice_auth, bob_auth) = (token(&alice), token(&bob));
    let alice_box = format!("{alice}_preview_server");
    let bob_box = format!("{bob}_preview_server");

    // A user token's command runs as the type's exec user; the admin's as the image's user, or
    // as the user it names; a token may not name one.
    let run = |auth: &str, container: &str, command: Value| {
        call(
            auth,
            "container_exec",
            json!({"container_id": container, "command": command}),
        )
    };
    let (status, out) = run(&alice_auth, &alice_box, json!(["id", "-u"]));
    assert_eq!(
        (status, out["stdout"].as_str().unwrap().trim()),
        (200, "1000"),
        "{out}"
    );
    let (_, out) = run(&admin_auth, &alice_box, json!(["id", "-u"]));
    assert_eq!(out["stdout"].as_str().unwrap().trim(), "0", "{out}");
    let (status, out) = call(
        &admin_auth,
        "container_exec",
        json!({"container_id": alice_box, "command": ["id", "-u"], "user": "1234:1234"}),
    );
    assert_eq!(
        (status, out["stdout"].as_str().unwrap().trim()),
        (200, "1234"),
        "{out}"
    );
    let (status, refused) = call(
        &alice_auth,
        "container_exec",
        json!({"container_id": alice_box, "command": ["id"], "user": "root"}),
    );
    assert_eq!(status, 403, "{refused}");

    // Six `sleep 3` at once from Alice: two run, the rest are refused with 429 and Retry-After;
    // Bob's command is served meanwhile (the third slot in all).
    let port = server.port;
    let (alice_statuses, bob_status) = std::thread::scope(|scope| {
        let sleeps: Vec<_> = (0..6)
            .map(|_| {
                let body = json!({"container_id": alice_box, "command": ["sleep", "3"]});
                spawn_exec(scope, port, &alice_auth, body)
            })
            .collect();
        // Once two of them run in the container, the rest have been answered or will be refused.
        let two_run = wait_until(Duration::from_secs(30), || {
            processes(&alice_box)
                .lines()
                .filter(|l| l.trim() == "sleep 3")
                .count()
                == 2
        });
        assert!(two_run, "{}", processes(&alice_box));
        let (bob_status, bob_out) = run(&bob_auth, &bob_box, json!(["echo", "served"]));
        assert_eq!(bob_out["stdout"], "served\n", "{bob_out}");
        let statuses: Vec<u16> = sleeps.into_iter().map(|h| h.join().unwrap()).collect();
        (statuses, bob_status)
    });
    assert_eq!(bob_status, 200);
    assert_eq!(
        alice_statuses.iter().filter(|&&s| s == 200).count(),
        2,
        "{alice_statuses:?}"
    );
    assert_eq!(
        alice_statuses.iter().filter(|&&s| s == 429).count(),
        4,
        "{alice_statuses:?}"
    );

    // Twenty flooding commands at once from one user: two run (each stopped at its output cap
    // or time limit), the rest are refused, and the server's memory stays bounded: at most two
    // capped outputs (2 x 16 MiB, stdout and stderr) plus what it held before, whatever the
    // clients ask for.
    let rss_before = server.rss_bytes();
    let floods: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..20)
            .map(|_| {
                let body = json!({"container_id": alice_box, "command": ["yes"], "timeout": 20});
                spawn_exec(scope, port, &alice_auth, body)
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let rss_after = server.rss_bytes();
    eprintln!(
        "cm-api RSS: {} MiB before, {} MiB after 20 flooding execs ({floods:?})",
        rss_before >> 20,
        rss_after >> 20
    );
    assert!(
        floods.iter().filter(|&&s| s == 429).count() >= 18 - 2,
        "{floods:?}"
    );
    let bound = rss_before + 4 * 16 * 1024 * 1024 + 64 * 1024 * 1024;
    assert!(
        rss_after < bound,
        "cm-api grew from {} MiB to {} MiB",
        rss_before >> 20,
        rss_after >> 20
    );
    let quiet = wait_until(Duration::from_secs(20), || {
        !processes(&alice_box).lines().any(|l| l.trim() == "yes")
    });
    assert!(quiet, "yes still runs:\n{}", processes(&alice_box));

    // A command flooding its output is still stopped at its time limit, and nothing of it is
    // left running.
    let (status, out) = call(
        &alice_auth,
        "container_exec",
        json!({"container_id": alice_box, "command": ["yes"], "timeout": 3}),
    );
    assert!(matches!(status, 200 | 504), "{status}: {out}");
    let gone = wait_until(Duration::from_secs(10), || {
        !processes(&alice_box).lines().any(|l| l.trim() == "yes")
    });
    assert!(gone, "yes still runs:\n{}", processes(&alice_box));

    // A command that closes its output and goes on still has its time limit.
    let (status, out) = call(
        &alice_auth,
        "container_exec",
        json!({"container_id": alice_box, "command": ["sh", "-c", "exec >&- 2>&-; exec sleep 59"], "timeout": 2}),
    );
    assert_eq!(status, 504, "{out}");
    let gone = wait_until(Duration::from_secs(10), || {
        !processes(&alice_box).contains("sleep 59")
    });
    assert!(gone, "sleep still runs:\n{}", processes(&alice_box));

    // Binary output is capped by the size of the answer, not by its raw bytes (a NUL byte takes
    // six in JSON).
    let (status, out) = call(
        &alice_auth,
        "container_exec",
        json!({"container_id": alice_box, "command": ["head", "-c", "20000000", "/dev/zero"]}),
    );
    assert_eq!(status, 200);
    let answer = out.to_string().len();
    assert!(
        answer < 16 * 1024 * 1024 + 4096,
        "a {answer}-byte answer for 16 MiB of output"
    );
    assert!(
        out["stdout"]
            .as_str()
            .unwrap()
            .ends_with("the command was stopped]\n"),
        "{}",
        &out["stdout"].as_str().unwrap()[..0]
    );

    // A client that hangs up: its command is killed.
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let body = json!({"container_id": alice_box, "command": ["sleep", "57"], "timeout": 120}).to_string();
    write!(
        stream,
        "POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {alice_auth}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        api("container_exec"),
        body.len()
    )
    .unwrap();
    let started = wait_until(Duration::from_secs(10), || {
        processes(&alice_box).contains("sleep 57")
    });
    assert!(started, "{}", processes(&alice_box));
    drop(stream);
    let killed = wait_until(Duration::from_secs(15), || {
        !processes(&alice_box).contains("sleep 57")
    });
    assert!(
        killed,
        "the command outlived its client:\n{}",
        processes(&alice_box)
    );
}
