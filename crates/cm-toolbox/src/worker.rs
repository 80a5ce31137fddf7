//! ToolBox credentials checked by the ToolBox worker itself (`[auth.toolbox] validate_url`).
//!
//! Two kinds of credentials are ToolBox's, told apart by their shape:
//!
//! - a CloudM access token (a JSON Web Token, three base64url parts): `POST /validateSession`
//!   with `Authorization: Bearer <token>`; the worker checks the signature, the expiry, its
//!   logout blacklist and that the user exists, and answers the user's id, name and level;
//! - the worker's `tb_session` cookie (its signed session, two base64url parts):
//!   `GET /api_user_data` with `Cookie: tb_session=<value>`; the worker answers the session's
//!   user with their level.
//!
//! Nothing else is ever sent to the worker (this project's `cmk_`/`cmu_` secrets have neither
//! shape). Credentials travel in headers only, never in a URL, and are never logged; the cache
//! keys them by their SHA-256. An answer is reused for `validate_cache_seconds` (a refusal for at
//! most [`REFUSAL_CACHE`]), and an identity from the worker ends when its cache entry does (or
//! earlier, at a token's own expiry): a route sign-in made from it is as short-lived, so a logout
//! at ToolBox ends access here within that time. A worker that does not answer in
//! `validate_timeout_ms`, can not be reached or fails (5xx) makes the sign-in `Unavailable`
//! (503), naming the worker's URL; it is then left alone for [`BACKOFF`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use cm_core::{Error, ErrorKind, ExternalIdentity, IdentityVerifier, Secret, ToolboxIdentity, UserId};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

/// How long a refusal is reused (at most; never longer than the configured cache time): a
/// guesser can not make the worker check the same wrong credential more than once in this time.
pub const REFUSAL_CACHE: Duration = Duration::from_secs(5);
/// After the worker failed to answer, it is not asked again for this long (every sign-in with a
/// ToolBox credential is `Unavailable` meanwhile): requests do not pile up on a hung worker.
pub const BACKOFF: Duration = Duration::from_secs(1);
/// The most answers kept; beyond it, expired ones go first, then those that expire soonest.
pub const CACHE_ENTRIES: usize = 10_000;
/// The largest answer of the worker that is read.
const ANSWER_LIMIT: u64 = 1024 * 1024;
/// The longest credential sent to the worker.
const CREDENTIAL_MAX: usize = 4096;

/// Which kind of ToolBox credential a presented secret is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Credential {
    /// A CloudM access token (JWT).
    AccessToken,
    /// The worker's `tb_session` cookie value.
    SessionCookie,
}

impl Credential {
    /// The kind of `text`, or `None` when it is no ToolBox credential (never sent anywhere).
    fn of(text: &str) -> Option<Credential> {
        let base64url = |part: &str| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        };
        // Both start with a base64url JSON object (`{"` is `eyJ`).
        if text.len() > CREDENTIAL_MAX || !text.starts_with("eyJ") {
            return None;
        }
        let parts: Vec<&str> = text.split('.').collect();
        match parts.as_slice() {
            [header, payload, signature] if [header, payload, signature].iter().all(|p| base64url(p)) => {
                Some(Credential::AccessToken)
            }
            [payload, signature] if base64url(payload) && base64url(signature) => {
                Some(Credential::SessionCookie)
            }
            _ => None,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Credential::AccessToken => "access token",
            Credential::SessionCookie => "session",
        }
    }
}

/// What the worker said about a credential.
#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    /// Whose it is.
    Known(ExternalIdentity),
    /// Refused, and why (for the 401's message).
    Refused(String),
}

/// The worker's recent answers, by the SHA-256 of the credential (never the credential).
struct Cache {
    entries: Mutex<HashMap<String, (Verdict, Instant)>>,
    capacity: usize,
}

impl Cache {
    fn new(capacity: usize) -> Self {
        Cache {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// The answer about `key`, while it is fresh.
    fn get(&self, key: &str, now: Instant) -> Option<Verdict> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        match entries.get(key) {
            Some((verdict, until)) if now < *until => Some(verdict.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Keeps the answer about `key` until `until`; when full, drops the expired answers, else
    /// the one that would expire first.
    fn put(&self, key: String, verdict: Verdict, until: Instant, now: Instant) {
        if until <= now {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, (_, until)| now < *until);
            if entries.len() >= self.capacity
                && let Some(soonest) = entries
                    .iter()
                    .min_by_key(|(_, (_, until))| *until)
                    .map(|(key, _)| key.clone())
            {
                entries.remove(&soonest);
            }
        }
        entries.insert(key, (verdict, until));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// Asks the ToolBox worker whose a credential is (an [`IdentityVerifier`]).
pub struct WorkerSessions {
    client: Arc<Client>,
    admin_level: Option<i64>,
    cache_for: Duration,
    cache: Cache,
    /// Until when the worker is not asked (it failed to answer just now).
    resting_until: Mutex<Option<Instant>>,
}

/// The HTTP client of one worker.
struct Client {
    /// The worker's base URL, without a trailing slash.
    base: String,
    timeout: Duration,
    agent: ureq::Agent,
}

impl WorkerSessions {
    /// A verifier asking the worker at `base` (an `http://` or `https://` URL, checked when the
    /// configuration was read), reusing answers for `cache_for`, waiting at most `timeout`.
    pub fn new(base: &str, admin_level: Option<i64>, cache_for: Duration, timeout: Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            // The credential goes to the configured worker only: no proxy from the environment,
            // no redirects.
            .proxy(None)
            .max_redirects(0)
            .user_agent(concat!("containermanager/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        WorkerSessions {
            client: Arc::new(Client {
                base: base.trim().trim_end_matches('/').to_owned(),
                timeout,
                agent,
            }),
            admin_level,
            cache_for: cache_for.max(Duration::from_secs(1)),
            cache: Cache::new(CACHE_ENTRIES),
            resting_until: Mutex::new(None),
        }
    }

    /// The verifier of `[auth.toolbox]`, when it names a worker (`validate_url`).
    pub fn from_config(config: &ToolboxIdentity) -> Option<Self> {
        let url = config.validate_url.as_deref()?;
        Some(Self::new(
            url,
            config.admin_level,
            Duration::from_secs(config.validate_cache_seconds),
            Duration::from_millis(config.validate_timeout_ms),
        ))
    }

    /// The identity the worker vouched for: ends with its cache entry, or at a token's expiry.
    fn identity(&self, kind: Credential, credential: &str, who: Who, now: SystemTime) -> Verdict {
        let refused = |why: &str| Verdict::Refused(format!("the ToolBox {} {why}", kind.noun()));
        let Ok(user) = UserId::parse(&who.user_id) else {
            return refused("names a user id ContainerManager can not use");
        };
        let mut expires = now + self.cache_for;
        if kind == Credential::AccessToken
            && let Some(exp) = token_expiry(credential)
        {
            expires = expires.min(exp);
        }
        #[allow(clippy::cast_precision_loss, reason = "levels are small integers")]
        let admin = matches!(
            (self.admin_level, who.level),
            (Some(min), Some(level)) if level >= min as f64
        );
        Verdict::Known(ExternalIdentity { user, admin, expires })
    }

    /// `Unavailable` while the worker rests after a failure.
    fn check_resting(&self, now: Instant) -> Result<(), Error> {
        let mut resting = self.resting_until.lock().unwrap_or_else(PoisonError::into_inner);
        match *resting {
            Some(until) if now < until => Err(self.client.unavailable("did not answer a moment ago")),
            _ => {
                *resting = None;
                Ok(())
            }
        }
    }

    fn rest(&self, now: Instant) {
        *self.resting_until.lock().unwrap_or_else(PoisonError::into_inner) = Some(now + BACKOFF);
    }
}

impl Client {
    fn unavailable(&self, why: impl std::fmt::Display) -> Error {
        Error::new(
            ErrorKind::Unavailable,
            format!(
                "the ToolBox worker at {} {why}: ToolBox sign-ins can not be checked until it answers",
                self.base
            ),
        )
    }

    /// Asks the worker (blocking: run on the blocking pool).
    fn ask(&self, kind: Credential, credential: &str) -> Result<Answer, Error> {
        let sent = match kind {
            Credential::AccessToken => self
                .agent
                .post(&format!("{}/validateSession", self.base))
                .header("Authorization", &format!("Bearer {credential}"))
                .header("Content-Type", "application/json")
                .header("Accept", "application/json")
                .send("{}"),
            Credential::SessionCookie => self
                .agent
                .get(&format!("{}/api_user_data", self.base))
                .header(
                    "Cookie",
                    &format!("{}={credential}", ToolboxIdentity::SESSION_COOKIE),
                )
                .header("Accept", "application/json")
                .call(),
        };
        let mut answer = sent.map_err(|e| self.transport_error(e))?;
        let status = answer.status().as_u16();
        let text = answer
            .body_mut()
            .with_config()
            .limit(ANSWER_LIMIT)
            .read_to_string()
            .map_err(|e| self.transport_error(e))?;
        Ok(interpret(kind, status, &text).unwrap_or_else(Answer::Unusable))
    }

    fn transport_error(&self, error: ureq::Error) -> Error {
        match error {
            ureq::Error::Timeout(_) => self.unavailable(format_args!(
                "did not answer within {} ms",
                self.timeout.as_millis()
            )),
            ureq::Error::Io(e) => self.unavailable(format_args!("can not be reached ({e})")),
            other => self.unavailable(format_args!("can not be asked ({other})")),
        }
    }
}

/// Who the worker said a credential is.
#[derive(Debug, Clone, PartialEq)]
struct Who {
    user_id: String,
    level: Option<f64>,
}

/// The worker's answer: who, or a refusal with its reason.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    Known(Who),
    Refused(String),
    /// It answered, but with no verdict (a server error on this credential): this credential
    /// gets 503, the worker is not rested for everyone else.
    Unusable(String),
}

/// The worker's envelope: `{"error": "none", "result": {"data": {...}}, ...}`.
#[derive(Deserialize)]
struct Envelope {
    error: Option<Value>,
    result: Option<EnvelopeResult>,
}

#[derive(Deserialize)]
struct EnvelopeResult {
    data: Option<Value>,
}

/// Reads the worker's answer: `Ok` with who it is or a refusal (4xx), `Err` with what went wrong
/// when the answer says nothing about the credential (5xx, a redirect, another server).
fn interpret(kind: Credential, status: u16, text: &str) -> Result<Answer, String> {
    let envelope: Option<Envelope> = serde_json::from_str(text).ok();
    let said = {
        let error = envelope
            .as_ref()
            .and_then(|e| e.error.as_ref())
            .and_then(Value::as_str)
            .unwrap_or_default();
        let short: String = error.chars().filter(|c| !c.is_control()).take(200).collect();
        if short.is_empty() {
            format!("the worker answered {status}")
        } else {
            format!("the worker answered {status}: {short}")
        }
    };
    let path = match kind {
        Credential::AccessToken => "/validateSession",
        Credential::SessionCookie => "/api_user_data",
    };
    let workers = envelope.as_ref().is_some_and(|e| e.error.is_some());
    match status {
        200 => {}
        // The worker's verdict on the credential.
        401 | 403 => return Ok(Answer::Refused(said)),
        // Also its verdict (no user id in the session, the user is gone), in its envelope; a bare
        // 404 is another server's.
        400 | 404 | 410 if workers => return Ok(Answer::Refused(said)),
        500..=599 => return Err(format!("failed ({said})")),
        _ => {
            return Err(format!(
                "answered {path} unexpectedly ({said}; is validate_url the ToolBox worker?)"
            ));
        }
    }
    let not_its_answer =
        || format!("answered {path} with 200 but no session answer (is validate_url the ToolBox worker?)");
    let envelope = envelope.ok_or_else(not_its_answer)?;
    if envelope
        .error
        .as_ref()
        .and_then(Value::as_str)
        .is_some_and(|e| e != "none")
    {
        return Ok(Answer::Refused(said));
    }
    let data = envelope.result.and_then(|r| r.data).ok_or_else(not_its_answer)?;
    if kind == Credential::AccessToken && data.get("authenticated").and_then(Value::as_bool) != Some(true) {
        return Ok(Answer::Refused("the worker did not authenticate it".to_owned()));
    }
    let user_id = data
        .get("user_id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .ok_or_else(not_its_answer)?;
    let level = match data.get("level") {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    Ok(Answer::Known(Who {
        user_id: user_id.to_owned(),
        level,
    }))
}

/// The expiry a CloudM token states (read only after the worker accepted its signature).
fn token_expiry(token: &str) -> Option<SystemTime> {
    #[derive(Deserialize)]
    struct Exp {
        exp: Option<f64>,
    }
    let mut validation = Validation::new(Algorithm::HS256);
    validation.insecure_disable_signature_validation();
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    let exp = jsonwebtoken::decode::<Exp>(token, &DecodingKey::from_secret(&[]), &validation)
        .ok()?
        .claims
        .exp?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::try_from_secs_f64(exp).ok()?)
}

#[async_trait]
impl IdentityVerifier for WorkerSessions {
    async fn verify(&self, presented: &Secret) -> cm_core::Result<Option<ExternalIdentity>> {
        let text = presented.expose().trim();
        let Some(kind) = Credential::of(text) else {
            return Ok(None);
        };
        let key = Secret::new(text).hash().as_hex().to_owned();
        let now = Instant::now();
        let decided = |verdict: Verdict| match verdict {
            Verdict::Known(identity) if identity.expires > SystemTime::now() => Ok(Some(identity)),
            Verdict::Known(_) => Err(Error::new(
                ErrorKind::Unauthorized,
                format!("the ToolBox {} has expired", kind.noun()),
            )),
            Verdict::Refused(why) => Err(Error::new(ErrorKind::Unauthorized, why)),
        };
        if let Some(verdict) = self.cache.get(&key, now) {
            return decided(verdict);
        }
        self.check_resting(now)?;
        let client = self.client.clone();
        let credential = text.to_owned();
        let asked = tokio::task::spawn_blocking(move || client.ask(kind, &credential))
            .await
            .map_err(|e| Error::internal(format!("asking the ToolBox worker failed: {e}")))?;
        let answer = match asked {
            Ok(answer) => answer,
            Err(e) => {
                self.rest(Instant::now());
                tracing::warn!(error = %e.message(), "ToolBox worker unavailable");
                return Err(e);
            }
        };
        let (verdict, keep) = match answer {
            Answer::Unusable(why) => {
                let e = self.client.unavailable(why);
                tracing::warn!(error = %e.message(), "the ToolBox worker gave no verdict");
                return Err(e);
            }
            Answer::Known(who) => {
                let verdict = self.identity(kind, text, who, SystemTime::now());
                let keep = match &verdict {
                    Verdict::Known(identity) => identity
                        .expires
                        .duration_since(SystemTime::now())
                        .unwrap_or_default()
                        .min(self.cache_for),
                    Verdict::Refused(_) => REFUSAL_CACHE.min(self.cache_for),
                };
                (verdict, keep)
            }
            Answer::Refused(why) => (
                Verdict::Refused(format!("the ToolBox {} was refused ({why})", kind.noun())),
                REFUSAL_CACHE.min(self.cache_for),
            ),
        };
        let now = Instant::now();
        self.cache.put(key, verdict.clone(), now + keep, now);
        decided(verdict)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::mpsc;

    const JWT: &str =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c3JfYSIsImV4cCI6NDEwMjQ0NDgwMH0.c2lnbmF0dXJl";
    const COOKIE: &str = "eyJ1c2VyX2lkIjoidXNyX2EiLCJleHAiOjB9.OGL38zXsge0CEJl6gFk_g5hhk2l95xtAFQnF52BxvuE";

    #[test]
    fn only_toolbox_shaped_credentials_are_recognised() {
        assert_eq!(Credential::of(JWT), Some(Credential::AccessToken));
        assert_eq!(Credential::of(COOKIE), Some(Credential::SessionCookie));
        for other in [
            "cmu_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "cmk_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "an-admin-key-from-env-0123456789",
            "eyJ",
            "eyJabc.",
            "eyJa.b.c.d",
            "eyJa b.c",
            "eyJa.b%2F",
            "",
        ] {
            assert_eq!(Credential::of(other), None, "{other:?}");
        }
        let long = format!("eyJ{}.abc", "a".repeat(CREDENTIAL_MAX));
        assert_eq!(Credential::of(&long), None);
    }

    #[test]
    fn the_workers_answers_are_read_as_verdicts_or_failures() {
        let valid = r#"{"error":"none","origin":null,"result":{"data_to":"API","data_info":"Valid Session","data":{"authenticated":true,"session_id":"f1","user_id":"usr_a","user_name":"alice","level":1},"data_type":null},"info":{"exec_code":0,"help_text":"Valid Session"}}"#;
        assert_eq!(
            interpret(Credential::AccessToken, 200, valid),
            Ok(Answer::Known(Who {
                user_id: "usr_a".into(),
                level: Some(1.0)
            }))
        );
        let user_data = r#"{"error":"none","result":{"data":{"user_id":"usr_b","username":"bob","level":"10","minio_credentials":{"secret_key":""}}}}"#;
        assert_eq!(
            interpret(Credential::SessionCookie, 200, user_data),
            Ok(Answer::Known(Who {
                user_id: "usr_b".into(),
                level: Some(10.0)
            }))
        );
        let refused = r#"{"error":"Invalid or expired session","origin":null,"result":null,"info":null}"#;
        let Ok(Answer::Refused(why)) = interpret(Credential::AccessToken, 401, refused) else {
            panic!("a 401 is a refusal");
        };
        assert!(why.contains("Invalid or expired session"), "{why}");
        // The user is gone: the worker's own 404.
        let gone = r#"{"error":"User data not found.","result":null}"#;
        assert!(matches!(
            interpret(Credential::SessionCookie, 404, gone),
            Ok(Answer::Refused(_))
        ));
        let not_authenticated =
            r#"{"error":"none","result":{"data":{"authenticated":false,"user_id":"usr_a"}}}"#;
        assert!(matches!(
            interpret(Credential::AccessToken, 200, not_authenticated),
            Ok(Answer::Refused(_))
        ));
        // Not about the credential: failures (503 upstream).
        for (status, body) in [
            (500, "Internal Server Error"),
            (502, ""),
            (404, "<html>Not Found</html>"),
            (302, ""),
            (429, r#"{"error":"slow down"}"#),
            (200, "<html>a login page</html>"),
            (
                200,
                r#"{"error":"none","result":{"data":{"authenticated":true}}}"#,
            ),
        ] {
            let failed = interpret(Credential::AccessToken, status, body);
            assert!(failed.is_err(), "{status} {body}: {failed:?}");
        }
    }

    #[test]
    fn the_cache_forgets_expired_answers_and_stays_bounded() {
        let cache = Cache::new(3);
        let t0 = Instant::now();
        let refused = |why: &str| Verdict::Refused(why.to_owned());
        cache.put("a".into(), refused("a"), t0 + Duration::from_secs(10), t0);
        cache.put("b".into(), refused("b"), t0 + Duration::from_secs(1), t0);
        cache.put("c".into(), refused("c"), t0 + Duration::from_secs(20), t0);
        assert_eq!(cache.get("a", t0), Some(refused("a")));
        assert_eq!(cache.get("b", t0 + Duration::from_secs(2)), None);
        // Full (b expired but still counted until it is looked at or room is needed): room is
        // made by dropping the expired one first.
        cache.put("b".into(), refused("b"), t0 + Duration::from_secs(1), t0);
        cache.put(
            "d".into(),
            refused("d"),
            t0 + Duration::from_secs(30),
            t0 + Duration::from_secs(2),
        );
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get("b", t0), None);
        // Nothing expired: the one that expires soonest goes.
        cache.put(
            "e".into(),
            refused("e"),
            t0 + Duration::from_secs(40),
            t0 + Duration::from_secs(2),
        );
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get("a", t0 + Duration::from_secs(2)), None);
        for kept in ["c", "d", "e"] {
            assert!(cache.get(kept, t0 + Duration::from_secs(3)).is_some(), "{kept}");
        }
        // An answer that is already stale is not kept.
        cache.put("f".into(), refused("f"), t0, t0 + Duration::from_secs(1));
        assert_eq!(cache.get("f", t0), None);
    }

    /// One request the fake worker received.
    #[derive(Debug)]
    struct Seen {
        line: String,
        headers: Vec<(String, String)>,
    }

    impl Seen {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    /// A fake worker on a loopback port: answers every request with `answer(request line,
    /// headers)` (status, body), or never when `None`; reports what it saw.
    fn fake_worker(
        answer: impl Fn(&Seen) -> Option<(u16, String)> + Send + 'static,
    ) -> (String, mpsc::Receiver<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { break };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let mut headers = Vec::new();
                loop {
                    let mut header = String::new();
                    reader.read_line(&mut header).unwrap();
                    let header = header.trim_end().to_owned();
                    if header.is_empty() {
                        break;
                    }
                    let (name, value) = header.split_once(':').unwrap();
                    headers.push((name.trim().to_owned(), value.trim().to_owned()));
                }
                let seen = Seen {
                    line: line.trim_end().to_owned(),
                    headers,
                };
                let length: usize = seen.header("content-length").map_or(0, |v| v.parse().unwrap());
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let reply = answer(&seen);
                let _ = tx.send(seen);
                match reply {
                    Some((status, body)) => {
                        let _ = write!(
                            stream,
                            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                    }
                    // Never answers (the connection stays open).
                    None => held.push(stream),
                }
            }
        });
        (url, rx)
    }

    fn valid_session(user: &str, level: i64) -> String {
        format!(
            r#"{{"error":"none","result":{{"data":{{"authenticated":true,"user_id":"{user}","user_name":"x","level":{level}}}}},"info":{{"exec_code":0}}}}"#
        )
    }

    fn sessions(url: &str) -> WorkerSessions {
        WorkerSessions::new(url, Some(10), Duration::from_secs(30), Duration::from_millis(500))
    }

    #[tokio::test]
    async fn tokens_and_cookies_are_asked_about_once_in_headers_only() {
        let (url, seen) = fake_worker(|req| {
            Some(match req.line.as_str() {
                "POST /validateSession HTTP/1.1" => (200, valid_session("usr_a", 1)),
                "GET /api_user_data HTTP/1.1" => (
                    200,
                    r#"{"error":"none","result":{"data":{"user_id":"boss","username":"b","level":10}}}"#
                        .to_owned(),
                ),
                _ => (404, String::new()),
            })
        });
        let verifier = sessions(&format!("{url}/"));
        let before = SystemTime::now();
        let alice = verifier.verify(&Secret::new(JWT)).await.unwrap().unwrap();
        assert_eq!(alice.user.as_str(), "usr_a");
        assert!(!alice.admin);
        // The identity ends with its cache entry (the token itself states a later expiry).
        assert!(alice.expires >= before + Duration::from_secs(29));
        assert!(alice.expires <= SystemTime::now() + Duration::from_secs(30));
        let asked = seen.recv().unwrap();
        assert_eq!(
            asked.header("authorization"),
            Some(format!("Bearer {JWT}").as_str())
        );
        assert!(!asked.line.contains(JWT));
        // The cookie: as a cookie; a high level is the admin.
        let boss = verifier.verify(&Secret::new(COOKIE)).await.unwrap().unwrap();
        assert_eq!(boss.user.as_str(), "boss");
        assert!(boss.admin);
        let asked = seen.recv().unwrap();
        assert_eq!(
            asked.header("cookie"),
            Some(format!("tb_session={COOKIE}").as_str())
        );
        assert_eq!(asked.header("authorization"), None);
        assert!(!asked.line.contains(COOKIE));
        // Cached: the same answers without asking again.
        assert_eq!(verifier.verify(&Secret::new(JWT)).await.unwrap().unwrap(), alice);
        assert_eq!(
            verifier.verify(&Secret::new(COOKIE)).await.unwrap().unwrap(),
            boss
        );
        // Not ToolBox's: not this verifier's business, and never sent.
        for other in [
            "cmu_0123456789abcdef",
            "cmk_abcdef0123456789",
            "an-admin-key-from-env-0123456789",
        ] {
            assert!(verifier.verify(&Secret::new(other)).await.unwrap().is_none());
        }
        assert!(seen.try_recv().is_err(), "asked again: {:?}", seen.try_recv());
    }

    #[tokio::test]
    async fn refusals_are_401_and_cached_briefly() {
        let (url, seen) = fake_worker(|_| {
            Some((
                401,
                r#"{"error":"Invalid or expired session","result":null}"#.to_owned(),
            ))
        });
        let verifier = sessions(&url);
        for _ in 0..3 {
            let err = verifier.verify(&Secret::new(JWT)).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Unauthorized);
            assert!(err.message().contains("Invalid or expired session"), "{err}");
        }
        seen.recv().unwrap();
        assert!(seen.try_recv().is_err(), "a refusal is reused");
        // A user id ContainerManager can not use is refused too.
        let (url, _seen) = fake_worker(|_| Some((200, valid_session("Alice Smith", 1))));
        let err = sessions(&url).verify(&Secret::new(JWT)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthorized);
        assert!(err.message().contains("user id"), "{err}");
    }

    #[tokio::test]
    async fn a_worker_that_is_down_slow_or_failing_is_unavailable_naming_its_url() {
        // Nothing listens.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let verifier = sessions(&url);
        let err = verifier.verify(&Secret::new(JWT)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(err.message().contains(&url), "{err}");
        assert!(!err.message().contains(JWT));
        // Resting: the next one is refused at once, then the worker is asked again.
        let again = verifier.verify(&Secret::new(COOKIE)).await.unwrap_err();
        assert!(again.message().contains("a moment ago"), "{again}");
        tokio::time::sleep(BACKOFF).await;
        let later = verifier.verify(&Secret::new(COOKIE)).await.unwrap_err();
        assert!(later.message().contains("can not be reached"), "{later}");

        // Never answers: the time limit.
        let (url, _seen) = fake_worker(|_| None);
        let started = Instant::now();
        let err = sessions(&url).verify(&Secret::new(JWT)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(err.message().contains("within 500 ms"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));

        // Fails: 5xx is not a refusal, and is not cached.
        let (url, seen) = fake_worker(|_| Some((500, "boom".to_owned())));
        let verifier = sessions(&url);
        let err = verifier.verify(&Secret::new(JWT)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(
            err.message().contains(&url) && err.message().contains("500"),
            "{err}"
        );
        tokio::time::sleep(BACKOFF).await;
        assert!(verifier.verify(&Secret::new(JWT)).await.is_err());
        assert_eq!(seen.iter().take(2).count(), 2, "asked again after a failure");
    }

    #[test]
    fn a_token_that_expires_before_the_cache_does_ends_the_identity() {
        let verifier = sessions("http://127.0.0.1:1");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(4_102_444_790);
        let who = Who {
            user_id: "usr_a".into(),
            level: None,
        };
        // JWT states exp 4102444800: 10 s after `now`, before the 30 s of the cache.
        let Verdict::Known(identity) = verifier.identity(Credential::AccessToken, JWT, who.clone(), now)
        else {
            panic!("known");
        };
        assert_eq!(
            identity.expires,
            SystemTime::UNIX_EPOCH + Duration::from_secs(4_102_444_800)
        );
        let Verdict::Known(session) = verifier.identity(Credential::SessionCookie, COOKIE, who, now) else {
            panic!("known");
        };
        assert_eq!(session.expires, now + Duration::from_secs(30));
    }
}
