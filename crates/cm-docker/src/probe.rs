//! The host port probe: a port is free when we can bind it on every address the manager publishes on.
//! And the app probe: an app answers when an HTTP request to its published port gets any answer.

use std::net::{Ipv4Addr, TcpListener};
use std::time::Duration;

use async_trait::async_trait;
use cm_core::{AppProbe, PortProbe};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Probes ports by binding them briefly on 0.0.0.0 (which also covers 127.0.0.1).
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpPortProbe;

impl PortProbe for TcpPortProbe {
    fn is_free(&self, port: u16) -> bool {
        // Binding the wildcard fails when any address holds the port, loopback included.
        TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok()
    }
}

/// Asks an app on `127.0.0.1:{port}` for `HEAD /` and waits for the first byte of its answer.
/// A connection alone proves nothing: the engine's proxy accepts on the published port while
/// nothing listens in the container, and then closes the connection without a byte.
#[derive(Debug, Clone, Copy)]
pub struct HttpAppProbe {
    /// How long one try may take (connecting, sending, the first byte).
    pub timeout: Duration,
}

impl Default for HttpAppProbe {
    fn default() -> Self {
        HttpAppProbe {
            timeout: Duration::from_secs(2),
        }
    }
}

#[async_trait]
impl AppProbe for HttpAppProbe {
    async fn answers(&self, port: u16) -> bool {
        let attempt = async {
            let mut stream = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await?;
            stream
                .write_all(
                    b"HEAD / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: cm-wake\r\nConnection: close\r\n\r\n",
                )
                .await?;
            let mut first = [0u8; 1];
            stream.read(&mut first).await
        };
        matches!(tokio::time::timeout(self.timeout, attempt).await, Ok(Ok(n)) if n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_app_answers_when_it_sends_a_byte_not_when_it_only_accepts() {
        let probe = HttpAppProbe {
            timeout: Duration::from_millis(500),
        };
        // Nothing listens.
        let free = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        assert!(!probe.answers(port).await);
        // Something accepts and closes without a word (the engine's proxy before the app listens).
        let silent = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap();
        let port = silent.local_addr().unwrap().port();
        let closer = tokio::spawn(async move {
            loop {
                let (connection, _) = silent.accept().await.unwrap();
                drop(connection);
            }
        });
        assert!(!probe.answers(port).await);
        closer.abort();
        // An HTTP server.
        let app = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap();
        let port = app.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut connection, _) = app.accept().await.unwrap();
            let mut request = [0u8; 256];
            let _ = connection.read(&mut request).await;
            connection
                .write_all(b"HTTP/1.1 404 Not Found\r\n\r\n")
                .await
                .unwrap();
        });
        assert!(probe.answers(port).await);
        server.await.unwrap();
    }

    #[test]
    fn a_bound_port_is_busy_and_a_released_one_free() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(!TcpPortProbe.is_free(port));
        drop(listener);
        assert!(TcpPortProbe.is_free(port));
    }
}
