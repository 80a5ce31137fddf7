//! The host's small ports: the SSH key parser, the port probe, the app probe and the clock.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::keys::SshPublicKey;
use crate::network::PortProbe;
use crate::ports::{Clock, KeyParser};

/// A key parser that accepts `ssh-ed25519 <base64> [comment]` with a made-up fingerprint.
#[derive(Default)]
pub struct FakeKeyParser;

impl KeyParser for FakeKeyParser {
    fn parse(&self, raw: &str) -> Result<SshPublicKey> {
        let mut parts = raw.trim().splitn(3, ' ');
        let (algorithm, body, comment) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        if algorithm != "ssh-ed25519" || body.len() < 16 {
            return Err(Error::invalid(
                "invalid ssh key: only ssh-ed25519 keys are accepted",
            ));
        }
        let line = if comment.is_empty() {
            format!("{algorithm} {body}")
        } else {
            format!("{algorithm} {body} {comment}")
        };
        SshPublicKey::from_parsed(&line, &format!("SHA256:{}", &body[body.len() - 16..]), comment)
    }
}

/// A port probe that calls the listed ports busy.
#[derive(Default)]
pub struct FakeProbe {
    busy: Mutex<BTreeSet<u16>>,
}

impl FakeProbe {
    /// Marks a port as held by another process.
    pub fn hold(&self, port: u16) {
        self.busy.lock().unwrap().insert(port);
    }
}

impl PortProbe for FakeProbe {
    fn is_free(&self, port: u16) -> bool {
        !self.busy.lock().unwrap().contains(&port)
    }
}

/// An app probe whose apps answer on the ports a test says (none at first).
#[derive(Default)]
pub struct FakeAppProbe {
    answering: Mutex<BTreeSet<u16>>,
    asked: Mutex<usize>,
}

impl FakeAppProbe {
    /// The app on `port` answers from now on.
    pub fn answer_on(&self, port: u16) {
        self.answering.lock().unwrap().insert(port);
    }

    /// How often it was asked.
    pub fn asked(&self) -> usize {
        *self.asked.lock().unwrap()
    }
}

#[async_trait]
impl crate::ports::AppProbe for FakeAppProbe {
    async fn answers(&self, port: u16) -> bool {
        *self.asked.lock().unwrap() += 1;
        self.answering.lock().unwrap().contains(&port)
    }
}

/// A clock fixed at 2026-01-01T00:00:00Z that tests can move.
pub struct FixedClock(Mutex<SystemTime>);

impl Default for FixedClock {
    fn default() -> Self {
        FixedClock(Mutex::new(
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600),
        ))
    }
}

impl FixedClock {
    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap()
    }
}
