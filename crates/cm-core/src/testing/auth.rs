//! Credentials in memory and predictable entropy, for `Auth` in tests.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::auth::{Auth, CredentialStore, Entropy, SecretHash, TokenRecord};
use crate::error::Result;
use crate::names::UserId;

use super::host::FixedClock;

/// In-memory credentials.
#[derive(Default)]
pub struct MemoryCredentials {
    admin: Mutex<Option<SecretHash>>,
    tokens: Mutex<Vec<TokenRecord>>,
}

#[async_trait]
impl CredentialStore for MemoryCredentials {
    async fn admin_key_hash(&self) -> Result<Option<SecretHash>> {
        Ok(self.admin.lock().unwrap().clone())
    }

    async fn set_admin_key_hash(&self, hash: &SecretHash) -> Result<()> {
        *self.admin.lock().unwrap() = Some(hash.clone());
        Ok(())
    }

    async fn insert_token(&self, record: &TokenRecord) -> Result<()> {
        self.tokens.lock().unwrap().push(record.clone());
        Ok(())
    }

    async fn token_by_hash(&self, hash: &SecretHash) -> Result<Option<TokenRecord>> {
        Ok(self
            .tokens
            .lock()
            .unwrap()
            .iter()
            .find(|t| &t.hash == hash)
            .cloned())
    }

    async fn revoke_user_tokens(&self, user: &UserId) -> Result<usize> {
        let mut tokens = self.tokens.lock().unwrap();
        let before = tokens.len();
        tokens.retain(|t| &t.user_id != user);
        Ok(before - tokens.len())
    }

    async fn revoke_token(&self, id: &str) -> Result<bool> {
        let mut tokens = self.tokens.lock().unwrap();
        let before = tokens.len();
        tokens.retain(|t| t.id != id);
        Ok(tokens.len() != before)
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        Ok(self.tokens.lock().unwrap().clone())
    }

    async fn touch_token(&self, id: &str, at: &str) -> Result<()> {
        for token in self.tokens.lock().unwrap().iter_mut().filter(|t| t.id == id) {
            token.last_used_at = Some(at.to_owned());
        }
        Ok(())
    }
}

/// Deterministic "random" bytes: a counter, so every secret differs.
#[derive(Default)]
pub struct CountingEntropy(Mutex<u8>);

impl Entropy for CountingEntropy {
    fn secret_bytes(&self) -> [u8; 32] {
        let mut counter = self.0.lock().unwrap();
        *counter = counter.wrapping_add(1);
        [*counter; 32]
    }
}

/// An `Auth` over in-memory credentials, with `env_admin_key` as `CONTAINER_ADMIN_KEY`.
pub fn fake_auth(env_admin_key: Option<&str>) -> Auth {
    Auth::new(
        Arc::new(MemoryCredentials::default()),
        Arc::new(CountingEntropy::default()),
        Arc::new(FixedClock::default()),
        env_admin_key.map(crate::auth::Secret::new),
    )
    .unwrap()
}
