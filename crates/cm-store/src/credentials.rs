//! Credentials: the admin key hash (kv key `ADMIN_KEY_HASH`) and user tokens (table `tokens`).
//! Only hashes are stored.

use async_trait::async_trait;
use cm_core::{CredentialStore, Result, SecretHash, TokenRecord, UserId};
use rusqlite::{OptionalExtension, params};

use crate::{SqliteStore, sql_error};

const ADMIN_KEY_HASH: &str = "ADMIN_KEY_HASH";

/// The columns of a token, in the order [`token_of`] reads them.
const TOKEN_COLUMNS: &str = "id, user_id, hash, created_at, expires_at, last_used_at";

type TokenRow = (String, String, String, String, Option<String>, Option<String>);

fn token_of(row: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
    ))
}

fn record((id, user, hash, created_at, expires_at, last_used_at): TokenRow) -> Result<TokenRecord> {
    Ok(TokenRecord {
        id,
        user_id: UserId::parse(&user)?,
        hash: SecretHash::from_hex(&hash)?,
        created_at,
        expires_at,
        last_used_at,
    })
}

impl SqliteStore {
    /// The token whose `column` (`id` or `hash`, both unique) is `value`.
    async fn token_where(&self, column: &'static str, value: &str) -> Result<Option<TokenRecord>> {
        let value = value.to_owned();
        self.run(move |connection| {
            connection
                .query_row(
                    &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE {column} = ?1"),
                    [value],
                    token_of,
                )
                .optional()
                .map_err(sql_error)?
                .map(record)
                .transpose()
        })
        .await
    }
}

#[async_trait]
impl CredentialStore for SqliteStore {
    async fn admin_key_hash(&self) -> Result<Option<SecretHash>> {
        self.run(|connection| {
            let hex: Option<String> = connection
                .query_row("SELECT value FROM kv WHERE key = ?1", [ADMIN_KEY_HASH], |row| {
                    row.get(0)
                })
                .optional()
                .map_err(sql_error)?;
            hex.map(|h| SecretHash::from_hex(&h)).transpose()
        })
        .await
    }

    async fn set_admin_key_hash(&self, hash: &SecretHash) -> Result<()> {
        let hex = hash.as_hex().to_owned();
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO kv (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![ADMIN_KEY_HASH, hex],
            )
            .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn insert_token(&self, token: &TokenRecord) -> Result<()> {
        let token = token.clone();
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO tokens (id, user_id, hash, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    token.id,
                    token.user_id.as_str(),
                    token.hash.as_hex(),
                    token.created_at,
                    token.expires_at
                ],
            )
            .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn token_by_hash(&self, hash: &SecretHash) -> Result<Option<TokenRecord>> {
        self.token_where("hash", hash.as_hex()).await
    }

    async fn token_by_id(&self, id: &str) -> Result<Option<TokenRecord>> {
        self.token_where("id", id).await
    }

    async fn revoke_user_tokens(&self, user: &UserId) -> Result<usize> {
        let user = user.clone();
        self.write(move |tx| {
            tx.execute("DELETE FROM tokens WHERE user_id = ?1", [user.as_str()])
                .map_err(sql_error)
        })
        .await
    }

    async fn revoke_token(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        self.write(move |tx| {
            let removed = tx
                .execute("DELETE FROM tokens WHERE id = ?1", [id])
                .map_err(sql_error)?;
            Ok(removed > 0)
        })
        .await
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        self.run(|connection| {
            let mut statement = connection
                .prepare(&format!(
                    "SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at, id"
                ))
                .map_err(sql_error)?;
            let rows = statement.query_map([], token_of).map_err(sql_error)?;
            let mut tokens = Vec::new();
            for row in rows {
                tokens.push(record(row.map_err(sql_error)?)?);
            }
            Ok(tokens)
        })
        .await
    }

    async fn touch_token(&self, id: &str, at: &str) -> Result<()> {
        let (id, at) = (id.to_owned(), at.to_owned());
        self.write(move |tx| {
            tx.execute(
                "UPDATE tokens SET last_used_at = ?2 WHERE id = ?1",
                params![id, at],
            )
            .map_err(sql_error)?;
            Ok(())
        })
        .await
    }
}
