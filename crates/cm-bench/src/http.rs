//! A small HTTP/1.1 client with keep-alive over TCP or a unix socket, a closed-loop load generator
//! built on it, a loopback TCP proxy to a unix socket (for `wrk`), and `wrk` itself.
//!
//! The same client code measures both sides (cm-api over loopback TCP, the engine over its unix
//! socket), so only the server differs. It reads the body to the end (Content-Length or chunked)
//! but never parses it, so a large JSON answer costs the client the same on both sides.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UnixStream};

use crate::stats::{ms_since, percentile, sorted};

/// Where a server listens.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// Loopback TCP.
    Tcp(SocketAddr),
    /// A unix socket (the engine).
    Unix(PathBuf),
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// One keep-alive connection.
pub struct Conn {
    io: BufReader<Box<dyn Stream>>,
}

/// An answer.
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// The server closes the connection after this answer.
    pub close: bool,
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

impl Conn {
    /// Connects.
    pub async fn open(endpoint: &Endpoint) -> io::Result<Conn> {
        let stream: Box<dyn Stream> = match endpoint {
            Endpoint::Tcp(addr) => {
                let s = TcpStream::connect(addr).await?;
                s.set_nodelay(true)?;
                Box::new(s)
            }
            Endpoint::Unix(path) => Box::new(UnixStream::connect(path).await?),
        };
        Ok(Conn {
            io: BufReader::with_capacity(64 * 1024, stream),
        })
    }

    /// Sends one request (see [`request`]) and reads its answer.
    pub async fn exchange(&mut self, request: &[u8]) -> io::Result<Response> {
        self.io.get_mut().write_all(request).await?;
        self.io.get_mut().flush().await?;
        self.read_response().await
    }

    async fn read_line(&mut self, line: &mut String) -> io::Result<()> {
        line.clear();
        if self.io.read_line(line).await? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"));
        }
        Ok(())
    }

    async fn read_response(&mut self) -> io::Result<Response> {
        let mut line = String::new();
        self.read_line(&mut line).await?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid("bad status line"))?;
        let (mut length, mut chunked, mut close) = (None, false, false);
        loop {
            self.read_line(&mut line).await?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let value = value.trim();
                match name.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = value.parse::<usize>().ok(),
                    "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
                    "connection" => close = value.eq_ignore_ascii_case("close"),
                    _ => {}
                }
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                self.read_line(&mut line).await?;
                let size_text = line.trim().split(';').next().unwrap_or("");
                let size = usize::from_str_radix(size_text, 16).map_err(|_| invalid("bad chunk size"))?;
                if size == 0 {
                    // Trailers, then the empty line.
                    loop {
                        self.read_line(&mut line).await?;
                        if line.trim().is_empty() {
                            break;
                        }
                    }
                    break;
                }
                let start = body.len();
                body.resize(start + size, 0);
                self.io.read_exact(&mut body[start..]).await?;
                self.read_line(&mut line).await?;
            }
        } else if let Some(length) = length {
            body.resize(length, 0);
            self.io.read_exact(&mut body).await?;
        } else if !(status == 204 || status == 304 || (100..200).contains(&status)) {
            self.io.read_to_end(&mut body).await?;
            close = true;
        }
        Ok(Response { status, body, close })
    }
}

/// The bytes of a request with `Host: localhost`, the given headers and an optional JSON body.
pub fn request(method: &str, path: &str, headers: &[(&str, &str)], json_body: Option<&str>) -> Vec<u8> {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = json_body {
        text.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    } else {
        text.push_str("\r\n");
    }
    text.into_bytes()
}

/// One request on a fresh connection; the answer, or `None` when nothing answered.
pub async fn once(endpoint: &Endpoint, request: &[u8]) -> Option<Response> {
    let mut conn = Conn::open(endpoint).await.ok()?;
    conn.exchange(request).await.ok()
}

/// The status of `GET path` on a fresh connection, or `None` when nothing answered.
pub async fn get_status(endpoint: &Endpoint, path: &str) -> Option<u16> {
    once(endpoint, &request("GET", path, &[("Connection", "close")], None))
        .await
        .map(|r| r.status)
}

/// Polls `GET path` with `headers` (each time on a fresh connection, `every` apart) until its
/// status passes `accept`: the time from the call to that answer in ms and the status, `None`
/// after `limit`.
pub async fn wait_for(
    endpoint: &Endpoint,
    path: &str,
    headers: &[(&str, &str)],
    accept: impl Fn(u16) -> bool,
    limit: Duration,
    every: Duration,
) -> Option<(f64, u16)> {
    let mut all = vec![("Connection", "close")];
    all.extend_from_slice(headers);
    let req = request("GET", path, &all, None);
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = once(endpoint, &req).await.map(|r| r.status)
            && accept(status)
        {
            return Some((ms_since(start), status));
        }
        tokio::time::sleep(every).await;
    }
    None
}

/// The outcome of a load run.
#[derive(Debug, Clone, Serialize)]
pub struct LoadStats {
    /// Concurrent connections.
    pub connections: usize,
    /// Answers with status 200.
    pub ok: usize,
    /// Other answers and connection errors.
    pub errors: usize,
    /// Wall time, s.
    pub seconds: f64,
    /// `ok / seconds`.
    pub rps: f64,
    /// Latency percentiles of the 200 answers, ms.
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// The slowest, ms.
    pub max_ms: f64,
}

/// A closed loop: `connections` keep-alive connections each send `request` again as soon as the
/// previous answer is read, until `duration` has passed.
pub async fn load(endpoint: &Endpoint, request: &[u8], connections: usize, duration: Duration) -> LoadStats {
    let start = Instant::now();
    let deadline = start + duration;
    let request = Arc::new(request.to_vec());
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let endpoint = endpoint.clone();
            let request = request.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0usize;
                let mut conn: Option<Conn> = None;
                while Instant::now() < deadline {
                    if conn.is_none() {
                        match Conn::open(&endpoint).await {
                            Ok(c) => conn = Some(c),
                            Err(_) => {
                                errors += 1;
                                tokio::time::sleep(Duration::from_millis(10)).await;
                                continue;
                            }
                        }
                    }
                    let Some(current) = conn.as_mut() else {
                        continue;
                    };
                    let sent = Instant::now();
                    match current.exchange(&request).await {
                        Ok(response) => {
                            if response.status == 200 {
                                latencies.push(ms_since(sent));
                            } else {
                                errors += 1;
                            }
                            if response.close {
                                conn = None;
                            }
                        }
                        Err(_) => {
                            errors += 1;
                            conn = None;
                        }
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        if let Ok((l, e)) = task.await {
            latencies.extend(l);
            errors += e;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let sorted = sorted(&latencies);
    LoadStats {
        connections,
        ok: sorted.len(),
        errors,
        seconds,
        rps: sorted.len() as f64 / seconds,
        p50_ms: percentile(&sorted, 50.0),
        p90_ms: percentile(&sorted, 90.0),
        p99_ms: percentile(&sorted, 99.0),
        max_ms: sorted.last().copied().unwrap_or(f64::NAN),
    }
}

/// A loopback TCP port that forwards each connection to a unix socket, so that `wrk` (TCP only)
/// can load the engine. Stopped by aborting the returned task.
pub async fn unix_proxy(socket: PathBuf) -> io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                continue;
            };
            let socket = socket.clone();
            tokio::spawn(async move {
                if let Ok(mut unix) = UnixStream::connect(&socket).await {
                    let _ = tcp.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut tcp, &mut unix).await;
                }
            });
        }
    });
    Ok((addr, task))
}

/// What `wrk --latency` reported.
#[derive(Debug, Clone, Serialize)]
pub struct WrkStats {
    /// Requests per second.
    pub rps: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Non-2xx answers plus socket errors.
    pub errors: u64,
    /// Requests completed.
    pub requests: u64,
}

/// Runs `wrk -t2 -cCONNS -dSECSs --latency [-H header] URL`; `None` when wrk is missing or its
/// output can not be read.
pub async fn wrk(url: &str, header: Option<&str>, connections: usize, seconds: u64) -> Option<WrkStats> {
    wrk_with(url, header, 2, connections, seconds).await
}

/// Runs `wrk -tTHREADS -cCONNS -dSECSs --latency [-H header] URL` (threads at most connections).
pub async fn wrk_with(
    url: &str,
    header: Option<&str>,
    threads: usize,
    connections: usize,
    seconds: u64,
) -> Option<WrkStats> {
    let mut command = tokio::process::Command::new("wrk");
    command.args([
        &format!("-t{}", threads.clamp(1, connections.max(1))),
        &format!("-c{connections}"),
        &format!("-d{seconds}s"),
        "--latency",
    ]);
    if let Some(header) = header {
        command.args(["-H", header]);
    }
    let out = command.arg(url).output().await.ok()?;
    if !out.status.success() {
        return None;
    }
    parse_wrk(&String::from_utf8_lossy(&out.stdout))
}

fn parse_wrk(text: &str) -> Option<WrkStats> {
    let mut stats = WrkStats {
        rps: f64::NAN,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
        errors: 0,
        requests: 0,
    };
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", value] => stats.p50_ms = wrk_duration_ms(value)?,
            ["99%", value] => stats.p99_ms = wrk_duration_ms(value)?,
            ["Requests/sec:", value] => stats.rps = value.parse().ok()?,
            [count, "requests", "in", ..] => stats.requests = count.parse().unwrap_or(0),
            _ => {}
        }
        if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            stats.errors += rest.trim().parse::<u64>().unwrap_or(0);
        }
        if let Some(rest) = line.strip_prefix("Socket errors:") {
            stats.errors += rest
                .split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    stats.rps.is_finite().then_some(stats)
}

fn wrk_duration_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => value / 1000.0,
        "ms" => value,
        "s" => value * 1000.0,
        "m" => value * 60_000.0,
        _ => return None,
    })
}
