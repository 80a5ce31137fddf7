//! The small endpoints the scripts call, under the session: live statuses, the SSH key check as
//! you type, and the log stream. Without a session they answer 401 (JSON), not a redirect.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::web::{Bytes, Path, Query};
use actix_web::{HttpRequest, web};
use cm_core::{Action, LogRequest};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;

use super::render::PageError;
use super::viewer::{PageResult, Viewer};
use super::views::status_class;
use crate::sessions::tokens_match;

/// The header carrying the CSRF token of script requests that are POSTs.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The longest key text checked.
const KEY_CHECK_LIMIT: usize = 8 * 1024;

#[derive(Debug, Deserialize)]
pub struct FollowQuery {
    tail: Option<u64>,
}

/// `GET /ui/statuses`: `{"containers": {name: {"status", "class"}}, "stale"}` for the viewer's
/// containers.
pub async fn statuses(viewer: Viewer) -> PageResult {
    let listing = viewer.listing().await.map_err(as_json)?;
    let containers: serde_json::Map<String, serde_json::Value> = listing
        .containers
        .iter()
        .map(|c| {
            (
                c.container_name.to_string(),
                json!({ "status": c.status.as_str(), "class": status_class(c.status) }),
            )
        })
        .collect();
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({ "containers": containers, "stale": listing.stale })))
}

/// `GET /ui/events`: the viewer's container statuses as server-sent events, each an event
/// `statuses` with the shape of `/ui/statuses` (`{"containers": {name: {status, class}}}`): all
/// of them first, then each change. 503 where the server keeps no live view (the page then polls).
pub async fn events(viewer: Viewer) -> PageResult {
    let user = match &viewer.principal {
        cm_core::Principal::Admin => None,
        cm_core::Principal::User(user) => Some(user.clone()),
    };
    let events = viewer
        .state()
        .manager
        .live_events(user.as_ref())
        .await
        .map_err(|e| as_json(viewer.fail(e, "containers")))?;
    let manager = viewer.state().manager.clone();
    let events: cm_core::LiveEvents = Box::pin(events.then(move |event| {
        let manager = manager.clone();
        async move { idle_marked(&manager, event).await }
    }));
    Ok(crate::sse::response(events, |event| {
        let entry = |c: &cm_core::ContainerState| {
            let status = cm_core::ContainerStatus::from_name(&c.status);
            (
                c.container_name.clone(),
                json!({ "status": c.status, "class": status_class(status) }),
            )
        };
        let (containers, stale): (serde_json::Map<String, serde_json::Value>, Option<&str>) = match event {
            cm_core::LiveEvent::Snapshot { containers } => (containers.iter().map(entry).collect(), None),
            cm_core::LiveEvent::Changed(container) => (std::iter::once(entry(container)).collect(), None),
            cm_core::LiveEvent::Engine { available: true } => (serde_json::Map::new(), None),
            cm_core::LiveEvent::Engine { available: false } => (
                serde_json::Map::new(),
                Some("the Docker engine can not be asked; statuses may be old"),
            ),
        };
        Some((
            "statuses",
            json!({ "containers": containers, "stale": stale }).to_string(),
        ))
    }))
}

/// `POST /ui/check-key` (the key as the text body, the CSRF token in `X-CSRF-Token`): the real
/// parser's verdict, `{"ok": true, "algorithm", "fingerprint", "comment"}` or `{"ok": false,
/// "error"}`. Nothing is stored.
pub async fn check_key(viewer: Viewer, req: HttpRequest, body: Bytes) -> PageResult {
    let presented = req
        .headers()
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !tokens_match(&viewer.csrf, presented) {
        return Err(PageError::Json {
            status: StatusCode::FORBIDDEN,
            message: "missing or wrong csrf token".to_owned(),
        });
    }
    viewer.require(Action::AddSshKey, None).map_err(as_json)?;
    if body.len() > KEY_CHECK_LIMIT {
        return Ok(HttpResponse::Ok().json(json!({ "ok": false, "error": "the key text is far too long" })));
    }
    let text = String::from_utf8_lossy(&body);
    let answer = match viewer.state().manager.parse_ssh_key(&text) {
        Ok(key) => json!({
            "ok": true,
            "algorithm": key.algorithm(),
            "fingerprint": key.fingerprint(),
            "comment": key.comment(),
        }),
        Err(e) => json!({ "ok": false, "error": e.message() }),
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(answer))
}

/// `GET /ui/logs/{name}?tail=N`: the container's output as a `text/plain` stream that follows
/// new output until the container stops (or the page goes away).
pub async fn follow_logs(viewer: Viewer, name: Path<String>, query: Query<FollowQuery>) -> PageResult {
    let container = viewer.container(&name, Action::ReadLogs).await.map_err(as_json)?;
    let tail = query.tail.unwrap_or(0).min(crate::routes::MAX_TAIL);
    let request = LogRequest {
        tail: Some(usize::try_from(tail).unwrap_or(usize::MAX)),
        follow: true,
        ..LogRequest::default()
    };
    let stream = viewer
        .state()
        .manager
        .logs(&container, &request)
        .await
        .map_err(|e| as_json(viewer.fail(e, "containers")))?;
    let body = stream.map(|chunk| match chunk {
        Ok(chunk) => Ok::<_, std::io::Error>(web::Bytes::from(chunk.text)),
        Err(e) => Err(std::io::Error::other(e.message().to_owned())),
    });
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .insert_header((
            HeaderName::from_static("x-accel-buffering"),
            HeaderValue::from_static("no"),
        ))
        .streaming(body))
}

/// A page error as the scripts want it: JSON with the same status.
fn as_json(err: PageError) -> PageError {
    match err {
        PageError::Page { status, message, .. } => PageError::Json { status, message },
        other => other,
    }
}

/// `event` with the stopped containers that were stopped for being idle saying so, as the pages
/// do (`stopped (idle)`), so a pushed status never contradicts the page.
async fn idle_marked(manager: &cm_core::Manager, mut event: cm_core::LiveEvent) -> cm_core::LiveEvent {
    let exited = cm_core::ContainerStatus::Exited.as_str();
    let states: Vec<&mut cm_core::ContainerState> = match &mut event {
        cm_core::LiveEvent::Snapshot { containers } => containers.iter_mut().collect(),
        cm_core::LiveEvent::Changed(container) => vec![container],
        cm_core::LiveEvent::Engine { .. } => Vec::new(),
    };
    let mut stopped: Vec<&mut cm_core::ContainerState> =
        states.into_iter().filter(|c| c.status == exited).collect();
    if stopped.is_empty() {
        return event;
    }
    let idle = manager.idle_stopped().await.unwrap_or_default();
    for container in &mut stopped {
        if idle.iter().any(|name| name.as_str() == container.container_name) {
            container.status = super::views::IDLE_STOPPED.to_owned();
        }
    }
    event
}

#[cfg(test)]
mod tests {
    use cm_core::testing::{FakeWorld, create_request};
    use cm_core::{Config, ContainerState, LiveEvent};

    use super::idle_marked;

    fn state(name: &str, status: &str) -> ContainerState {
        ContainerState {
            container_name: name.to_owned(),
            container_id: "id".to_owned(),
            user_id: "alice".to_owned(),
            container_type: "custom".to_owned(),
            status: status.to_owned(),
        }
    }

    #[tokio::test]
    async fn pushed_statuses_say_stopped_idle_as_the_pages_do() {
        let config = Config::from_toml("[types.custom]\nidle_stop_after = \"10m\"\n").unwrap();
        let world = FakeWorld::with_config(config);
        for user in ["alice", "bob"] {
            world
                .manager
                .create(create_request(user, "custom"), &|_| {})
                .await
                .unwrap();
        }
        // The first sweep starts their idle periods.
        assert!(world.manager.idle_sweep().await.unwrap().stopped.is_empty());
        world.clock.advance(std::time::Duration::from_secs(11 * 60));
        assert_eq!(world.manager.idle_sweep().await.unwrap().stopped.len(), 2);
        let bob = cm_core::testing::as_admin(&world.manager, "bob_custom")
            .await
            .unwrap();
        world.manager.stop(&bob).await.unwrap();

        let snapshot = LiveEvent::Snapshot {
            containers: vec![state("alice_custom", "exited"), state("bob_custom", "exited")],
        };
        let LiveEvent::Snapshot { containers } = idle_marked(&world.manager, snapshot).await else {
            panic!("not a snapshot");
        };
        assert_eq!(containers[0].status, "stopped (idle)");
        assert_eq!(containers[1].status, "exited", "stopped on purpose");
        let running = LiveEvent::Changed(state("alice_custom", "running"));
        assert_eq!(idle_marked(&world.manager, running.clone()).await, running);
    }
}
