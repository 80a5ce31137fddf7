//! The TBEF.DB key layout. Only this module spells the key strings.

use cm_core::{ContainerName, ContainerSpec, Error, Result, UserId};
use rusqlite::{Connection, OptionalExtension, params};

use crate::{leased_ports, sql_error};

const SPEC_PREFIX: &str = "CONTAINER::";
const USER_PREFIX: &str = "CONTAINER_USER::";
const NAME_PREFIX: &str = "CONTAINER_NAME::";
const PORT_POOL: &str = "CONTAINER_PORT_POOL";
/// This installation's id; the original's TBEF.DB keys never use it.
const INSTALLATION: &str = "CM_INSTALLATION";

/// Reads and writes the compatibility keys.
pub(crate) struct Keys;

impl Keys {
    fn get(connection: &Connection, key: &str) -> Result<Option<String>> {
        connection
            .query_row("SELECT value FROM kv WHERE key = ?1", [key], |row| row.get(0))
            .optional()
            .map_err(sql_error)
    }

    fn set(connection: &Connection, key: &str, value: &str) -> Result<()> {
        connection
            .execute(
                "INSERT INTO kv (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map_err(sql_error)?;
        Ok(())
    }

    fn delete(connection: &Connection, key: &str) -> Result<()> {
        connection
            .execute("DELETE FROM kv WHERE key = ?1", [key])
            .map_err(sql_error)?;
        Ok(())
    }

    /// This installation's id, drawn (16 hex digits) the first time it is asked for.
    pub(crate) fn installation(connection: &Connection) -> Result<String> {
        connection
            .execute(
                "INSERT OR IGNORE INTO kv (key, value) VALUES (?1, lower(hex(randomblob(8))))",
                [INSTALLATION],
            )
            .map_err(sql_error)?;
        Self::get(connection, INSTALLATION)?
            .ok_or_else(|| Error::internal("the installation id was not kept"))
    }

    /// The id recorded for a container name.
    pub(crate) fn id_of_name(connection: &Connection, name: &ContainerName) -> Result<Option<String>> {
        Self::get(connection, &format!("{NAME_PREFIX}{name}"))
    }

    /// The ids listed for a user.
    pub(crate) fn user_ids(connection: &Connection, user: &UserId) -> Result<Vec<String>> {
        match Self::get(connection, &format!("{USER_PREFIX}{user}"))? {
            Some(json) => serde_json::from_str(&json)
                .map_err(|e| Error::internal(format!("corrupt {USER_PREFIX}{user}")).with_source(e)),
            None => Ok(Vec::new()),
        }
    }

    fn set_user_ids(connection: &Connection, user: &UserId, ids: &[String]) -> Result<()> {
        let key = format!("{USER_PREFIX}{user}");
        if ids.is_empty() {
            return Self::delete(connection, &key);
        }
        let json = serde_json::to_string(ids).map_err(|e| Error::internal("encoding ids").with_source(e))?;
        Self::set(connection, &key, &json)
    }

    /// A spec by id.
    pub(crate) fn get_spec(connection: &Connection, id: &str) -> Result<Option<ContainerSpec>> {
        Self::get(connection, &format!("{SPEC_PREFIX}{id}"))?
            .map(|json| decode_spec(id, &json))
            .transpose()
    }

    /// Every spec, by name.
    pub(crate) fn all_specs(connection: &Connection) -> Result<Vec<ContainerSpec>> {
        // A range scan on the primary key: every key from "CONTAINER::" up to (excluding) "CONTAINER:;".
        let mut statement = connection
            .prepare("SELECT key, value FROM kv WHERE key >= ?1 AND key < ?2")
            .map_err(sql_error)?;
        let rows = statement
            .query_map(params![SPEC_PREFIX, "CONTAINER:;"], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(sql_error)?;
        let mut specs = Vec::new();
        for row in rows {
            let (key, json) = row.map_err(sql_error)?;
            specs.push(decode_spec(&key[SPEC_PREFIX.len()..], &json)?);
        }
        specs.sort_by(|a, b| a.container_name.cmp(&b.container_name));
        Ok(specs)
    }

    /// Writes a spec, its name index and its user's id list.
    pub(crate) fn put_spec(connection: &Connection, spec: &ContainerSpec) -> Result<()> {
        let json =
            serde_json::to_string(spec).map_err(|e| Error::internal("encoding a spec").with_source(e))?;
        Self::set(connection, &format!("{SPEC_PREFIX}{}", spec.container_id), &json)?;
        Self::set(
            connection,
            &format!("{NAME_PREFIX}{}", spec.container_name),
            &spec.container_id,
        )?;
        let mut ids = Self::user_ids(connection, &spec.user_id)?;
        if !ids.contains(&spec.container_id) {
            ids.push(spec.container_id.clone());
            Self::set_user_ids(connection, &spec.user_id, &ids)?;
        }
        Ok(())
    }

    /// Removes a spec, its name index and its entry in the user's list.
    pub(crate) fn delete_spec(
        connection: &Connection,
        id: &str,
        name: &ContainerName,
        user: &UserId,
    ) -> Result<()> {
        Self::delete(connection, &format!("{SPEC_PREFIX}{id}"))?;
        Self::delete(connection, &format!("{NAME_PREFIX}{name}"))?;
        let mut ids = Self::user_ids(connection, user)?;
        ids.retain(|i| i != id);
        Self::set_user_ids(connection, user, &ids)
    }

    /// Rewrites `CONTAINER_PORT_POOL` from the lease table.
    pub(crate) fn write_port_pool(connection: &Connection) -> Result<()> {
        let ports: Vec<u16> = leased_ports(connection)?.into_iter().collect();
        let json =
            serde_json::to_string(&ports).map_err(|e| Error::internal("encoding ports").with_source(e))?;
        Self::set(connection, PORT_POOL, &json)
    }
}

fn decode_spec(id: &str, json: &str) -> Result<ContainerSpec> {
    serde_json::from_str(json)
        .map_err(|e| Error::internal(format!("corrupt record {SPEC_PREFIX}{id}")).with_source(e))
}
