//! Live events against the fakes: a viewer is told when the engine goes away and comes back.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use cm_core::testing::{FakeWorld, create_request};
use cm_core::{LiveEvent, LiveEvents, StatusView};
use futures_util::StreamExt;

/// The next event that `wanted` accepts, skipping others, within 10 seconds.
async fn next_matching(events: &mut LiveEvents, wanted: impl Fn(&LiveEvent) -> bool) -> LiveEvent {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let event = events.next().await.expect("the stream ended");
            if wanted(&event) {
                return event;
            }
        }
    })
    .await
    .expect("no such event within 10 s")
}

#[tokio::test]
async fn viewers_are_told_when_the_engine_goes_away_and_get_a_snapshot_when_it_is_back() {
    let world = FakeWorld::new();
    let view = StatusView::new();
    let manager = world.manager.clone().with_status_view(view.clone());
    let (feeder, feed_view) = (manager.clone(), view.clone());
    let feed = tokio::spawn(async move { feeder.feed_status_view(feed_view, &|| {}).await });
    manager
        .create(create_request("alice", "custom"), &|_| {})
        .await
        .unwrap();
    let mut events = manager.live_events(None).await.unwrap();
    assert!(matches!(events.next().await.unwrap(), LiveEvent::Snapshot { .. }));
    tokio::time::timeout(Duration::from_secs(10), async {
        while !view.is_live() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();

    world.runtime.set_down(true);
    // (A stream opened before the feed was connected was first told the engine is available.)
    let away = next_matching(&mut events, |e| *e == LiveEvent::Engine { available: false }).await;
    assert_eq!(away, LiveEvent::Engine { available: false });
    assert!(manager.list_all().await.unwrap().stale.is_some());

    world.runtime.set_down(false);
    let back = next_matching(&mut events, |e| matches!(e, LiveEvent::Engine { .. })).await;
    assert_eq!(back, LiveEvent::Engine { available: true });
    match events.next().await.unwrap() {
        LiveEvent::Snapshot { containers } => {
            assert_eq!(containers.len(), 1);
            assert_eq!(containers[0].status, "running");
        }
        other => panic!("expected a snapshot, got {other:?}"),
    }
    feed.abort();
}
