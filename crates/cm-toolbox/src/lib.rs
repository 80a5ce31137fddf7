//! ToolBox identity: the access tokens ToolBox's CloudM issues (JSON Web Tokens, HS256, signed with
//! the worker's `TB_JWT_SECRET`) are verified here, locally, so ToolBox users sign in to the API,
//! the dashboard and their container routes with the identity they already have.
//!
//! What CloudM puts in an access token: `user_id` (and `sub`), `username`, `level`, `type`
//! (`access`), `exp` and `iat` as seconds with a fraction, `jti`. A token is accepted when its
//! signature checks with the shared secret, its algorithm is HS256, its `type` is `access`, it has
//! not expired and its user id is a valid ContainerManager user id. CloudM's blacklist (logouts)
//! is not visible from here: an access token lives 15 minutes.
//!
//! With `[auth.toolbox] validate_url`, [`WorkerSessions`] asks the ToolBox worker itself about
//! access tokens and about its `tb_session` cookie (see [`worker`]); [`VerifierChain`] puts the
//! local check first, so tokens it can check never cost a request to the worker.

pub mod worker;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use cm_core::{Error, ErrorKind, ExternalIdentity, IdentityVerifier, Secret, UserId};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

pub use worker::WorkerSessions;

/// Several verifiers asked in order: the first that recognises a credential (vouches for it or
/// refuses it) decides; the rest are not asked.
pub struct VerifierChain(Vec<Arc<dyn IdentityVerifier>>);

impl VerifierChain {
    /// Asks `verifiers` in this order.
    pub fn new(verifiers: Vec<Arc<dyn IdentityVerifier>>) -> Self {
        VerifierChain(verifiers)
    }
}

#[async_trait]
impl IdentityVerifier for VerifierChain {
    async fn verify(&self, presented: &Secret) -> cm_core::Result<Option<ExternalIdentity>> {
        for verifier in &self.0 {
            if let Some(identity) = verifier.verify(presented).await? {
                return Ok(Some(identity));
            }
        }
        Ok(None)
    }
}

/// Verifies CloudM access tokens.
pub struct CloudmTokens {
    key: DecodingKey,
    admin_level: Option<i64>,
    now: fn() -> SystemTime,
}

/// The claims read from a CloudM access token.
#[derive(Deserialize)]
struct Claims {
    user_id: Option<String>,
    sub: Option<String>,
    level: Option<f64>,
    #[serde(rename = "type")]
    kind: Option<String>,
    /// Seconds since the epoch, with a fraction (PyJWT writes `time.time()` as it is).
    exp: Option<f64>,
}

impl CloudmTokens {
    /// Tokens signed with `secret`; those whose `level` is at least `admin_level` act as the
    /// admin (`None`: none does).
    pub fn new(secret: &[u8], admin_level: Option<i64>) -> Result<Self, Error> {
        if secret.len() < 16 {
            return Err(Error::invalid(
                "the ToolBox token secret is too short: use the worker's TB_JWT_SECRET (at least 16 bytes)",
            ));
        }
        Ok(CloudmTokens {
            key: DecodingKey::from_secret(secret),
            admin_level,
            now: SystemTime::now,
        })
    }

    #[cfg(test)]
    fn at(mut self, now: fn() -> SystemTime) -> Self {
        self.now = now;
        self
    }
}

/// Whether `text` has the shape of a JSON Web Token (three base64url parts, a JSON header).
fn looks_like_jwt(text: &str) -> bool {
    text.starts_with("eyJ")
        && text.split('.').count() == 3
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[async_trait]
impl IdentityVerifier for CloudmTokens {
    async fn verify(&self, presented: &Secret) -> cm_core::Result<Option<ExternalIdentity>> {
        let text = presented.expose().trim();
        if !looks_like_jwt(text) {
            return Ok(None);
        }
        let refused = |why: &str| Error::new(ErrorKind::Unauthorized, format!("the ToolBox token {why}"));
        // Only HS256; the expiry is checked below, as CloudM writes it with a fraction.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<Claims>(text, &self.key, &validation)
            .map_err(|_| refused("is not valid (signature, algorithm or claims)"))?
            .claims;
        if claims.kind.as_deref().is_some_and(|kind| kind != "access") {
            return Err(refused("is not an access token"));
        }
        let expires = claims
            .exp
            .filter(|exp| exp.is_finite() && *exp > 0.0)
            .map(|exp| SystemTime::UNIX_EPOCH + Duration::from_secs_f64(exp))
            .ok_or_else(|| refused("has no expiry"))?;
        if expires <= (self.now)() {
            return Err(refused("has expired"));
        }
        let id = claims
            .user_id
            .or(claims.sub)
            .ok_or_else(|| refused("names no user"))?;
        let user = UserId::parse(&id).map_err(|_| refused("names a user id ContainerManager can not use"))?;
        #[allow(clippy::cast_precision_loss, reason = "levels are small integers")]
        let admin = matches!(
            (self.admin_level, claims.level),
            (Some(min), Some(level)) if level >= min as f64
        );
        Ok(Some(ExternalIdentity { user, admin, expires }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::{Value, json};

    const SECRET: &[u8] = b"a-shared-secret-of-the-worker";

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn token(claims: Value, secret: &[u8], algorithm: Algorithm) -> Secret {
        let text = jsonwebtoken::encode(
            &Header::new(algorithm),
            &claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap();
        Secret::new(text)
    }

    fn claims(user: &str, level: i64, exp: f64) -> Value {
        json!({"sub": user, "user_id": user, "username": user, "level": level, "type": "access",
               "iat": 1_799_999_000.25, "exp": exp, "jti": "b465"})
    }

    #[tokio::test]
    async fn valid_tokens_name_their_user_and_high_levels_the_admin() {
        let tokens = CloudmTokens::new(SECRET, Some(10)).unwrap().at(now);
        let alice = tokens
            .verify(&token(
                claims("alice_1", 1, 1_800_000_900.5),
                SECRET,
                Algorithm::HS256,
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(alice.user.as_str(), "alice_1");
        assert!(!alice.admin);
        let boss = tokens
            .verify(&token(
                claims("boss", 10, 1_800_000_900.5),
                SECRET,
                Algorithm::HS256,
            ))
            .await
            .unwrap()
            .unwrap();
        assert!(boss.admin);
        // Not a JWT at all: not this verifier's business.
        assert!(tokens.verify(&Secret::new("cmu_abc")).await.unwrap().is_none());
    }

    /// A verifier that vouches for everything it is asked about, counting.
    struct Everyone(std::sync::atomic::AtomicUsize);

    #[async_trait]
    impl IdentityVerifier for Everyone {
        async fn verify(&self, _: &Secret) -> cm_core::Result<Option<ExternalIdentity>> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(Some(ExternalIdentity {
                user: UserId::parse("someone").unwrap(),
                admin: false,
                expires: SystemTime::now() + Duration::from_secs(60),
            }))
        }
    }

    #[tokio::test]
    async fn the_chain_asks_the_next_only_about_what_the_first_does_not_recognise() {
        let local = Arc::new(CloudmTokens::new(SECRET, None).unwrap());
        let next = Arc::new(Everyone(Default::default()));
        let chain = VerifierChain::new(vec![local, next.clone()]);
        let exp = 4_102_444_800.0;
        let alice = chain
            .verify(&token(claims("alice", 1, exp), SECRET, Algorithm::HS256))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(alice.user.as_str(), "alice");
        // A token the local check refuses is refused: nobody else is asked.
        let forged = token(
            claims("alice", 1, exp),
            b"another-secret-entirely",
            Algorithm::HS256,
        );
        assert!(chain.verify(&forged).await.is_err());
        assert_eq!(next.0.load(std::sync::atomic::Ordering::SeqCst), 0);
        // What it does not recognise (a session cookie) goes on.
        let cookie = chain
            .verify(&Secret::new("eyJ1c2VyIjoiYSJ9.c2ln"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(cookie.user.as_str(), "someone");
        assert_eq!(next.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(
            VerifierChain::new(Vec::new())
                .verify(&forged)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn forged_expired_foreign_and_odd_tokens_are_refused() {
        let tokens = CloudmTokens::new(SECRET, None).unwrap().at(now);
        let cases = [
            (
                "another secret",
                token(
                    claims("alice", 1, 1_800_000_900.0),
                    b"another-secret-entirely",
                    Algorithm::HS256,
                ),
            ),
            (
                "expired",
                token(claims("alice", 1, 1_799_999_999.0), SECRET, Algorithm::HS256),
            ),
            (
                "HS512",
                token(claims("alice", 1, 1_800_000_900.0), SECRET, Algorithm::HS512),
            ),
            (
                "refresh token",
                token(
                    json!({"sub": "alice", "type": "refresh", "exp": 1_800_000_900.0}),
                    SECRET,
                    Algorithm::HS256,
                ),
            ),
            (
                "no expiry",
                token(
                    json!({"sub": "alice", "type": "access"}),
                    SECRET,
                    Algorithm::HS256,
                ),
            ),
            (
                "bad user id",
                token(
                    claims("alice smith", 1, 1_800_000_900.0),
                    SECRET,
                    Algorithm::HS256,
                ),
            ),
        ];
        for (what, presented) in cases {
            let err = tokens.verify(&presented).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Unauthorized, "{what}");
        }
        // A tampered payload (alice's signature on bob's claims).
        let good = token(claims("alice", 1, 1_800_000_900.0), SECRET, Algorithm::HS256);
        let other = token(claims("bob", 1, 1_800_000_900.0), SECRET, Algorithm::HS256);
        let parts: Vec<&str> = good.expose().split('.').collect();
        let bob_parts: Vec<&str> = other.expose().split('.').collect();
        let tampered = Secret::new(format!("{}.{}.{}", parts[0], bob_parts[1], parts[2]));
        assert!(tokens.verify(&tampered).await.is_err());
        // Without admin_level, no level makes an admin.
        let high = tokens
            .verify(&token(
                claims("root", 1000, 1_800_000_900.0),
                SECRET,
                Algorithm::HS256,
            ))
            .await
            .unwrap()
            .unwrap();
        assert!(!high.admin);
        assert!(CloudmTokens::new(b"short", None).is_err());
    }
}
