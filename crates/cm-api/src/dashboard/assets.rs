//! The dashboard's files, embedded in the binary: no CDN, no external font, works offline.
//!
//! Pages link them as `/assets/NAME?v=HASH`; an answer to the current hash may be cached for a
//! year (`immutable`), any other with revalidation (`ETag`).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use serde::Deserialize;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
    hash: u64,
}

const fn asset(name: &'static str, content_type: &'static str, bytes: &'static [u8]) -> Asset {
    Asset {
        name,
        content_type,
        bytes,
        hash: fnv1a(bytes),
    }
}

/// Every file under `/assets/`.
const ASSETS: &[Asset] = &[
    asset(
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/app.css"),
    ),
    asset(
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/app.js"),
    ),
    asset(
        "logo.svg",
        "image/svg+xml",
        include_bytes!("../../assets/logo.svg"),
    ),
];

/// The versioned URL of an asset (`/assets/app.css?v=...`), for templates.
pub fn url(name: &str) -> String {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => format!("/assets/{}?v={:016x}", a.name, a.hash),
        None => format!("/assets/{name}"),
    }
}

#[derive(Deserialize)]
pub struct Version {
    v: Option<String>,
}

/// The answer to `GET /assets/{file}`, or `None` for a file there is not.
pub fn serve(req: &HttpRequest, file: &str, version: &Version) -> Option<HttpResponse> {
    let asset = ASSETS.iter().find(|a| a.name == file)?;
    let etag = format!("\"{:016x}\"", asset.hash);
    let current = version.v.as_deref() == Some(&etag[1..17]);
    let cache = if current {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut answer = if matches {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    answer
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, cache));
    if matches {
        return Some(answer.finish());
    }
    Some(answer.content_type(asset.content_type).body(asset.bytes))
}

/// FNV-1a, 64 bits: a version tag, not a security measure.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}
