//! A blocking, raw HTTP/1.1 client and just enough WebSocket (RFC 6455) for tests: one `GET`
//! with `Connection: close`, and a handshake plus one masked text frame echoed back.
//!
//! Raw on purpose: the tests look at exactly what nginx answers (redirects are not followed,
//! statuses such as 101, 301 and 502 are plain answers).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long one exchange may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The GUID of the WebSocket handshake (RFC 6455, section 1.3).
const WS_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A parsed answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code (0 when the status line was unreadable).
    pub status: u16,
    /// The headers, names in lower case, in order.
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub body: String,
}

impl Response {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `GET path` with `Host: localhost` (unless `headers` name another) and extra `headers` to
/// 127.0.0.1:`port` and reads the whole answer (the request asks the server to close). `Err`
/// when nothing answers.
pub fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> std::io::Result<Response> {
    request(port, "GET", path, headers, None)
}

/// Like [`get`], with any method and an optional body (sent with its `Content-Length`; name its
/// type in `headers`).
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let request = head_of(method, path, headers, body);
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let (status, headers) = parse_head(head);
    Ok(Response {
        status,
        headers,
        body: body.to_owned(),
    })
}

/// The request text: the request line, `Host: localhost` unless `headers` has a Host, `Connection:
/// close`, the headers, and the body.
fn head_of(method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> String {
    let mut request = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        request.push_str("Host: localhost\r\n");
    }
    request.push_str("Connection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(body) = body {
        request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    } else {
        request.push_str("\r\n");
    }
    request
}

/// The status (or 0 when nothing answered) of `GET path`.
pub fn status(port: u16, path: &str) -> u16 {
    get(port, path, &[]).map_or(0, |r| r.status)
}

/// Opens a WebSocket to 127.0.0.1:`port` at `path`, checks the 101 answer and its
/// `Sec-WebSocket-Accept`, sends `text` as one masked text frame and returns the text of the
/// first frame that comes back. `Err` says which step failed.
pub fn websocket_echo(port: u16, path: &str, text: &str) -> Result<String, String> {
    websocket_echo_with(port, path, &[], text)
}

/// Like [`websocket_echo`], with extra `headers` on the handshake (credentials, say).
pub fn websocket_echo_with(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    text: &str,
) -> Result<String, String> {
    let step = |what: &str| {
        let what = what.to_owned();
        move |e: std::io::Error| format!("{what}: {e}")
    };
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(step("connect"))?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(step("timeout"))?;
    let key = base64(&nonce());
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).map_err(step("handshake"))?;
    let (head, rest) = read_head(&mut stream).map_err(step("handshake answer"))?;
    let (status, headers) = parse_head(&head);
    if status != 101 {
        return Err(format!("expected 101 Switching Protocols, got: {head}"));
    }
    let accept = headers
        .iter()
        .find(|(k, _)| k == "sec-websocket-accept")
        .map(|(_, v)| v.as_str());
    if accept != Some(websocket_accept(&key).as_str()) {
        return Err(format!("bad Sec-WebSocket-Accept {accept:?} for key {key}"));
    }
    if !rest.is_empty() {
        return Err(format!("{} unexpected bytes after the handshake", rest.len()));
    }
    let mask = nonce();
    let frame = text_frame(text.as_bytes(), [mask[0], mask[1], mask[2], mask[3]]);
    stream.write_all(&frame).map_err(step("sending the frame"))?;
    let (opcode, payload) = read_frame(&mut stream).map_err(step("reading the echo"))?;
    if opcode != 0x1 {
        return Err(format!(
            "expected a text frame, got opcode {opcode:#x}: {payload:?}"
        ));
    }
    String::from_utf8(payload).map_err(|e| e.to_string())
}

/// One final, masked text frame (RFC 6455, section 5.2). Clients must mask.
pub fn text_frame(payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut frame = vec![0x81];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n <= usize::from(u16::MAX) => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// Reads one frame; returns its opcode and unmasked payload.
fn read_frame(stream: &mut impl Read) -> std::io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head)?;
    let opcode = head[0] & 0x0f;
    let masked = head[1] & 0x80 != 0;
    let len = match head[1] & 0x7f {
        126 => {
            let mut n = [0u8; 2];
            stream.read_exact(&mut n)?;
            u64::from(u16::from_be_bytes(n))
        }
        127 => {
            let mut n = [0u8; 8];
            stream.read_exact(&mut n)?;
            u64::from_be_bytes(n)
        }
        n => u64::from(n),
    };
    let len = usize::try_from(len).map_err(|_| std::io::Error::other("frame too long"))?;
    let mut mask = [0u8; 4];
    if masked {
        stream.read_exact(&mut mask)?;
    }
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload)?;
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
    }
    Ok((opcode, payload))
}

/// Reads up to the end of the head; returns it and whatever came after it.
fn read_head(stream: &mut impl Read) -> std::io::Result<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok((String::from_utf8_lossy(&buf[..end]).into_owned(), rest));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The status code and the headers (names in lower case) of a response head.
fn parse_head(head: &str) -> (u16, Vec<(String, String)>) {
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers)
}

/// 16 bytes that differ between calls (not cryptographic; a handshake key needs no secrecy).
fn nonce() -> [u8; 16] {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let a = nanos ^ u64::from(std::process::id()).rotate_left(32);
    let b = COUNTER
        .fetch_add(1, Ordering::Relaxed)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ nanos.rotate_left(17);
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&a.to_le_bytes());
    out[8..].copy_from_slice(&b.to_le_bytes());
    out
}

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key`.
pub fn websocket_accept(key: &str) -> String {
    let mut input = key.as_bytes().to_vec();
    input.extend_from_slice(WS_GUID);
    base64(&sha1(&input))
}

/// SHA-1 (FIPS 180-4), only for the WebSocket handshake in tests.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0];
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
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
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

/// Standard base64 with padding.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handshake_matches_the_rfc_example() {
        assert_eq!(
            websocket_accept("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn base64_pads_like_the_rfc_4648_vectors() {
        for (raw, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(raw.as_bytes()), encoded);
        }
    }

    #[test]
    fn a_text_frame_is_masked_and_reads_back() {
        let frame = text_frame(b"Hello", [0x37, 0xfa, 0x21, 0x3d]);
        // The masked "Hello" example of RFC 6455, section 5.7.
        assert_eq!(
            frame,
            [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
        let (opcode, payload) = read_frame(&mut frame.as_slice()).unwrap();
        assert_eq!((opcode, payload.as_slice()), (1, b"Hello".as_slice()));
        let long = vec![b'x'; 300];
        let (_, payload) = read_frame(&mut text_frame(&long, [1, 2, 3, 4]).as_slice()).unwrap();
        assert_eq!(payload, long);
    }
}
