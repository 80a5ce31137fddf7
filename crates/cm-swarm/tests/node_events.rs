//! A node's engine going away and coming back, against the real engine: the node is the local
//! engine reached over TCP through a proxy this test turns off and on. While the node is away the
//! event stream goes on (the manager's events still arrive); once the node answers again the
//! stream fails, so that the status feed resubscribes and sees what changed meanwhile.
//!
//! It does not change the engine's state (no swarm mode is needed to read events), so it shares
//! the engine with other suites.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use cm_core::{ContainerRuntime, ErrorKind, EventStream};
use cm_swarm::SwarmRuntime;
use cm_testkit::TestEnv;
use futures_util::StreamExt;
use tokio::net::{TcpListener, UnixStream};
use tokio::task::JoinHandle;

/// The local engine's socket.
fn engine_socket() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(str::to_owned))
        .unwrap_or_else(|| "/var/run/docker.sock".to_owned())
}

/// A TCP proxy to the engine's socket on `addr`; aborting the handle closes the listener and
/// every connection through it (the connections are the task's `JoinSet`, aborted on drop).
async fn proxy(addr: SocketAddr) -> JoinHandle<()> {
    let listener = TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((mut tcp, _)) = listener.accept().await {
            connections.spawn(async move {
                if let Ok(mut unix) = UnixStream::connect(engine_socket()).await {
                    let _ = tokio::io::copy_bidirectional(&mut tcp, &mut unix).await;
                }
            });
        }
    })
}

/// The next item within `limit`: `None` when nothing came.
async fn next_within(
    events: &mut EventStream,
    limit: Duration,
) -> Option<cm_core::Result<cm_core::ContainerEvent>> {
    tokio::time::timeout(limit, events.next()).await.ok().flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nodes_events_resume_when_its_engine_answers_again() {
    if !cm_testkit::require_docker() {
        return;
    }
    let _env = TestEnv::new();
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut up = proxy(addr).await;
    let runtime = SwarmRuntime::new(BTreeMap::from([("far-node".to_owned(), format!("tcp://{addr}"))]));
    let mut events = tokio::time::timeout(Duration::from_secs(30), runtime.container_events())
        .await
        .unwrap()
        .unwrap();
    assert!(
        next_within(&mut events, Duration::from_secs(2)).await.is_none(),
        "nothing of ours happens: no event, no failure"
    );

    // The node goes away: the stream goes on without it.
    up.abort();
    let _ = (&mut up).await;
    assert!(
        next_within(&mut events, Duration::from_secs(5)).await.is_none(),
        "a node going away does not end the events"
    );

    // It answers again: the stream fails once, for the feed to resubscribe.
    up = proxy(addr).await;
    let back = next_within(&mut events, Duration::from_secs(20))
        .await
        .expect("the stream tells that the node is back");
    let error = back.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Unavailable, "{error}");
    assert!(error.to_string().contains("answers again"), "{error}");
    up.abort();

    // A node that is away when the stream is opened is waited for the same way.
    let mut events = tokio::time::timeout(Duration::from_secs(30), runtime.container_events())
        .await
        .unwrap()
        .unwrap();
    assert!(next_within(&mut events, Duration::from_secs(3)).await.is_none());
    let up = proxy(addr).await;
    let back = next_within(&mut events, Duration::from_secs(20))
        .await
        .expect("told");
    assert!(back.unwrap_err().to_string().contains("answers again"));
    up.abort();
}
