//! The test harness: a private nginx, tiny upstream servers (HTTP and WebSocket echo), and a
//! raw HTTP client. Everything is cleaned up on drop, also when a test fails.

use std::fmt::Write as _;
use std::net::TcpListener as StdListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use cm_core::{NginxSettings, Route, TypeName, UserId};
use cm_nginx::{MAP_SNIPPET_FILE, NginxProxy, install_map_snippet};

/// A running nginx of our own: prefix in a temporary directory, listening on 127.0.0.1:`port`.
pub struct Nginx {
    pub port: u16,
    pub settings: NginxSettings,
    child: Child,
    // Dropped after the child is stopped (fields drop in order, but `Drop` runs first anyway).
    dir: tempfile::TempDir,
}

/// Finds nginx, or says loudly why a test is skipped; under CI a missing nginx fails the test.
pub fn nginx_binary(test: &str) -> Option<PathBuf> {
    let from_env = std::env::var_os("NGINX").map(PathBuf::from);
    let on_path = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("nginx"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let found = from_env.into_iter().chain(on_path).chain(
        [
            "/usr/sbin/nginx",
            "/usr/local/sbin/nginx",
            "/usr/local/nginx/sbin/nginx",
        ]
        .into_iter()
        .map(PathBuf::from),
    );
    for candidate in found {
        if candidate.is_file() {
            return Some(candidate);
        }
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test}: nginx is required under CI but was not found (install nginx-light)");
    }
    eprintln!(
        "\n*** SKIPPED {test}: nginx not found (install nginx-light, or set NGINX=/path/to/nginx) ***\n"
    );
    None
}

impl Nginx {
    /// Starts a private nginx, or `None` (after a loud skip line) when there is none.
    pub fn start(test: &str) -> Option<Nginx> {
        let binary = nginx_binary(test)?;
        let mut last_error = String::new();
        for _ in 0..5 {
            match Self::try_start(&binary) {
                Ok(nginx) => return Some(nginx),
                Err(e) => last_error = e,
            }
        }
        panic!("{test}: could not start nginx: {last_error}");
    }

    fn try_start(binary: &Path) -> Result<Nginx, String> {
        let dir = tempfile::Builder::new()
            .prefix("cm-nginx-it-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let prefix = dir.path();
        for sub in ["conf", "logs", "tmp", "box-available", "box-enabled"] {
            std::fs::create_dir_all(prefix.join(sub)).map_err(|e| e.to_string())?;
        }
        install_map_snippet(&prefix.join("conf").join(MAP_SNIPPET_FILE)).map_err(|e| e.to_string())?;
        let port = free_port();
        // As root, nginx would run its workers as `nobody`, who can not enter the temporary directory.
        let as_root = prefix.metadata().map(|m| m.uid() == 0).unwrap_or(false);
        let p = prefix.display();
        let conf = format!(
            r#"daemon off;
master_process on;
worker_processes 1;
{user}pid {p}/nginx.pid;
error_log {p}/logs/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {p}/logs/access.log;
    client_body_temp_path {p}/tmp/client_body;
    proxy_temp_path {p}/tmp/proxy;
    fastcgi_temp_path {p}/tmp/fastcgi;
    uwsgi_temp_path {p}/tmp/uwsgi;
    scgi_temp_path {p}/tmp/scgi;
    include {p}/conf/{MAP_SNIPPET_FILE};
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        include {p}/box-enabled/*.conf;
        location / {{ return 404; }}
    }}
}}
"#,
            user = if as_root { "user root;\n" } else { "" },
        );
        let conf_path = prefix.join("conf").join("nginx.conf");
        std::fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
        let args = vec![
            "-p".to_owned(),
            format!("{p}/"),
            "-c".to_owned(),
            conf_path.display().to_string(),
            "-e".to_owned(),
            format!("{p}/logs/error.log"),
        ];
        let child = Command::new(binary)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawning {}: {e}", binary.display()))?;
        let settings = NginxSettings {
            enabled: true,
            available_dir: prefix.join("box-available"),
            enabled_dir: prefix.join("box-enabled"),
            binary: binary.to_owned(),
            args,
        };
        let mut nginx = Nginx {
            port,
            settings,
            child,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                let log =
                    std::fs::read_to_string(nginx.dir.path().join("logs/error.log")).unwrap_or_default();
                return Err(format!("nginx exited with {status}: {log}"));
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(nginx);
            }
            if Instant::now() > deadline {
                return Err("nginx did not listen within 10s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
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

impl Drop for Nginx {
    fn drop(&mut self) {
        // `-s stop` makes the master stop its workers too; killing only the master would leave
        // workers holding the port.
        let _ = Command::new(&self.settings.binary)
            .args(&self.settings.args)
            .args(["-s", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = StdListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
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

fn websocket_accept(key: &str) -> String {
    let mut input = key.as_bytes().to_vec();
    input.extend_from_slice(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64(&sha1(&input))
}

/// SHA-1 (FIPS 180-4), only for the WebSocket handshake in tests.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut message = data.to_vec();
    let bit_len = (data.len() as u64) * 8;
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&bit_len.to_be_bytes());
    for block in message.chunks(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let temp = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = temp;
        }
        for (hi, v) in h.iter_mut().zip([a, b, c, d, e]) {
            *hi = hi.wrapping_add(v);
        }
    }
    let mut out = [0u8; 20];
    for (i, v) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&v.to_be_bytes());
    }
    out
}

fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn the_handshake_helper_matches_the_rfc_example() {
    assert_eq!(
        websocket_accept("dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}
