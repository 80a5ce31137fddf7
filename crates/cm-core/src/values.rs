//! Validated values of a container: image, command, environment and resource limits.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::names::quote;

/// A Docker image reference such as `toolboxv2:latest` or `registry:5000/team/app@sha256:...`.
///
/// Only the characters of Docker's reference grammar are allowed, so it can not carry flags,
/// spaces or control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ImageRef(String);

/// The command of a container or an exec: a program and its arguments, never run through a host shell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct Command(Vec<String>);

/// Environment variables: POSIX names, values without NUL, sorted for deterministic output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "BTreeMap<String, String>", into = "BTreeMap<String, String>")]
pub struct EnvVars(BTreeMap<String, String>);

/// A memory limit in bytes, written like Docker: `512m`, `1g`, `268435456`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MemoryLimit(u64);

/// A data volume's size cap in bytes (`2g`, `512m`): the volume is a filesystem of this size, so
/// writing past it fails inside the container with "No space left on device".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DiskSize(u64);

/// A CPU limit in CPUs (`0.5`, `2`), stored as Docker's nano-CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct CpuLimit(u64);

const IMAGE_MAX: usize = 255;
const COMMAND_MAX_ARGS: usize = 256;
const COMMAND_MAX_BYTES: usize = 64 * 1024;
const ENV_MAX_VARS: usize = 256;
const ENV_VALUE_MAX: usize = 32 * 1024;
/// Docker refuses memory limits below 6 MiB.
const MEMORY_MIN: u64 = 6 * 1024 * 1024;
const NANOS_PER_CPU: f64 = 1e9;

impl ImageRef {
    /// Parses an image reference.
    pub fn parse(raw: &str) -> Result<Self> {
        let first_ok = raw.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        let chars_ok = raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c));
        if raw.is_empty() || raw.len() > IMAGE_MAX || !first_ok || !chars_ok {
            return Err(Error::invalid(format!(
                "invalid image {}: use a Docker reference such as 'name:tag' (letters, digits and . _ - / : @)",
                quote(raw)
            )));
        }
        Ok(ImageRef(raw.to_owned()))
    }

    /// The reference as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Command {
    /// Splits a command line like a POSIX shell would split words (quotes and backslashes), without
    /// expanding anything: `sh -c 'echo hi > /data/x'` gives three arguments.
    pub fn parse(line: &str) -> Result<Self> {
        if line.contains('\0') {
            return Err(Error::invalid("invalid command: it contains a NUL character"));
        }
        let words = shlex::split(line)
            .ok_or_else(|| Error::invalid(format!("invalid command {}: unbalanced quotes", quote(line))))?;
        Self::from_args(words)
    }

    /// Takes a program and its arguments as they are.
    pub fn from_args(args: Vec<String>) -> Result<Self> {
        if args.is_empty() || args[0].is_empty() {
            return Err(Error::invalid("invalid command: it is empty"));
        }
        let bytes: usize = args.iter().map(String::len).sum();
        if args.len() > COMMAND_MAX_ARGS || bytes > COMMAND_MAX_BYTES {
            return Err(Error::invalid(format!(
                "invalid command: at most {COMMAND_MAX_ARGS} arguments and {COMMAND_MAX_BYTES} bytes"
            )));
        }
        if args.iter().any(|a| a.contains('\0')) {
            return Err(Error::invalid("invalid command: it contains a NUL character"));
        }
        Ok(Command(args))
    }

    /// The program and its arguments.
    pub fn args(&self) -> &[String] {
        &self.0
    }
}

impl fmt::Display for Command {
    /// Quotes the words so the line can be pasted back into a shell.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = shlex::try_join(self.0.iter().map(String::as_str)).map_err(|_| fmt::Error)?;
        f.write_str(&line)
    }
}

/// What replaces a secret-looking environment value in answers and output.
pub const REDACTED: &str = "***";

/// Parts of a variable name that mark its value as secret (compared case-insensitively).
pub const SECRET_MARKERS: [&str; 7] = [
    "KEY",
    "SECRET",
    "TOKEN",
    "PASSWORD",
    "PASSWD",
    "CREDENTIAL",
    "PRIVATE",
];

/// True when a variable's value must not be shown.
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_MARKERS.iter().any(|marker| upper.contains(marker))
}

impl EnvVars {
    /// An empty set.
    pub fn new() -> Self {
        EnvVars(BTreeMap::new())
    }

    /// Parses `KEY=VALUE` assignments as given on a command line.
    pub fn parse_assignments<S: AsRef<str>>(assignments: &[S]) -> Result<Self> {
        let mut vars = BTreeMap::new();
        for assignment in assignments {
            let assignment = assignment.as_ref();
            let (key, value) = assignment.split_once('=').ok_or_else(|| {
                Error::invalid(format!(
                    "invalid environment assignment {}: write KEY=VALUE",
                    quote(assignment)
                ))
            })?;
            vars.insert(key.to_owned(), value.to_owned());
        }
        Self::try_from(vars)
    }

    /// Sets a variable (used by the manager for its own variables).
    pub(crate) fn set(&mut self, key: &str, value: impl Into<String>) {
        self.0.insert(key.to_owned(), value.into());
    }

    /// Reads a variable.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Adds every variable of `other`, replacing those with the same name.
    pub fn merge(&mut self, other: &EnvVars) {
        self.0.extend(other.0.iter().map(|(k, v)| (k.clone(), v.clone())));
    }

    /// The variables in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The same variables with every secret-looking value ([`is_secret_name`]) replaced by
    /// [`REDACTED`]: what answers, pages and `cm get` show.
    pub fn redacted(&self) -> EnvVars {
        EnvVars(
            self.0
                .iter()
                .map(|(k, v)| {
                    let shown = if is_secret_name(k) { REDACTED } else { v };
                    (k.clone(), shown.to_owned())
                })
                .collect(),
        )
    }

    /// `KEY=VALUE` strings as Docker wants them.
    pub fn to_assignments(&self) -> Vec<String> {
        self.0.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }
}

impl TryFrom<BTreeMap<String, String>> for EnvVars {
    type Error = Error;
    fn try_from(vars: BTreeMap<String, String>) -> Result<Self> {
        if vars.len() > ENV_MAX_VARS {
            return Err(Error::invalid(format!(
                "too many environment variables: at most {ENV_MAX_VARS}"
            )));
        }
        for (key, value) in &vars {
            let first_ok = key
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
            let rest_ok = key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !first_ok || !rest_ok || key.len() > 128 {
                return Err(Error::invalid(format!(
                    "invalid environment variable name {}: use letters, digits and '_', not starting with a digit",
                    quote(key)
                )));
            }
            if value.contains('\0') || value.len() > ENV_VALUE_MAX {
                return Err(Error::invalid(format!(
                    "invalid value of environment variable {key}: no NUL characters and at most {ENV_VALUE_MAX} bytes"
                )));
            }
        }
        Ok(EnvVars(vars))
    }
}

impl From<EnvVars> for BTreeMap<String, String> {
    fn from(value: EnvVars) -> Self {
        value.0
    }
}

/// A size such as `512m`, `1g`, `1.5g`, `64k` or plain bytes, in bytes.
fn parse_size(raw: &str) -> Option<u64> {
    let text = raw.trim().to_ascii_lowercase();
    let text = text.strip_suffix('b').unwrap_or(&text);
    let (number, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c),
        _ => (text, 'b'),
    };
    let factor: u64 = match unit {
        'b' => 1,
        'k' => 1 << 10,
        'm' => 1 << 20,
        'g' => 1 << 30,
        't' => 1 << 40,
        _ => return None,
    };
    let number: f64 = number.parse().ok()?;
    if !number.is_finite() || number <= 0.0 {
        return None;
    }
    let bytes = number * factor as f64;
    (bytes <= u64::MAX as f64 / 2.0).then_some(bytes as u64)
}

/// How the engine rotates a container's log: at most `max_files` files of `max_size` bytes, so a
/// chatty container can not fill the host's disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LogRotation {
    max_size: u64,
    max_files: u32,
}

impl LogRotation {
    /// The default: 3 files of 10 MiB.
    pub const DEFAULT: LogRotation = LogRotation {
        max_size: 10 << 20,
        max_files: 3,
    };

    /// A rotation of `max_files` (1 to 100) files of `max_size` (such as `10m`, at least 64k).
    pub fn parse(max_size: &str, max_files: u32) -> Result<Self> {
        let size = parse_size(max_size)
            .filter(|b| *b >= 64 << 10 && *b <= 1 << 40)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "invalid log_max_size {}: a size such as 10m (64k to 1t)",
                    quote(max_size)
                ))
            })?;
        if !(1..=100).contains(&max_files) {
            return Err(Error::invalid("invalid log_max_files: 1 to 100"));
        }
        Ok(LogRotation {
            max_size: size,
            max_files,
        })
    }

    /// The largest file, in bytes.
    pub fn max_size(self) -> u64 {
        self.max_size
    }

    /// How many files are kept.
    pub fn max_files(self) -> u32 {
        self.max_files
    }
}

impl MemoryLimit {
    /// Parses `512m`, `1g`, `1.5g`, `64k` or plain bytes.
    pub fn parse(raw: &str) -> Result<Self> {
        let err = || {
            Error::invalid(format!(
                "invalid memory limit {}: write a size such as 512m or 2g (at least 6m)",
                quote(raw)
            ))
        };
        match parse_size(raw) {
            Some(bytes) if (MEMORY_MIN..=u64::MAX / 2).contains(&bytes) => Ok(MemoryLimit(bytes)),
            _ => Err(err()),
        }
    }

    /// The limit in bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl fmt::Display for MemoryLimit {
    /// The shortest exact form: `512m`, `2g`, or bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, factor) in [("t", 1u64 << 40), ("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)] {
            if self.0.is_multiple_of(factor) {
                return write!(f, "{}{unit}", self.0 / factor);
            }
        }
        write!(f, "{}", self.0)
    }
}

impl FromStr for MemoryLimit {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl TryFrom<String> for MemoryLimit {
    type Error = Error;
    fn try_from(raw: String) -> Result<Self> {
        Self::parse(&raw)
    }
}

impl From<MemoryLimit> for String {
    fn from(value: MemoryLimit) -> String {
        value.to_string()
    }
}

impl DiskSize {
    /// The smallest cap: below it ext4's own metadata would take most of the space.
    pub const MIN: u64 = 16 << 20;
    /// The largest cap.
    pub const MAX: u64 = 16 << 40;

    /// Parses `2g`, `512m`, `1.5g` or plain bytes, from 16m to 16t, rounded down to whole KiB.
    pub fn parse(raw: &str) -> Result<Self> {
        match parse_size(raw) {
            Some(bytes) if (Self::MIN..=Self::MAX).contains(&bytes) => Ok(DiskSize(bytes & !1023)),
            _ => Err(Error::invalid(format!(
                "invalid disk size {}: write a size such as 2g or 512m (16m to 16t)",
                quote(raw)
            ))),
        }
    }

    /// The cap in bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl fmt::Display for DiskSize {
    /// The shortest exact form, as for memory limits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        MemoryLimit(self.0).fmt(f)
    }
}

impl FromStr for DiskSize {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl TryFrom<String> for DiskSize {
    type Error = Error;
    fn try_from(raw: String) -> Result<Self> {
        Self::parse(&raw)
    }
}

impl From<DiskSize> for String {
    fn from(value: DiskSize) -> String {
        value.to_string()
    }
}

impl CpuLimit {
    /// Parses a number of CPUs between 0.01 and 1024.
    pub fn parse(raw: &str) -> Result<Self> {
        let cpus: f64 = raw.trim().parse().map_err(|_| {
            Error::invalid(format!(
                "invalid CPU limit {}: write a number of CPUs such as 0.5 or 2",
                quote(raw)
            ))
        })?;
        Self::from_cpus(cpus)
    }

    /// Checks a number of CPUs.
    pub fn from_cpus(cpus: f64) -> Result<Self> {
        if !cpus.is_finite() || !(0.01..=1024.0).contains(&cpus) {
            return Err(Error::invalid(format!(
                "invalid CPU limit {cpus}: between 0.01 and 1024 CPUs"
            )));
        }
        Ok(CpuLimit((cpus * NANOS_PER_CPU).round() as u64))
    }

    /// Docker's unit: billionths of a CPU.
    pub fn nano_cpus(self) -> u64 {
        self.0
    }

    /// The limit in CPUs.
    pub fn cpus(self) -> f64 {
        self.0 as f64 / NANOS_PER_CPU
    }
}

impl fmt::Display for CpuLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.cpus())
    }
}

impl FromStr for CpuLimit {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl TryFrom<f64> for CpuLimit {
    type Error = Error;
    fn try_from(cpus: f64) -> Result<Self> {
        Self::from_cpus(cpus)
    }
}

impl From<CpuLimit> for f64 {
    fn from(value: CpuLimit) -> f64 {
        value.cpus()
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ImageRef {
    type Error = Error;
    fn try_from(raw: String) -> Result<Self> {
        Self::parse(&raw)
    }
}

impl From<ImageRef> for String {
    fn from(value: ImageRef) -> String {
        value.0
    }
}

impl TryFrom<Vec<String>> for Command {
    type Error = Error;
    fn try_from(args: Vec<String>) -> Result<Self> {
        Self::from_args(args)
    }
}

impl From<Command> for Vec<String> {
    fn from(value: Command) -> Vec<String> {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_limits() {
        assert_eq!(MemoryLimit::parse("512m").unwrap().bytes(), 512 << 20);
        assert_eq!(MemoryLimit::parse("2G").unwrap().bytes(), 2 << 30);
        assert_eq!(MemoryLimit::parse("1.5g").unwrap().to_string(), "1536m");
        assert_eq!(MemoryLimit::parse("512mb").unwrap().to_string(), "512m");
        for bad in ["", "abc", "-1g", "1x", "1k", "nan", "inf"] {
            assert!(MemoryLimit::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn disk_sizes() {
        assert_eq!(DiskSize::parse("2g").unwrap().bytes(), 2 << 30);
        assert_eq!(DiskSize::parse("16m").unwrap().to_string(), "16m");
        assert_eq!(DiskSize::parse("1.5g").unwrap().to_string(), "1536m");
        for bad in ["", "1m", "15m", "17t", "x", "-2g", "nan"] {
            assert!(DiskSize::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cpu_limits() {
        assert_eq!(CpuLimit::parse("0.5").unwrap().nano_cpus(), 500_000_000);
        assert_eq!(CpuLimit::parse("2").unwrap().to_string(), "2");
        for bad in ["0", "-1", "x", "2000", "NaN"] {
            assert!(CpuLimit::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn commands_split_like_a_shell_without_running_one() {
        let cmd = Command::parse("sh -c 'echo hi > /data/x'").unwrap();
        assert_eq!(cmd.args(), ["sh", "-c", "echo hi > /data/x"]);
        assert_eq!(cmd.to_string(), "sh -c 'echo hi > /data/x'");
        assert!(Command::parse("echo 'unbalanced").is_err());
        assert!(Command::parse("   ").is_err());
    }

    #[test]
    fn env_names_are_checked() {
        assert!(EnvVars::parse_assignments(&["A=1", "B_2=x=y"]).is_ok());
        for bad in ["1A=x", "A-B=x", "=x", "NOEQUALS", "A B=x"] {
            assert!(EnvVars::parse_assignments(&[bad]).is_err(), "{bad}");
        }
        let vars = EnvVars::parse_assignments(&["B=2", "A=1"]).unwrap();
        assert_eq!(vars.to_assignments(), ["A=1", "B=2"]);
    }

    #[test]
    fn images() {
        assert!(ImageRef::parse("toolboxv2:latest").is_ok());
        assert!(ImageRef::parse("registry:5000/a/b@sha256:abc").is_ok());
        for bad in ["", "-x", "a b", "a;b", "a\nb", "--privileged"] {
            assert!(ImageRef::parse(bad).is_err(), "{bad}");
        }
    }
}
