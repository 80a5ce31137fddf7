//! Request parameters, from the query string and from a JSON (or form) body, as the original API
//! took them. Both sources are merged into one map, which a parameter set ([`ParamSet`], a serde
//! `Deserialize` struct) is read from through the deserializer here: it accepts exactly the
//! struct's fields (and the set's aliases), reads values as flexibly as the original did (`"1"`
//! is a number, `"true"` a boolean, a repeated query parameter a list) and names the parameter
//! in every error.
//!
//! The rule: a parameter that is missing, unknown, given twice or of a type that can not be read
//! is a `400 bad_request`; a value that reads fine but is refused (a bad user id, a timeout out
//! of range) is a `422 invalid_input`.

use std::collections::BTreeMap;
use std::fmt;

use actix_web::web;
use serde::de::value::{SeqDeserializer, StringDeserializer};
use serde::de::{self, DeserializeOwned, Deserializer, IntoDeserializer, MapAccess, Visitor};
use serde_json::Value;

use crate::error::ApiError;

/// The parameter carrying credentials in the original API (discouraged: query strings end up in
/// logs and browser histories; use `Authorization: Bearer`).
pub const ADMIN_KEY_PARAM: &str = "admin_key";

/// The merged parameters of one request. A parameter set reads them with [`Params::parse`]; the
/// accessors below are what its deserializer reads each value with, and hold every message.
#[derive(Debug, Default, Clone)]
pub struct Params {
    values: BTreeMap<String, Value>,
}

/// A parameter set an endpoint reads: a struct deriving `Deserialize`, whose fields are the
/// parameters it accepts (besides `admin_key`); any other name is refused.
///
/// Field types read flexibly: `String`, `Option<String>`, `Option<bool>`, `Option<u64>`,
/// `Vec<String>` (with `#[serde(default)]`), [`CommandParam`], and with `deserialize_with`
/// [`assignments`] and [`text_or_number`]. `null` counts as absent.
pub trait ParamSet: DeserializeOwned {
    /// The original's names of parameters: `(name, original)`; either is accepted, not both.
    const ALIASES: &'static [(&'static str, &'static str)] = &[];
    /// Fields accepted (and ignored) for compatibility but not listed when an unknown name is
    /// refused.
    const UNLISTED: &'static [&'static str] = &[];

    /// Checks across the parameters, or of a value, once they are read.
    fn check(self) -> Result<Self, ApiError> {
        Ok(self)
    }
}

impl Params {
    /// Merges the query string and the body. The body is JSON (an object) unless the content type
    /// says it is a form; a parameter given in both places is refused.
    pub fn from_parts(query: &str, content_type: Option<&str>, body: &[u8]) -> Result<Self, ApiError> {
        let mut params = Params::default();
        for (name, value) in parse_urlencoded(query, "query string")? {
            params.push_text(name, value);
        }
        let body_is_blank = body.iter().all(u8::is_ascii_whitespace);
        if body_is_blank {
            return Ok(params);
        }
        // `curl -d '{...}'` sends JSON labelled as a form: a body that starts like an object is JSON.
        let looks_like_json = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        let is_form = !looks_like_json
            && content_type.is_some_and(|t| t.trim().starts_with("application/x-www-form-urlencoded"));
        let body_values: Vec<(String, Value)> = if is_form {
            let text = std::str::from_utf8(body)
                .map_err(|_| ApiError::bad_request("the form body is not valid UTF-8"))?;
            let mut merged = Params::default();
            for (name, value) in parse_urlencoded(text, "form body")? {
                merged.push_text(name, value);
            }
            merged.values.into_iter().collect()
        } else {
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(map)) => map.into_iter().collect(),
                Ok(_) => {
                    return Err(ApiError::bad_request(
                        "the body must be a JSON object of parameters, such as {\"container_id\": \"abc123\"}",
                    ));
                }
                Err(e) => {
                    return Err(ApiError::bad_request(format!("the body is not valid JSON: {e}")));
                }
            }
        };
        for (name, value) in body_values {
            if params.values.contains_key(&name) {
                return Err(ApiError::bad_request(format!(
                    "parameter {name} is given both in the query string and in the body"
                ))
                .for_field(name));
            }
            params.values.insert(name, value);
        }
        Ok(params)
    }

    /// Removes and returns the `admin_key` parameter, if given.
    /// The parameters as one JSON object (for the audit trail, which removes secrets).
    pub fn to_json(&self) -> Value {
        Value::Object(self.values.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    pub fn take_admin_key(&mut self) -> Result<Option<String>, ApiError> {
        self.string(ADMIN_KEY_PARAM)
    }

    /// Removes and returns the `envelope` parameter (the answer's shape), if given.
    pub fn take_envelope(&mut self) -> Result<Option<String>, ApiError> {
        self.string(crate::toolbox::ENVELOPE_PARAM)
    }

    /// Reads the endpoint's parameter set and refuses any parameter it does not know. (A copy
    /// is read: the call stays whole for what its handler does next.)
    pub fn parse<T: ParamSet>(&self) -> Result<T, ApiError> {
        let mut params = self.clone();
        for (name, original) in T::ALIASES {
            params.alias(name, original)?;
        }
        let originals: Vec<&'static str> = T::ALIASES.iter().map(|(_, original)| *original).collect();
        let value = T::deserialize(ParamsDeserializer {
            params,
            unlisted: T::UNLISTED,
            originals: &originals,
        })
        .map_err(|ParamError(e)| e)?;
        value.check()
    }

    /// Accepts the original's name `original` for parameter `name`; giving both is refused.
    fn alias(&mut self, name: &str, original: &str) -> Result<(), ApiError> {
        let Some(value) = self.values.remove(original) else {
            return Ok(());
        };
        if self.values.contains_key(name) {
            return Err(ApiError::bad_request(format!(
                "give {name} or {original} (the same parameter under the original's name), not both"
            ))
            .for_field(original.to_owned()));
        }
        self.values.insert(name.to_owned(), value);
        Ok(())
    }

    /// A text parameter; `null` counts as absent.
    fn string(&mut self, name: &str) -> Result<Option<String>, ApiError> {
        match self.values.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(Value::Array(_)) => Err(given_twice_or_list(name)),
            Some(_) => {
                Err(ApiError::bad_request(format!("parameter {name} must be a string")).for_field(name))
            }
        }
    }

    /// A text parameter that may also come as a JSON number (`"cpus": 0.5`).
    fn text_or_number(&mut self, name: &str) -> Result<Option<String>, ApiError> {
        if let Some(Value::Number(n)) = self.values.get(name) {
            let text = n.to_string();
            self.values.remove(name);
            return Ok(Some(text));
        }
        self.string(name)
    }

    /// A boolean: JSON `true`/`false`, or the text `true`/`false`/`1`/`0`.
    fn bool(&mut self, name: &str) -> Result<Option<bool>, ApiError> {
        let wrong =
            || ApiError::bad_request(format!("parameter {name} must be true or false")).for_field(name);
        match self.values.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(Value::String(text)) => match text.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(Some(true)),
                "false" | "0" => Ok(Some(false)),
                _ => Err(wrong()),
            },
            Some(Value::Number(n)) => match n.as_u64() {
                Some(1) => Ok(Some(true)),
                Some(0) => Ok(Some(false)),
                _ => Err(wrong()),
            },
            Some(Value::Array(_)) => Err(given_twice_or_list(name)),
            Some(_) => Err(wrong()),
        }
    }

    /// A non-negative integer: a JSON number or its text.
    fn uint(&mut self, name: &str) -> Result<Option<u64>, ApiError> {
        let wrong = || {
            ApiError::bad_request(format!("parameter {name} must be a non-negative integer")).for_field(name)
        };
        match self.values.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(wrong),
            Some(Value::String(text)) => text.trim().parse::<u64>().map(Some).map_err(|_| wrong()),
            Some(Value::Array(_)) => Err(given_twice_or_list(name)),
            Some(_) => Err(wrong()),
        }
    }

    /// A list of texts: a JSON array of strings, a single string, or a repeated query parameter.
    fn strings(&mut self, name: &str) -> Result<Vec<String>, ApiError> {
        let wrong = || {
            ApiError::bad_request(format!("parameter {name} must be a string or a list of strings"))
                .for_field(name)
        };
        match self.values.remove(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(text)) => Ok(vec![text]),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(text) => Ok(text),
                    _ => Err(wrong()),
                })
                .collect(),
            Some(_) => Err(wrong()),
        }
    }

    /// Environment variables: a JSON object of strings, or `KEY=VALUE` texts (one or a list).
    fn assignments(&mut self, name: &str) -> Result<Vec<String>, ApiError> {
        if let Some(Value::Object(map)) = self.values.get(name) {
            let mut lines = Vec::with_capacity(map.len());
            for (key, value) in map {
                match value {
                    Value::String(text) => lines.push(format!("{key}={text}")),
                    _ => {
                        return Err(ApiError::bad_request(format!(
                            "parameter {name} must map names to string values"
                        ))
                        .for_field(name));
                    }
                }
            }
            self.values.remove(name);
            return Ok(lines);
        }
        self.strings(name)
    }

    /// A command: a JSON array of words, or one line split like a shell splits words.
    fn command(&mut self, name: &str) -> Result<Option<CommandParam>, ApiError> {
        match self.values.get(name) {
            Some(Value::Array(_)) => Ok(Some(CommandParam::Words(self.strings(name)?))),
            _ => Ok(self.string(name)?.map(CommandParam::Line)),
        }
    }

    /// Refuses what is left: parameters the endpoint does not know.
    fn finish(self, accepted: &[&str]) -> Result<(), ApiError> {
        refuse_unknown(self.values.keys().map(String::as_str), accepted)
    }

    fn push_text(&mut self, name: String, value: String) {
        match self.values.get_mut(&name) {
            None => {
                self.values.insert(name, Value::String(value));
            }
            Some(Value::Array(items)) => items.push(Value::String(value)),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, Value::String(value)]);
            }
        }
    }
}

/// The refusal of unknown parameters: every unknown name, and what the endpoint accepts.
fn refuse_unknown<'a>(mut unknown: impl Iterator<Item = &'a str>, accepted: &[&str]) -> Result<(), ApiError> {
    let Some(first) = unknown.next() else {
        return Ok(());
    };
    let mut names = vec![first];
    names.extend(unknown);
    let accepts = if accepted.is_empty() {
        "no parameters".to_owned()
    } else {
        accepted.join(", ")
    };
    Err(ApiError::bad_request(format!(
        "unknown parameter {}: this endpoint accepts {accepts}",
        names.join(", ")
    ))
    .for_field(first.to_owned()))
}

/// The error of reading parameters with serde: the API's answer itself, so that every message is
/// the one the accessors of [`Params`] write.
#[derive(Debug)]
struct ParamError(ApiError);

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for ParamError {}

impl de::Error for ParamError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        // Only a parameter set's own `Deserialize` would say something here (the accessors answer
        // everything else): a bug, not the caller's fault.
        ParamError(ApiError::internal(format!(
            "the parameters could not be read: {msg}"
        )))
    }

    fn missing_field(field: &'static str) -> Self {
        ParamError(ApiError::bad_request(format!("parameter {field} is required")).for_field(field))
    }
}

impl From<ApiError> for ParamError {
    fn from(e: ApiError) -> Self {
        ParamError(e)
    }
}

/// Reads a [`ParamSet`] from the merged parameters: the struct's fields in its order, each value
/// through the accessor of its type; then refuses what is left (unknown names).
struct ParamsDeserializer<'a> {
    params: Params,
    unlisted: &'static [&'static str],
    originals: &'a [&'static str],
}

impl ParamsDeserializer<'_> {
    /// Refuses the names left over: `accepted` (the struct's fields) without the unlisted ones,
    /// then the originals' names.
    fn finish(self, fields: &[&str]) -> Result<(), ParamError> {
        let mut accepted: Vec<&str> = fields
            .iter()
            .copied()
            .filter(|f| !self.unlisted.contains(f))
            .collect();
        accepted.extend(self.originals.iter().copied());
        Ok(self.params.finish(&accepted)?)
    }
}

impl<'de> Deserializer<'de> for ParamsDeserializer<'_> {
    type Error = ParamError;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, ParamError> {
        Err(ParamError(ApiError::internal("a parameter set must be a struct")))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, ParamError> {
        self.finish(&[])?;
        visitor.visit_unit()
    }

    fn deserialize_struct<V: Visitor<'de>>(
        mut self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ParamError> {
        let value = visitor.visit_map(Fields {
            params: &mut self.params,
            fields: fields.iter(),
            current: None,
        })?;
        self.finish(fields)?;
        Ok(value)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

/// Every field of the struct, given or not, in the struct's order: each is read (or found
/// missing) in turn, so the first problem in that order is the one answered, as when each
/// parameter was read by hand.
struct Fields<'a> {
    params: &'a mut Params,
    fields: std::slice::Iter<'static, &'static str>,
    current: Option<&'static str>,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = ParamError;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ParamError> {
        let Some(field) = self.fields.next() else {
            return Ok(None);
        };
        if self.params.values.get(*field) == Some(&Value::Null) {
            // `null` counts as absent.
            self.params.values.remove(*field);
        }
        self.current = Some(field);
        seed.deserialize(field.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, ParamError> {
        let name = self
            .current
            .take()
            .ok_or_else(|| ParamError(ApiError::internal("a parameter value was read before its name")))?;
        seed.deserialize(One {
            params: self.params,
            name,
        })
    }
}

/// The marker of [`assignments`] for the deserializer.
const ASSIGNMENTS: &str = "cm_api::params::assignments";
/// The marker of [`text_or_number`] for the deserializer.
const TEXT_OR_NUMBER: &str = "cm_api::params::text_or_number";
/// The marker of [`CommandParam`] for the deserializer.
const COMMAND: &str = "cm_api::params::command";

/// One parameter's value, read (and removed) through the accessor its type asks for; an absent
/// one is `None`, an empty list, or missing (for a type that is not optional).
struct One<'a> {
    params: &'a mut Params,
    name: &'static str,
}

impl<'de> Deserializer<'de> for One<'_> {
    type Error = ParamError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamError> {
        self.deserialize_string(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamError> {
        if self.params.values.contains_key(self.name) {
            visitor.visit_some(self)
        } else {
            visitor.visit_none()
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamError> {
        match self.params.bool(self.name)? {
            Some(b) => visitor.visit_bool(b),
            None => Err(de::Error::missing_field(self.name)),
        }
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamError> {
        match self.params.uint(self.name)? {
            Some(n) => visitor.visit_u64(n),
            None => Err(de::Error::missing_field(self.name)),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamError> {
        match self.params.string(self.name)? {
            Some(text) => visitor.visit_string(text),
            None => Err(de::Error::missing_field(self.name)),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamError> {
        self.deserialize_string(visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamError> {
        let items = self.params.strings(self.name)?;
        visitor.visit_seq(SeqDeserializer::new(items.into_iter()))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        marker: &'static str,
        visitor: V,
    ) -> Result<V::Value, ParamError> {
        match marker {
            ASSIGNMENTS => {
                let lines = self.params.assignments(self.name)?;
                visitor.visit_newtype_struct(SeqDeserializer::<_, ParamError>::new(lines.into_iter()))
            }
            TEXT_OR_NUMBER => match self.params.text_or_number(self.name)? {
                Some(text) => visitor.visit_newtype_struct(StringDeserializer::<ParamError>::new(text)),
                None => visitor.visit_none(),
            },
            COMMAND => match self.params.command(self.name)? {
                Some(CommandParam::Words(words)) => {
                    visitor.visit_newtype_struct(SeqDeserializer::<_, ParamError>::new(words.into_iter()))
                }
                Some(CommandParam::Line(line)) => {
                    visitor.visit_newtype_struct(StringDeserializer::<ParamError>::new(line))
                }
                None => Err(de::Error::missing_field(self.name)),
            },
            _ => visitor.visit_newtype_struct(self),
        }
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u32 u128 f32 f64 char bytes byte_buf unit unit_struct
        tuple tuple_struct map struct enum identifier ignored_any
    }
}

/// Environment variables (`deserialize_with`): a JSON object of strings, or `KEY=VALUE` texts
/// (one or a list); as `KEY=VALUE` lines.
pub fn assignments<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    struct Lines;
    impl<'de> Visitor<'de> for Lines {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("KEY=VALUE texts or an object of names to values")
        }
        fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Vec<String>, D::Error> {
            serde::Deserialize::deserialize(d)
        }
    }
    deserializer.deserialize_newtype_struct(ASSIGNMENTS, Lines)
}

/// An optional text that may also come as a JSON number (`deserialize_with`, with
/// `#[serde(default)]` for other deserializers): `"cpus": 0.5`.
pub fn text_or_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    struct Text;
    impl<'de> Visitor<'de> for Text {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a text or a number")
        }
        fn visit_none<E: de::Error>(self) -> Result<Option<String>, E> {
            Ok(None)
        }
        fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
            serde::Deserialize::deserialize(d).map(Some)
        }
    }
    deserializer.deserialize_newtype_struct(TEXT_OR_NUMBER, Text)
}

impl<'de> serde::Deserialize<'de> for CommandParam {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Words;
        impl<'de> Visitor<'de> for Words {
            type Value = CommandParam;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("one line or a list of words")
            }
            fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<CommandParam, D::Error> {
                d.deserialize_any(self)
            }
            fn visit_string<E: de::Error>(self, line: String) -> Result<CommandParam, E> {
                Ok(CommandParam::Line(line))
            }
            fn visit_str<E: de::Error>(self, line: &str) -> Result<CommandParam, E> {
                Ok(CommandParam::Line(line.to_owned()))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<CommandParam, A::Error> {
                let mut words = Vec::new();
                while let Some(word) = seq.next_element::<String>()? {
                    words.push(word);
                }
                Ok(CommandParam::Words(words))
            }
        }
        deserializer.deserialize_newtype_struct(COMMAND, Words)
    }
}

/// A command as given: words, or a line to split.
#[derive(Debug, Clone)]
pub enum CommandParam {
    /// A JSON array of words, used as they are.
    Words(Vec<String>),
    /// One line, split like a shell splits words (but never run by a host shell).
    Line(String),
}

fn parse_urlencoded(text: &str, what: &str) -> Result<Vec<(String, String)>, ApiError> {
    web::Query::<Vec<(String, String)>>::from_query(text)
        .map(web::Query::into_inner)
        .map_err(|e| ApiError::bad_request(format!("the {what} can not be decoded: {e}")))
}

fn given_twice_or_list(name: &str) -> ApiError {
    ApiError::bad_request(format!("parameter {name} is given more than once")).for_field(name)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn query_and_json_body_merge_and_types_are_flexible() {
        let mut p = Params::from_parts(
            "container_id=abc&force=true&tail=5",
            Some("application/json"),
            br#"{"purge": "0", "timeout": 30}"#,
        )
        .unwrap();
        assert_eq!(p.string("container_id").unwrap().as_deref(), Some("abc"));
        assert_eq!(p.bool("force").unwrap(), Some(true));
        assert_eq!(p.bool("purge").unwrap(), Some(false));
        assert_eq!(p.uint("tail").unwrap(), Some(5));
        assert_eq!(p.uint("timeout").unwrap(), Some(30));
        assert!(p.finish(&[]).is_ok());
    }

    #[test]
    fn wrong_types_and_duplicates_are_bad_requests() {
        let mut p = Params::from_parts("a=1&a=2", None, br#"{"force": "maybe", "tail": "x"}"#).unwrap();
        assert_eq!(
            p.string("a").unwrap_err().message(),
            "parameter a is given more than once"
        );
        assert_eq!(
            p.bool("force").unwrap_err().message(),
            "parameter force must be true or false"
        );
        assert_eq!(
            p.uint("tail").unwrap_err().message(),
            "parameter tail must be a non-negative integer"
        );
        let both = Params::from_parts("force=true", None, br#"{"force": true}"#).unwrap_err();
        assert!(
            both.message()
                .contains("both in the query string and in the body")
        );
        assert!(Params::from_parts("", None, b"[1]").is_err());
        assert!(Params::from_parts("", None, b"{").is_err());
    }

    #[test]
    fn form_bodies_and_env_objects() {
        let mut p = Params::from_parts(
            "",
            Some("application/x-www-form-urlencoded"),
            b"container_id=abc&env=A%3D1&env=B%3D2",
        )
        .unwrap();
        assert_eq!(p.assignments("env").unwrap(), vec!["A=1", "B=2"]);
        let unknown = p.finish(&["env"]).unwrap_err();
        assert_eq!(
            unknown.message(),
            "unknown parameter container_id: this endpoint accepts env"
        );
        let mut curl = Params::from_parts(
            "",
            Some("application/x-www-form-urlencoded"),
            br#" {"container_id": "abc"}"#,
        )
        .unwrap();
        assert_eq!(curl.string("container_id").unwrap().as_deref(), Some("abc"));
        let mut p = Params::from_parts("", None, br#"{"env": {"A": "1"}}"#).unwrap();
        assert_eq!(p.assignments("env").unwrap(), vec!["A=1"]);
        assert!(p.finish(&[]).is_ok());
    }

    fn read<T: ParamSet>(query: &str, body: &str) -> Result<T, ApiError> {
        Params::from_parts(query, Some("application/json"), body.as_bytes())?.parse()
    }

    fn refusal<T: ParamSet + std::fmt::Debug>(query: &str, body: &str) -> (String, Option<String>) {
        let e = read::<T>(query, body).unwrap_err();
        (e.message().to_owned(), e.body().error.field)
    }

    #[test]
    fn parameter_sets_read_with_serde_answer_as_the_accessors_did() {
        use crate::params_types::{ContainerRef, CreateParams, ExecParams, GetParams, NoParams, QuotaParams};

        let p: CreateParams = read(
            "user_id=alice&environment=A%3D1",
            r#"{"cpu_limit": 0.5, "memory": "1g", "command": ["sleep", "1"], "ssh_keys": "k", "pull": null}"#,
        )
        .unwrap();
        assert_eq!(p.env, vec!["A=1"]);
        assert_eq!(p.cpus.as_deref(), Some("0.5"));
        assert_eq!(p.memory.as_deref(), Some("1g"));
        assert!(matches!(p.command, Some(CommandParam::Words(ref w)) if w == &["sleep", "1"]));
        assert_eq!(p.ssh_keys, vec!["k"]);
        assert_eq!(p.pull, None);
        assert_eq!(
            refusal::<CreateParams>("user_id=a&env=A%3D1&environment=B%3D2", ""),
            (
                "give env or environment (the same parameter under the original's name), not both".to_owned(),
                Some("environment".to_owned())
            )
        );
        assert_eq!(
            refusal::<CreateParams>("user_id=a&colour=red", "").0,
            "unknown parameter colour: this endpoint accepts user_id, container_type, image, command, env, \
             memory, cpus, enable_ssh, ssh_public_key, ssh_keys, container_name, pull, node, environment, \
             memory_limit, cpu_limit"
        );
        assert_eq!(
            refusal::<CreateParams>("user_id=a", r#"{"env": {"A": 1}}"#).0,
            "parameter env must map names to string values"
        );
        assert_eq!(
            refusal::<CreateParams>("", ""),
            (
                "parameter user_id is required".to_owned(),
                Some("user_id".to_owned())
            )
        );
        // The first problem in the struct's order is answered, a missing one included.
        assert_eq!(
            refusal::<CreateParams>("enable_ssh=maybe&colour=red", "").0,
            "parameter user_id is required"
        );
        assert_eq!(
            refusal::<CreateParams>("user_id=a&enable_ssh=maybe&pull=x&colour=red", "").0,
            "parameter enable_ssh must be true or false"
        );

        // `user_id` is accepted (and ignored) on container endpoints, but not listed.
        let p: ContainerRef = read("container_id=abc&user_id=bob", "").unwrap();
        assert_eq!(p.container_id, "abc");
        assert_eq!(
            refusal::<GetParams>("container_id=abc&forse=true&zz=1", ""),
            (
                "unknown parameter forse, zz: this endpoint accepts container_id, health".to_owned(),
                Some("forse".to_owned())
            )
        );
        assert_eq!(
            refusal::<GetParams>("container_id=a&container_id=b", "").0,
            "parameter container_id is given more than once"
        );
        assert_eq!(
            refusal::<GetParams>("container_id=a&health=maybe", "").0,
            "parameter health must be true or false"
        );
        assert_eq!(
            refusal::<GetParams>("", r#"{"container_id": 5}"#).0,
            "parameter container_id must be a string"
        );
        assert_eq!(
            refusal::<QuotaParams>("user_id=a&containers=-1", "").0,
            "parameter containers must be a non-negative integer"
        );
        assert_eq!(
            refusal::<ExecParams>("container_id=a", r#"{"command": null}"#),
            (
                "parameter command is required".to_owned(),
                Some("command".to_owned())
            )
        );
        assert_eq!(
            refusal::<ExecParams>("container_id=a", r#"{"command": ["ls", 1]}"#).0,
            "parameter command must be a string or a list of strings"
        );
        let p: ExecParams = read("container_id=a&command=ls%20-l&timeout=5", "").unwrap();
        assert!(matches!(p.command, CommandParam::Line(ref l) if l == "ls -l"));
        assert_eq!(p.timeout, Some(5));
        assert_eq!(
            refusal::<NoParams>("x=1", "").0,
            "unknown parameter x: this endpoint accepts no parameters"
        );
        read::<NoParams>("", "").unwrap();
    }
}
