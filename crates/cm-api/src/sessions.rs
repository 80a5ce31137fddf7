//! The dashboard's server-side sessions: random ids in a cookie, state in this process's memory.
//!
//! A session id is 256 random bits in an `HttpOnly; SameSite=Strict; Path=/` cookie (`Secure`
//! over https); the credential itself never leaves the server. The session keeps the presented
//! credential in memory only, so every request re-authenticates through [`cm_core::Auth`]: a
//! revoked token or a rotated admin key ends the sessions made with it at their next request.
//! Sessions end after [`IDLE_LIMIT`] without a request, after [`ABSOLUTE_LIMIT`] in any case, and
//! at logout. Each session has its own CSRF token, compared in constant time.
//!
//! The store and the cookie helpers live outside `dashboard/` because the REST side (`call.rs`:
//! the state every handler shares, ToolBox's session cookie) and the gate need them too: the
//! dashboard imports the REST side's state, never the other way round.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::HttpRequest;
use actix_web::http::header;
use cm_core::{Principal, Secret};
use serde::Serialize;
use subtle::ConstantTimeEq;

/// The cookie holding the session id.
pub const SESSION_COOKIE: &str = "cm_session";
/// The cookie of the login form (a double-submit token against login CSRF).
pub const LOGIN_COOKIE: &str = "cm_login";
/// A session ends after this long without a request.
pub const IDLE_LIMIT: Duration = Duration::from_secs(3600);
/// A session ends this long after login, whatever happens.
pub const ABSOLUTE_LIMIT: Duration = Duration::from_secs(8 * 3600);
/// The most sessions kept at once. When they are all live, new logins are refused: a session is
/// never ended to make room for another principal's.
const MAX_SESSIONS: usize = 10_000;
/// The most sessions of one principal; a new login ends that principal's oldest.
const MAX_PER_PRINCIPAL: usize = 32;
/// The most messages queued for one session's next page; older ones are dropped.
const MAX_FLASHES: usize = 16;

/// Every live session of this process.
pub struct Sessions {
    inner: Mutex<HashMap<String, Session>>,
    idle: Duration,
    absolute: Duration,
}

struct Session {
    principal: Principal,
    secret: Secret,
    csrf: String,
    created: Instant,
    seen: Instant,
    flashes: Vec<Flash>,
}

/// What a request learns from its session.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Who logged in.
    pub principal: Principal,
    /// The credential they logged in with (to re-authenticate; never sent anywhere).
    pub secret: Secret,
    /// The session's CSRF token.
    pub csrf: String,
}

/// A message shown once, on the next page.
#[derive(Debug, Clone, Serialize)]
pub struct Flash {
    /// `success`, `error`, `warning` or `info`.
    pub kind: &'static str,
    /// The message.
    pub text: String,
    /// A secret shown once (a new token or admin key), with a copy button.
    pub secret: Option<String>,
}

impl Flash {
    /// A success message.
    pub fn success(text: impl Into<String>) -> Self {
        Self::of("success", text)
    }

    /// An error message.
    pub fn error(text: impl Into<String>) -> Self {
        Self::of("error", text)
    }

    /// A warning.
    pub fn warning(text: impl Into<String>) -> Self {
        Self::of("warning", text)
    }

    /// A message carrying a secret that is shown only now.
    pub fn secret(text: impl Into<String>, secret: &Secret) -> Self {
        Flash {
            secret: Some(secret.expose().to_owned()),
            ..Self::of("secret", text)
        }
    }

    fn of(kind: &'static str, text: impl Into<String>) -> Self {
        Flash {
            kind,
            text: text.into(),
            secret: None,
        }
    }
}

impl Sessions {
    /// A store with the default limits.
    pub fn new() -> Self {
        Self::with_limits(IDLE_LIMIT, ABSOLUTE_LIMIT)
    }

    /// A store whose sessions end after `idle` without a request or `absolute` after login.
    pub fn with_limits(idle: Duration, absolute: Duration) -> Self {
        Sessions {
            inner: Mutex::new(HashMap::new()),
            idle,
            absolute,
        }
    }

    /// Starts a session; returns its id (for the cookie only), or `None` when the server holds
    /// as many live sessions as it keeps. A principal over its own limit loses its oldest
    /// session; nobody else's is touched.
    pub fn create(&self, principal: Principal, secret: Secret, now: Instant) -> Option<String> {
        let id = random_token();
        let mut map = self.lock();
        self.prune(&mut map, now);
        let mut own: Vec<(&String, Instant)> = map
            .iter()
            .filter(|(_, s)| s.principal == principal)
            .map(|(id, s)| (id, s.created))
            .collect();
        if own.len() >= MAX_PER_PRINCIPAL {
            own.sort_by_key(|(_, created)| *created);
            let oldest = own[0].0.clone();
            map.remove(&oldest);
        } else if map.len() >= MAX_SESSIONS {
            return None;
        }
        let session = Session {
            principal,
            secret,
            csrf: random_token(),
            created: now,
            seen: now,
            flashes: Vec::new(),
        };
        map.insert(id.clone(), session);
        Some(id)
    }

    /// The live session `id`, marked as seen now; `None` when unknown or expired (an expired one
    /// is dropped).
    pub fn get(&self, id: &str, now: Instant) -> Option<Snapshot> {
        let mut map = self.lock();
        let session = map.get_mut(id)?;
        if self.expired(session, now) {
            map.remove(id);
            return None;
        }
        session.seen = now;
        Some(Snapshot {
            principal: session.principal.clone(),
            secret: session.secret.clone(),
            csrf: session.csrf.clone(),
        })
    }

    /// The live session `id` without marking it as seen: for the status polling of an open
    /// page, which must not keep an unattended session alive.
    pub fn peek(&self, id: &str, now: Instant) -> Option<Snapshot> {
        let mut map = self.lock();
        let session = map.get(id)?;
        if self.expired(session, now) {
            map.remove(id);
            return None;
        }
        Some(Snapshot {
            principal: session.principal.clone(),
            secret: session.secret.clone(),
            csrf: session.csrf.clone(),
        })
    }

    /// Ends a session.
    pub fn destroy(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Queues a message for the session's next page.
    pub fn flash(&self, id: &str, flash: Flash) {
        if let Some(session) = self.lock().get_mut(id) {
            if session.flashes.len() >= MAX_FLASHES {
                session.flashes.remove(0);
            }
            session.flashes.push(flash);
        }
    }

    /// Takes the queued messages (each is shown once).
    pub fn take_flashes(&self, id: &str) -> Vec<Flash> {
        self.lock()
            .get_mut(id)
            .map(|s| std::mem::take(&mut s.flashes))
            .unwrap_or_default()
    }

    /// Replaces the credential of a session (after its admin rotated the key).
    pub fn replace_secret(&self, id: &str, secret: Secret) {
        if let Some(session) = self.lock().get_mut(id) {
            session.secret = secret;
        }
    }

    /// True when no session is kept (expired ones count until pruned).
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn expired(&self, session: &Session, now: Instant) -> bool {
        now.saturating_duration_since(session.seen) > self.idle
            || now.saturating_duration_since(session.created) > self.absolute
    }

    fn prune(&self, map: &mut HashMap<String, Session>, now: Instant) {
        map.retain(|_, session| !self.expired(session, now));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for Sessions {
    fn default() -> Self {
        Self::new()
    }
}

/// 256 random bits as 64 lowercase hex digits.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two tokens in constant time (for equal lengths).
pub fn tokens_match(expected: &str, presented: &str) -> bool {
    !expected.is_empty() && expected.as_bytes().ct_eq(presented.as_bytes()).into()
}

/// The value of cookie `name` in the request, if any.
pub fn cookie(req: &HttpRequest, name: &str) -> Option<String> {
    cookie_values(req, name).into_iter().next()
}

/// Every value of cookie `name` in the request (a browser sends one per matching path).
pub fn cookie_values(req: &HttpRequest, name: &str) -> Vec<String> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())
        .collect()
}

/// True when the request came over https (directly, or as a proxy says with `Forwarded` or
/// `X-Forwarded-Proto`); cookies are then marked `Secure`.
pub fn is_https(req: &HttpRequest) -> bool {
    req.connection_info().scheme().eq_ignore_ascii_case("https")
}

/// The `Set-Cookie` value of a new session.
pub fn session_cookie(id: &str, https: bool) -> String {
    format!(
        "{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict{}",
        secure(https)
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_session_cookie(https: bool) -> String {
    format!(
        "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        secure(https)
    )
}

/// The `Set-Cookie` value of the login form's token (valid for an hour, sent only to `/login`).
pub fn login_cookie(token: &str, https: bool) -> String {
    format!(
        "{LOGIN_COOKIE}={token}; Path=/login; HttpOnly; SameSite=Strict; Max-Age=3600{}",
        secure(https)
    )
}

fn secure(https: bool) -> &'static str {
    if https { "; Secure" } else { "" }
}

/// A form post from another site is refused: browsers say where a request comes from in
/// `Sec-Fetch-Site` (and in `Origin`, which is `null` under our `no-referrer` policy).
pub(crate) fn same_origin(req: &HttpRequest) -> bool {
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = header("sec-fetch-site") {
        return site == "same-origin" || site == "none";
    }
    match header("origin") {
        None | Some("null") => true,
        Some(origin) => {
            let origin_host = origin.split_once("://").map(|(_, rest)| rest);
            header("host").is_some() && origin_host == header("host")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> Principal {
        Principal::User(cm_core::UserId::parse("alice").expect("a valid user id"))
    }

    #[test]
    fn sessions_expire_when_idle_and_after_the_absolute_limit() {
        let sessions = Sessions::with_limits(Duration::from_secs(60), Duration::from_secs(300));
        let start = Instant::now();
        let id = sessions.create(user(), Secret::new("cmu_x"), start).unwrap();
        assert_eq!(id.len(), 64);
        let later = |s| start + Duration::from_secs(s);
        assert!(sessions.get(&id, later(50)).is_some());
        assert!(
            sessions.get(&id, later(100)).is_some(),
            "seen at 50, so not idle at 100"
        );
        assert!(sessions.get(&id, later(161)).is_none(), "idle for 61 seconds");
        assert!(sessions.is_empty(), "an expired session is dropped");

        let id = sessions.create(user(), Secret::new("cmu_x"), start).unwrap();
        assert!(sessions.peek(&id, later(30)).is_some());
        assert!(
            sessions.peek(&id, later(61)).is_none(),
            "peeking does not keep a session alive"
        );

        let id = sessions.create(user(), Secret::new("cmu_x"), start).unwrap();
        for s in (50..=300).step_by(50) {
            assert!(sessions.get(&id, later(s)).is_some(), "{s}");
        }
        assert!(sessions.get(&id, later(301)).is_none(), "past the absolute limit");
    }

    #[test]
    fn one_principal_can_never_evict_another_and_flashes_are_bounded() {
        let sessions = Sessions::new();
        let now = Instant::now();
        let admin = sessions
            .create(Principal::Admin, Secret::new("cmk_x"), now)
            .unwrap();
        let mut last = String::new();
        for _ in 0..1000 {
            last = sessions.create(user(), Secret::new("cmu_x"), now).unwrap();
        }
        assert!(
            sessions.get(&admin, now).is_some(),
            "the admin's session survives"
        );
        assert!(sessions.get(&last, now).is_some());
        assert_eq!(sessions.lock().len(), 1 + MAX_PER_PRINCIPAL);
        for i in 0..100 {
            sessions.flash(&admin, Flash::success(format!("{i}")));
        }
        let flashes = sessions.take_flashes(&admin);
        assert_eq!(flashes.len(), MAX_FLASHES);
        assert_eq!(flashes.last().unwrap().text, "99", "the newest are kept");
    }

    #[test]
    fn ids_and_csrf_tokens_are_random_and_flashes_show_once() {
        let sessions = Sessions::new();
        let now = Instant::now();
        let a = sessions.create(user(), Secret::new("cmu_x"), now).unwrap();
        let b = sessions.create(user(), Secret::new("cmu_x"), now).unwrap();
        assert_ne!(a, b);
        let (sa, sb) = (
            sessions.get(&a, now).expect("a"),
            sessions.get(&b, now).expect("b"),
        );
        assert_ne!(sa.csrf, sb.csrf);
        assert!(tokens_match(&sa.csrf, &sa.csrf.clone()));
        assert!(!tokens_match(&sa.csrf, &sb.csrf));
        assert!(!tokens_match(&sa.csrf, ""));
        assert!(!tokens_match("", ""));
        sessions.flash(&a, Flash::success("done"));
        assert_eq!(sessions.take_flashes(&a).len(), 1);
        assert!(sessions.take_flashes(&a).is_empty());
        sessions.destroy(&a);
        assert!(sessions.get(&a, now).is_none());
        assert!(sessions.get(&b, now).is_some());
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_over_https() {
        assert_eq!(
            session_cookie("abc", false),
            "cm_session=abc; Path=/; HttpOnly; SameSite=Strict"
        );
        assert!(session_cookie("abc", true).ends_with("; Secure"));
        assert!(clear_session_cookie(false).contains("Max-Age=0"));
    }
}
