//! The test harness: a private nginx, tiny upstream servers (HTTP and WebSocket echo), and a
//! raw HTTP client. Everything is cleaned up on drop, also when a test fails.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use cm_core::{NginxSettings, Route, TypeName, UserId};
use cm_nginx::{NginxProxy, render_map_snippet};
use cm_testkit::http::websocket_accept;
use cm_testkit::nginx::TestNginx;

/// A running nginx of our own (`cm_testkit::nginx::TestNginx`: prefix in a temporary directory,
/// listening on 127.0.0.1:`port`), with the adapter settings that drive it.
pub struct Nginx {
    pub port: u16,
    pub settings: NginxSettings,
    // Stops nginx and removes its prefix on drop.
    _nginx: TestNginx,
}

impl Nginx {
    /// Starts a private nginx, or `None` (after a loud skip line) when there is none; under CI a
    /// missing nginx fails the test.
    pub fn start(test: &str) -> Option<Nginx> {
        let nginx = TestNginx::start(test, &render_map_snippet())?;
        let settings = NginxSettings {
            enabled: true,
            available_dir: nginx.available_dir.clone(),
            enabled_dir: nginx.enabled_dir.clone(),
            binary: nginx.binary.clone(),
            args: nginx.args.clone(),
            mode: cm_core::RoutingMode::Files,
            ..cm_core::Config::defaults().nginx
        };
        Some(Nginx {
            port: nginx.port,
            settings,
            _nginx: nginx,
        })
    }

    /// A proxy driving this nginx.
    pub async fn proxy(&self) -> NginxProxy {
        let proxy = NginxProxy::detect(&self.settings).await;
        assert!(
            cm_core::Proxy::status(&proxy).enabled,
            "{:?}",
            cm_core::Proxy::status(&proxy)
        );
        proxy
    }

    pub fn available(&self) -> &Path {
        &self.settings.available_dir
    }

    pub fn enabled(&self) -> &Path {
        &self.settings.enabled_dir
    }

    /// GET through this nginx.
    pub async fn get(&self, path: &str) -> Response {
        http_get(self.port, path, &[]).await
    }

    /// GET through this nginx until `done` holds (reloads take effect within milliseconds, but a
    /// loaded CI machine can be slower), returning the last answer either way.
    pub async fn get_until(&self, path: &str, done: impl Fn(&Response) -> bool) -> Response {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let response = self.get(path).await;
            if done(&response) || Instant::now() > deadline {
                return response;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

pub fn route(user: &str, kind: &str, port: u16, strip_prefix: bool) -> Route {
    Route {
        user: UserId::parse(user).unwrap(),
        kind: TypeName::parse(kind).unwrap(),
        port,
        strip_prefix,
    }
}

// ---------------------------------------------------------------------------------------------
// Upstreams.

/// A tiny upstream on 127.0.0.1: answers every request with its name, the path it saw and a few
/// headers; upgrades WebSocket requests and echoes text frames.
pub struct Upstream {
    pub port: u16,
    task: JoinHandle<()>,
}

impl Upstream {
    pub async fn start(name: &str) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind upstream");
        let port = listener.local_addr().unwrap().port();
        let name: Arc<str> = name.into();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let name = name.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, &name).await;
                });
            }
        });
        Upstream { port, task }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut stream: TcpStream, name: &str) -> std::io::Result<()> {
    let (head, _) = read_head(&mut stream).await?;
    let request = Head::parse(&head);
    if request
        .header("upgrade")
        .is_some_and(|u| u.eq_ignore_ascii_case("websocket"))
    {
        let key = request.header("sec-websocket-key").unwrap_or_default();
        let answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            websocket_accept(key)
        );
        stream.write_all(answer.as_bytes()).await?;
        loop {
            let payload = read_frame(&mut stream).await?;
            let reply = format!("{name} echoes {}", String::from_utf8_lossy(&payload));
            write_frame(&mut stream, reply.as_bytes(), None).await?;
        }
    }
    let mut body = String::new();
    let _ = writeln!(body, "upstream={name}");
    let _ = writeln!(body, "path={}", request.target);
    for header in [
        "x-forwarded-prefix",
        "x-forwarded-proto",
        "x-forwarded-for",
        "authorization",
        "host",
    ] {
        let _ = writeln!(body, "{header}={}", request.header(header).unwrap_or("-"));
    }
    let answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(answer.as_bytes()).await?;
    stream.shutdown().await
}

// ---------------------------------------------------------------------------------------------
// A raw HTTP/1.1 client.

/// A parsed answer.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A `key=value` line of an upstream's answer.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.body
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
    }
}

/// Sends `GET path` with extra headers to 127.0.0.1:`port` and reads the whole answer.
pub async fn http_get(port: u16, path: &str, headers: &[(&str, &str)]) -> Response {
    let attempt = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
        for (k, v) in headers {
            let _ = write!(request, "{k}: {v}\r\n");
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(Duration::from_secs(10), attempt)
        .await
        .expect("HTTP request timed out")
        .expect("HTTP request failed");
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let head = Head::parse(head);
    Response {
        status: head.target.parse().unwrap_or(0),
        headers: head.headers,
        body: body.to_owned(),
    }
}

/// A request or status line plus headers. For a status line, `target` is the status code.
struct Head {
    target: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn parse(head: &str) -> Head {
        let mut lines = head.lines();
        let first = lines.next().unwrap_or_default();
        let target = first.split(' ').nth(1).unwrap_or_default().to_owned();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Head { target, headers }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads up to the end of the head; returns it and whatever came after it.
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok((String::from_utf8_lossy(&buf[..end]).into_owned(), rest));
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

// ---------------------------------------------------------------------------------------------
// WebSocket (RFC 6455), just enough for a handshake and short text frames.

/// Opens a WebSocket through nginx, sends `text` and returns the echoed text.
pub async fn websocket_echo(port: u16, path: &str, text: &str) -> Result<String, String> {
    let attempt = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| e.to_string())?;
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let (head, rest) = read_head(&mut stream).await.map_err(|e| e.to_string())?;
        if !rest.is_empty() {
            return Err("unexpected bytes after the handshake".to_owned());
        }
        let head = Head::parse(&head);
        if head.target != "101" {
            return Err(format!("expected 101, got {}", head.target));
        }
        // The accept value of the RFC's example key.
        if head.header("sec-websocket-accept") != Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") {
            return Err(format!(
                "bad Sec-WebSocket-Accept: {:?}",
                head.header("sec-websocket-accept")
            ));
        }
        write_frame(&mut stream, text.as_bytes(), Some([0x37, 0xfa, 0x21, 0x3d]))
            .await
            .map_err(|e| e.to_string())?;
        let payload = read_frame(&mut stream).await.map_err(|e| e.to_string())?;
        String::from_utf8(payload).map_err(|e| e.to_string())
    };
    tokio::time::timeout(Duration::from_secs(10), attempt)
        .await
        .map_err(|_| "websocket exchange timed out".to_owned())?
}

/// Writes one final text frame (payload under 126 bytes), masked when a mask is given.
async fn write_frame(stream: &mut TcpStream, payload: &[u8], mask: Option<[u8; 4]>) -> std::io::Result<()> {
    assert!(payload.len() < 126);
    let mut frame = vec![0x81, payload.len() as u8];
    match mask {
        Some(mask) => {
            frame[1] |= 0x80;
            frame.extend_from_slice(&mask);
            frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        }
        None => frame.extend_from_slice(payload),
    }
    stream.write_all(&frame).await
}

/// Reads one frame with a short payload and returns it unmasked.
async fn read_frame(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).await?;
    let masked = head[1] & 0x80 != 0;
    let len = usize::from(head[1] & 0x7f);
    assert!(len < 126, "test frames are short");
    let mut mask = [0u8; 4];
    if masked {
        stream.read_exact(&mut mask).await?;
    }
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await?;
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
    }
    Ok(payload)
}

#[test]
fn the_handshake_helper_matches_the_rfc_example() {
    assert_eq!(
        websocket_accept("dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}
