//! Credentials and who may do what (D8): the admin key, per-user tokens, and the authorization rule.
//!
//! Secrets are random 256-bit values shown once; only their SHA-256 hashes are stored, and hashes
//! are compared in constant time. A caller-supplied user id is never proof of anything: a user is
//! whoever the token says.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::actions::Rule;
pub use crate::actions::{Action, UserAction, UserActions};
use crate::error::{Error, ErrorKind, Result};
use crate::names::UserId;
use crate::ports::Clock;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "role", content = "user_id")]
pub enum Principal {
    /// The holder of the admin key: everything.
    Admin,
    /// The holder of a user token: that user's containers, within the user actions.
    User(UserId),
}

/// A secret as presented or generated. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

/// The SHA-256 of a secret, lowercase hex: what is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretHash(String);

/// A stored user token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRecord {
    /// A public id: the first 12 hex digits of the hash (safe to show and log).
    pub id: String,
    /// The user the token acts for.
    pub user_id: UserId,
    /// The hash of the token.
    #[serde(skip)]
    pub hash: SecretHash,
    /// When it was created, RFC 3339 UTC.
    pub created_at: String,
    /// When it stops working, RFC 3339 UTC; `None`: never.
    pub expires_at: Option<String>,
    /// When it last authenticated a request (to the minute), RFC 3339 UTC.
    pub last_used_at: Option<String>,
}

/// Where the admin key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminKeySource {
    /// `CONTAINER_ADMIN_KEY`: rotate it by changing the variable.
    Environment,
    /// Generated and stored as a hash: rotate it with the API or the dashboard.
    Stored,
}

/// Where credentials are kept (implemented by cm-store).
#[async_trait]
pub trait CredentialStore: Send + Sync {
    /// The stored admin key hash, if one was generated.
    async fn admin_key_hash(&self) -> Result<Option<SecretHash>>;
    /// Stores a new admin key hash, replacing any previous one.
    async fn set_admin_key_hash(&self, hash: &SecretHash) -> Result<()>;
    /// Stores a token.
    async fn insert_token(&self, record: &TokenRecord) -> Result<()>;
    /// The token with this hash.
    async fn token_by_hash(&self, hash: &SecretHash) -> Result<Option<TokenRecord>>;
    /// The token with this public id.
    async fn token_by_id(&self, id: &str) -> Result<Option<TokenRecord>> {
        Ok(self.tokens().await?.into_iter().find(|t| t.id == id))
    }
    /// Deletes every token of a user; returns how many.
    async fn revoke_user_tokens(&self, user: &UserId) -> Result<usize>;
    /// Deletes one token by its public id; `false` when there was none.
    async fn revoke_token(&self, id: &str) -> Result<bool>;
    /// Every token, oldest first.
    async fn tokens(&self) -> Result<Vec<TokenRecord>>;
    /// Notes that the token `id` authenticated a request at `at` (RFC 3339 UTC).
    async fn touch_token(&self, id: &str, at: &str) -> Result<()>;
}

/// A source of random bytes for new secrets.
pub trait Entropy: Send + Sync {
    /// 32 fresh random bytes.
    fn secret_bytes(&self) -> [u8; 32];
}

/// Authentication and token management.
#[derive(Clone)]
pub struct Auth {
    store: Arc<dyn CredentialStore>,
    entropy: Arc<dyn Entropy>,
    clock: Arc<dyn Clock>,
    env_admin: Option<SecretHash>,
    /// Signs route tickets. Random per process: a restart of cm-api signs everyone out of the
    /// proxy (they sign in again with their token), and no key is ever stored.
    ticket_key: Arc<[u8; 32]>,
    /// Another identity system whose credentials are accepted too (ToolBox's CloudM tokens).
    external: Option<Arc<dyn IdentityVerifier>>,
}

/// A caller another identity system vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalIdentity {
    /// The user, as a ContainerManager user id.
    pub user: UserId,
    /// True when that system's rules make the caller an admin here.
    pub admin: bool,
    /// When the credential stops working.
    pub expires: SystemTime,
}

/// Verifies credentials of another identity system (a port: the ToolBox adapter implements it).
#[async_trait]
pub trait IdentityVerifier: Send + Sync {
    /// `Ok(None)` when `presented` is not this system's kind of credential; `Unauthorized` when
    /// it is one but forged, expired or otherwise refused.
    async fn verify(&self, presented: &Secret) -> Result<Option<ExternalIdentity>>;
}

/// The credential id route tickets of external identities carry (they end at the identity's own
/// expiry instead of at a revocation here).
const EXTERNAL_CREDENTIAL: &str = "external";

/// The value of the proxy's route cookie: proof that its holder signed in with a credential,
/// until it expires or the credential is revoked. Holds no secret: the credential's public id,
/// the user, the expiry and a MAC over them.
#[derive(Clone, PartialEq, Eq)]
pub struct Ticket(String);

impl Ticket {
    /// The cookie value.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ticket([redacted])")
    }
}

const TICKET_VERSION: &str = "t2";
/// Longer presented tickets are refused without parsing.
const TICKET_MAX: usize = 256;

const ADMIN_PREFIX: &str = "cmk_";
const TOKEN_PREFIX: &str = "cmu_";
/// Longer presented secrets are refused without hashing (a cheap guard against abuse).
/// The longest credential read (ToolBox tokens are JSON Web Tokens of a few hundred bytes).
const SECRET_MAX: usize = 4096;
/// The shortest admin key accepted from the environment.
const ENV_KEY_MIN: usize = 16;

impl Secret {
    /// Wraps presented text.
    pub fn new(text: impl Into<String>) -> Self {
        Secret(text.into())
    }

    /// The secret itself: call only to show it once or to hash it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its hash.
    pub fn hash(&self) -> SecretHash {
        let digest = Sha256::digest(self.0.as_bytes());
        SecretHash(digest.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// A new random admin key (`cmk_` and 64 hex digits; the prefix lets secret scanners find leaks).
    pub fn new_admin_key(entropy: &dyn Entropy) -> Self {
        Self::generate(ADMIN_PREFIX, entropy)
    }

    fn generate(prefix: &str, entropy: &dyn Entropy) -> Self {
        let hex: String = entropy
            .secret_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Secret(format!("{prefix}{hex}"))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl SecretHash {
    /// Wraps a stored hash (64 lowercase hex digits).
    pub fn from_hex(hex: &str) -> Result<Self> {
        if hex.len() == 64
            && hex
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        {
            Ok(SecretHash(hex.to_owned()))
        } else {
            Err(Error::internal("a stored secret hash is malformed"))
        }
    }

    /// The hex text, for storage.
    pub fn as_hex(&self) -> &str {
        &self.0
    }

    /// Constant-time equality.
    pub fn matches(&self, other: &SecretHash) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }

    fn public_id(&self) -> String {
        self.0[..12].to_owned()
    }
}

impl Principal {
    /// Allows or refuses `action` on a container owned by `owner` (`None` for actions on no
    /// container, such as listing one's own or creating tokens). A user token may do what
    /// `allowed` (the configured `[auth] user_actions`) lets users do, to its own containers only.
    pub fn authorize(&self, action: Action, owner: Option<&UserId>, allowed: &UserActions) -> Result<()> {
        let user = match self {
            Principal::Admin => return Ok(()),
            Principal::User(user) => user,
        };
        match UserActions::rule(action) {
            Rule::Always => {}
            Rule::AdminOnly => {
                return Err(Error::new(
                    ErrorKind::Forbidden,
                    "this action needs the admin key; a user token can not do it",
                ));
            }
            Rule::Configured(name) if !allowed.0.contains(&name) => {
                return Err(Error::new(
                    ErrorKind::Forbidden,
                    format!(
                        "users may not {} here (the admin's [auth] user_actions leaves it out)",
                        name.verb()
                    ),
                ));
            }
            Rule::Configured(_) => {}
        }
        match owner {
            Some(owner) if owner != user => Err(Error::new(
                ErrorKind::Forbidden,
                "this container belongs to another user",
            )),
            _ => Ok(()),
        }
    }

    /// Whose containers a listing shows, given what the caller asked for: `None` for every user
    /// (admin only). A user token may name only its own user; the parameter never widens what a
    /// token reaches.
    pub fn listing_scope(&self, named: Option<&UserId>, all: bool) -> Result<Option<UserId>> {
        let forbidden = |message: &str, field| Error::new(ErrorKind::Forbidden, message).for_field(field);
        match self {
            Principal::Admin if all => Ok(None),
            Principal::Admin => Ok(named.cloned()),
            Principal::User(_) if all => Err(forbidden(
                "listing every user's containers needs the admin key",
                "all",
            )),
            Principal::User(own) => match named {
                Some(other) if other != own => Err(forbidden(
                    "a user token lists only its own user's containers",
                    "user_id",
                )),
                _ => Ok(Some(own.clone())),
            },
        }
    }

    /// The user whose containers a listing may show: `None` for the admin (all).
    pub fn scope(&self) -> Option<&UserId> {
        match self {
            Principal::Admin => None,
            Principal::User(user) => Some(user),
        }
    }
}

impl Auth {
    /// Authentication over a credential store. `env_admin_key` is `CONTAINER_ADMIN_KEY` when set;
    /// it must be at least 16 characters.
    pub fn new(
        store: Arc<dyn CredentialStore>,
        entropy: Arc<dyn Entropy>,
        clock: Arc<dyn Clock>,
        env_admin_key: Option<Secret>,
    ) -> Result<Self> {
        let env_admin = match env_admin_key {
            Some(key) if key.0.trim().len() < ENV_KEY_MIN => {
                return Err(Error::invalid(format!(
                    "CONTAINER_ADMIN_KEY is too short: use at least {ENV_KEY_MIN} characters (`cm generate-key` makes one)"
                )));
            }
            Some(key) => Some(Secret::new(key.0.trim()).hash()),
            None => None,
        };
        let ticket_key = Arc::new(entropy.secret_bytes());
        Ok(Auth {
            store,
            entropy,
            clock,
            env_admin,
            ticket_key,
            external: None,
        })
    }

    /// Also accepts the credentials `verifier` vouches for.
    pub fn with_external(mut self, verifier: Arc<dyn IdentityVerifier>) -> Self {
        self.external = Some(verifier);
        self
    }

    /// Where the admin key comes from.
    pub fn admin_key_source(&self) -> AdminKeySource {
        if self.env_admin.is_some() {
            AdminKeySource::Environment
        } else {
            AdminKeySource::Stored
        }
    }

    /// Makes sure an admin key exists: without `CONTAINER_ADMIN_KEY` and without a stored hash, a
    /// new key is generated, its hash stored, and the key returned to be shown once.
    pub async fn ensure_admin_key(&self) -> Result<Option<Secret>> {
        if self.env_admin.is_some() || self.store.admin_key_hash().await?.is_some() {
            return Ok(None);
        }
        let key = Secret::generate(ADMIN_PREFIX, self.entropy.as_ref());
        self.store.set_admin_key_hash(&key.hash()).await?;
        Ok(Some(key))
    }

    /// Replaces the stored admin key with a new one, returned to be shown once. Refused when the
    /// key comes from the environment (change the variable instead).
    pub async fn rotate_admin_key(&self) -> Result<Secret> {
        if self.env_admin.is_some() {
            return Err(Error::conflict(
                "the admin key comes from CONTAINER_ADMIN_KEY: rotate it by changing the variable and restarting",
            ));
        }
        let key = Secret::generate(ADMIN_PREFIX, self.entropy.as_ref());
        self.store.set_admin_key_hash(&key.hash()).await?;
        Ok(key)
    }

    /// Who holds `presented`: the admin, a user, or nobody (`Unauthorized`).
    pub async fn authenticate(&self, presented: &Secret) -> Result<Principal> {
        Ok(self.identify(presented).await?.0)
    }

    /// Who presented the credential, and, for another system's identity, when it ends.
    async fn identify(&self, presented: &Secret) -> Result<(Principal, Option<SystemTime>)> {
        let text = presented.0.trim();
        let unauthorized = || Error::new(ErrorKind::Unauthorized, "missing or wrong credentials");
        if text.is_empty() || text.len() > SECRET_MAX {
            return Err(unauthorized());
        }
        let hash = Secret::new(text).hash();
        let admin = match &self.env_admin {
            Some(env) => Some(env.clone()),
            None => self.store.admin_key_hash().await?,
        };
        if admin.is_some_and(|admin| admin.matches(&hash)) {
            return Ok((Principal::Admin, None));
        }
        match self.store.token_by_hash(&hash).await? {
            Some(record) if record.hash.matches(&hash) && self.is_current(&record) => {
                self.note_use(&record).await;
                return Ok((Principal::User(record.user_id), None));
            }
            Some(_) => return Err(unauthorized()),
            None => {}
        }
        let Some(external) = &self.external else {
            return Err(unauthorized());
        };
        match external.verify(&Secret::new(text)).await? {
            Some(identity) if identity.expires > self.clock.now() => {
                let principal = if identity.admin {
                    Principal::Admin
                } else {
                    Principal::User(identity.user)
                };
                Ok((principal, Some(identity.expires)))
            }
            _ => Err(unauthorized()),
        }
    }

    /// False once a token's expiry has passed.
    fn is_current(&self, record: &TokenRecord) -> bool {
        let now = self.clock.now();
        record
            .expires_at
            .as_deref()
            .is_none_or(|at| humantime::parse_rfc3339(at).is_ok_and(|expires| now < expires))
    }

    /// Records when a token was last used, at most once a minute (a write per request would
    /// make every read a write). A failure to record is logged, never fatal.
    async fn note_use(&self, record: &TokenRecord) {
        let now = self.clock.now();
        let recent = record
            .last_used_at
            .as_deref()
            .and_then(|at| humantime::parse_rfc3339(at).ok())
            .is_some_and(|last| {
                now.duration_since(last)
                    .is_ok_and(|d| d < Duration::from_secs(60))
            });
        if recent {
            return;
        }
        let at = humantime::format_rfc3339_seconds(now).to_string();
        if let Err(e) = self.store.touch_token(&record.id, &at).await {
            tracing::warn!(token = %record.id, error = ?e, "could not record a token's use");
        }
    }

    /// Signs in for the proxy: checks `presented` like [`Auth::authenticate`] and returns who it is
    /// with a ticket for the containers of `scope` only (the user whose URL the browser opens),
    /// valid for `lifetime` but never past the token's own expiry (the route cookie's value).
    pub async fn issue_ticket(
        &self,
        presented: &Secret,
        scope: &UserId,
        lifetime: Duration,
    ) -> Result<(Principal, Ticket)> {
        let (principal, external_expiry) = self.identify(presented).await?;
        let hash = Secret::new(presented.0.trim()).hash();
        let credential = match external_expiry {
            Some(_) => EXTERNAL_CREDENTIAL.to_owned(),
            None => hash.public_id(),
        };
        let subject = match &principal {
            Principal::Admin => "-".to_owned(),
            Principal::User(user) => user.to_string(),
        };
        let mut expires = unix_seconds(self.clock.now()).saturating_add(lifetime.as_secs());
        if let Some(ends) = external_expiry {
            expires = expires.min(unix_seconds(ends));
        }
        if let Principal::User(_) = &principal
            && let Some(record) = self.store.token_by_hash(&hash).await?
            && let Some(token_expiry) = record
                .expires_at
                .as_deref()
                .and_then(|at| humantime::parse_rfc3339(at).ok())
        {
            expires = expires.min(unix_seconds(token_expiry));
        }
        let payload = format!("{TICKET_VERSION}.{scope}.{subject}.{credential}.{expires}");
        let mac = hex(&hmac_sha256(self.ticket_key.as_ref(), payload.as_bytes()));
        Ok((principal, Ticket(format!("{payload}.{mac}"))))
    }

    /// Who a ticket is for, at the containers of `target`: `Unauthorized` when it is malformed,
    /// forged, expired, for another user's containers, or its credential was revoked or expired
    /// (a revoked token or a rotated admin key ends its tickets at once).
    pub async fn redeem_ticket(&self, ticket: &str, target: &UserId) -> Result<Principal> {
        let refused = || Error::new(ErrorKind::Unauthorized, "the sign-in expired or is not valid");
        if ticket.len() > TICKET_MAX {
            return Err(refused());
        }
        let Some((payload, mac)) = ticket.rsplit_once('.') else {
            return Err(refused());
        };
        let expected = hex(&hmac_sha256(self.ticket_key.as_ref(), payload.as_bytes()));
        if !bool::from(expected.as_bytes().ct_eq(mac.as_bytes())) {
            return Err(refused());
        }
        let fields: Vec<&str> = payload.split('.').collect();
        let [version, scope, subject, credential, expires] = fields.as_slice() else {
            return Err(refused());
        };
        let expires: u64 = expires.parse().map_err(|_| refused())?;
        if *version != TICKET_VERSION
            || expires <= unix_seconds(self.clock.now())
            || *scope != target.as_str()
        {
            return Err(refused());
        }
        // Another system's identity: its ticket ends with the credential (checked above).
        if *credential == EXTERNAL_CREDENTIAL && self.external.is_some() {
            return match *subject {
                "-" => Ok(Principal::Admin),
                user => Ok(Principal::User(UserId::parse(user).map_err(|_| refused())?)),
            };
        }
        if *subject == "-" {
            let admin = match &self.env_admin {
                Some(env) => Some(env.clone()),
                None => self.store.admin_key_hash().await?,
            };
            return match admin {
                Some(admin) if admin.public_id() == *credential => Ok(Principal::Admin),
                _ => Err(refused()),
            };
        }
        let user = UserId::parse(subject).map_err(|_| refused())?;
        match self.store.token_by_id(credential).await? {
            Some(record) if record.user_id == user && self.is_current(&record) => Ok(Principal::User(user)),
            _ => Err(refused()),
        }
    }

    /// A new token for `user` that never expires, returned to be shown once.
    pub async fn create_user_token(&self, user: &UserId) -> Result<(TokenRecord, Secret)> {
        self.create_expiring_token(user, None).await
    }

    /// A new token for `user` that stops working after `lifetime` (`None`: never), returned to
    /// be shown once.
    pub async fn create_expiring_token(
        &self,
        user: &UserId,
        lifetime: Option<Duration>,
    ) -> Result<(TokenRecord, Secret)> {
        if lifetime.is_some_and(|l| l < Duration::from_secs(60) || l > Duration::from_secs(10 * 365 * 86400))
        {
            return Err(Error::invalid("a token lives 1 minute to 10 years").for_field("expires_in"));
        }
        let token = Secret::generate(TOKEN_PREFIX, self.entropy.as_ref());
        let hash = token.hash();
        let now = self.clock.now();
        let record = TokenRecord {
            id: hash.public_id(),
            user_id: user.clone(),
            hash,
            created_at: humantime::format_rfc3339_seconds(now).to_string(),
            expires_at: lifetime.map(|l| humantime::format_rfc3339_seconds(now + l).to_string()),
            last_used_at: None,
        };
        self.store.insert_token(&record).await?;
        Ok((record, token))
    }

    /// Revokes every token of a user; `NotFound` when there was none.
    pub async fn revoke_user_tokens(&self, user: &UserId) -> Result<usize> {
        match self.store.revoke_user_tokens(user).await? {
            0 => Err(Error::not_found(format!("user {user} has no tokens"))),
            n => Ok(n),
        }
    }

    /// Revokes one token by its public id; `NotFound` when there is none.
    pub async fn revoke_token(&self, id: &str) -> Result<()> {
        if self.store.revoke_token(id.trim()).await? {
            Ok(())
        } else {
            Err(Error::not_found(format!(
                "no token with id {}",
                crate::names::quote(id)
            )))
        }
    }

    /// Every token (without secrets).
    pub async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        self.store.tokens().await
    }
}

fn unix_seconds(time: std::time::SystemTime) -> u64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// HMAC-SHA256 (RFC 2104) over SHA-256, for keys of at most one block (ours are 32 bytes).
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    let outer = Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize();
    let mut out = [0u8; 32];
    out.copy_from_slice(&outer);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2 of RFC 4231.
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    fn user(name: &str) -> UserId {
        UserId::parse(name).unwrap()
    }

    #[test]
    fn admins_may_do_everything_users_only_their_own_user_actions() {
        let all = UserActions::default();
        let alice = Principal::User(user("alice"));
        assert!(
            Principal::Admin
                .authorize(Action::PurgeData, Some(&user("bob")), &UserActions::only([]))
                .is_ok()
        );
        assert!(alice.authorize(Action::Exec, Some(&user("alice")), &all).is_ok());
        assert!(
            alice
                .authorize(Action::DeleteContainer, Some(&user("alice")), &all)
                .is_ok()
        );
        assert!(alice.authorize(Action::ReadContainer, None, &all).is_ok());
        let other = alice
            .authorize(Action::Exec, Some(&user("bob")), &all)
            .unwrap_err();
        assert_eq!(other.kind(), ErrorKind::Forbidden);
        for admin_only in [
            Action::CreateContainer,
            Action::UpdateContainer,
            Action::PurgeData,
            Action::Administer,
        ] {
            let err = alice
                .authorize(admin_only, Some(&user("alice")), &all)
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Forbidden, "{admin_only:?}");
        }
    }

    #[test]
    fn the_configured_user_actions_decide_what_a_token_may_do() {
        let alice = Principal::User(user("alice"));
        let logs_only = UserActions::only([UserAction::Logs]);
        assert!(
            alice
                .authorize(Action::ReadLogs, Some(&user("alice")), &logs_only)
                .is_ok()
        );
        let stop = alice
            .authorize(Action::StopContainer, Some(&user("alice")), &logs_only)
            .unwrap_err();
        assert_eq!(stop.kind(), ErrorKind::Forbidden);
        assert!(stop.message().contains("stop containers"), "{}", stop.message());
        // Reading and reaching one's apps need no configuration.
        let none = UserActions::only([]);
        assert!(
            alice
                .authorize(Action::ReadContainer, Some(&user("alice")), &none)
                .is_ok()
        );
        assert!(
            alice
                .authorize(Action::ReachApp, Some(&user("alice")), &none)
                .is_ok()
        );
        assert_eq!(UserAction::parse("add_ssh_key").unwrap(), UserAction::AddSshKey);
        let unknown = UserAction::parse("purge").unwrap_err();
        assert!(
            unknown.message().contains("remove_ssh_key"),
            "{}",
            unknown.message()
        );
    }

    #[test]
    fn listings_of_a_token_never_widen() {
        let alice = Principal::User(user("alice"));
        assert_eq!(alice.listing_scope(None, false).unwrap(), Some(user("alice")));
        assert_eq!(
            alice.listing_scope(Some(&user("alice")), false).unwrap(),
            Some(user("alice"))
        );
        assert_eq!(
            alice.listing_scope(Some(&user("bob")), false).unwrap_err().kind(),
            ErrorKind::Forbidden
        );
        assert_eq!(
            alice.listing_scope(None, true).unwrap_err().kind(),
            ErrorKind::Forbidden
        );
        assert_eq!(Principal::Admin.listing_scope(None, true).unwrap(), None);
        assert_eq!(
            Principal::Admin.listing_scope(Some(&user("bob")), false).unwrap(),
            Some(user("bob"))
        );
    }

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("cmk_supersecret");
        assert_eq!(format!("{secret:?}"), "Secret([redacted])");
        assert_eq!(secret.hash().as_hex().len(), 64);
        assert!(secret.hash().matches(&Secret::new("cmk_supersecret").hash()));
        assert!(!secret.hash().matches(&Secret::new("cmk_supersecreT").hash()));
    }
}
