//! Server-sent events: the framing that the API's `container_events` and the dashboard's live
//! statuses share (`retry`, `event:`/`data:` records, a keep-alive comment every 20 s, the end
//! when the events end).

use std::time::Duration;

use actix_web::HttpResponse;
use actix_web::http::header::{self, HeaderValue};
use actix_web::web::Bytes;
use cm_core::{LiveEvent, LiveEvents};
use futures_util::StreamExt;

/// How often an idle stream sends a comment, so proxies and clients know it lives.
const KEEPALIVE: Duration = Duration::from_secs(20);

/// The answer streaming `events`, each rendered by `render` as an event name and its data (one
/// line of JSON), or left out (`None`).
pub(crate) fn response<F>(events: LiveEvents, render: F) -> HttpResponse
where
    F: Fn(&LiveEvent) -> Option<(&'static str, String)> + 'static,
{
    enum Item {
        Event(LiveEvent),
        Tick,
        End,
    }
    let ticks = futures_util::stream::unfold((), |()| async {
        tokio::time::sleep(KEEPALIVE).await;
        Some((Item::Tick, ()))
    });
    let events = events
        .map(Item::Event)
        .chain(futures_util::stream::once(async { Item::End }));
    let body = futures_util::stream::select(events, ticks)
        .take_while(|item| std::future::ready(!matches!(item, Item::End)))
        .filter_map(move |item| {
            let text = match item {
                Item::Event(event) => {
                    render(&event).map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
                }
                Item::Tick | Item::End => Some(": keep-alive\n\n".to_owned()),
            };
            std::future::ready(text.map(|t| Ok::<_, std::io::Error>(Bytes::from(t))))
        });
    let first = futures_util::stream::once(async { Ok(Bytes::from_static(b"retry: 3000\n\n")) });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        // nginx in front must not buffer the stream.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(first.chain(body))
}
