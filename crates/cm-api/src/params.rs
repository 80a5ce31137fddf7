//! Request parameters, from the query string and from a JSON (or form) body, as the original API
//! took them. Both sources are merged into one map; typed accessors turn values into Rust types
//! and name the parameter in every error.
//!
//! The rule: a parameter that is missing, unknown, given twice or of a type that can not be read
//! is a `400 bad_request`; a value that reads fine but is refused (a bad user id, a timeout out
//! of range) is a `422 invalid_input`.

use std::collections::BTreeMap;

use actix_web::web;
use serde_json::Value;

use crate::error::ApiError;

/// The parameter carrying credentials in the original API (discouraged: query strings end up in
/// logs and browser histories; use `Authorization: Bearer`).
pub const ADMIN_KEY_PARAM: &str = "admin_key";

/// The merged parameters of one request.
#[derive(Debug, Default)]
pub struct Params {
    values: BTreeMap<String, Value>,
}

/// A parameter set an endpoint reads, with the names it accepts.
pub trait FromParams: Sized {
    /// Every parameter name the endpoint accepts (besides `admin_key`).
    const FIELDS: &'static [&'static str];

    /// Reads the parameters; unknown ones are refused afterwards.
    fn from_params(params: &mut Params) -> Result<Self, ApiError>;
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

    /// Reads the endpoint's parameter set and refuses any parameter it does not know.
    pub fn parse<T: FromParams>(mut self) -> Result<T, ApiError> {
        let value = T::from_params(&mut self)?;
        self.finish(T::FIELDS)?;
        Ok(value)
    }

    /// Accepts the original's name `original` for parameter `name`; giving both is refused.
    pub fn alias(&mut self, name: &str, original: &str) -> Result<(), ApiError> {
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
    pub fn string(&mut self, name: &str) -> Result<Option<String>, ApiError> {
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
    pub fn text_or_number(&mut self, name: &str) -> Result<Option<String>, ApiError> {
        if let Some(Value::Number(n)) = self.values.get(name) {
            let text = n.to_string();
            self.values.remove(name);
            return Ok(Some(text));
        }
        self.string(name)
    }

    /// A required text parameter.
    pub fn required_string(&mut self, name: &str) -> Result<String, ApiError> {
        self.string(name)?
            .ok_or_else(|| ApiError::bad_request(format!("parameter {name} is required")).for_field(name))
    }

    /// A boolean: JSON `true`/`false`, or the text `true`/`false`/`1`/`0`.
    pub fn bool(&mut self, name: &str) -> Result<Option<bool>, ApiError> {
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
    pub fn uint(&mut self, name: &str) -> Result<Option<u64>, ApiError> {
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
    pub fn strings(&mut self, name: &str) -> Result<Vec<String>, ApiError> {
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
    pub fn assignments(&mut self, name: &str) -> Result<Vec<String>, ApiError> {
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
    pub fn command(&mut self, name: &str) -> Result<Option<CommandParam>, ApiError> {
        match self.values.get(name) {
            Some(Value::Array(_)) => Ok(Some(CommandParam::Words(self.strings(name)?))),
            _ => Ok(self.string(name)?.map(CommandParam::Line)),
        }
    }

    /// Refuses what is left: parameters the endpoint does not know.
    fn finish(self, accepted: &[&str]) -> Result<(), ApiError> {
        let mut unknown = self.values.keys();
        let Some(first) = unknown.next() else {
            return Ok(());
        };
        let mut names = vec![first.as_str()];
        names.extend(unknown.map(String::as_str));
        let accepts = if accepted.is_empty() {
            "no parameters".to_owned()
        } else {
            accepted.join(", ")
        };
        Err(ApiError::bad_request(format!(
            "unknown parameter {}: this endpoint accepts {accepts}",
            names.join(", ")
        ))
        .for_field(first.clone()))
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
}
