//! Noticing a client that hung up while its request still runs (a long command in a container).
//!
//! actix-web keeps running a handler after its client is gone, so the server keeps a duplicate of
//! each connection's socket (taken when the connection opens) and a handler can wait for
//! [`hung_up`]: the socket reads end-of-file. A client that only half-closes its side after
//! sending counts as gone too.

use std::any::Any;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::dev::Extensions;

/// A duplicate of the connection's socket, kept as long as the connection.
#[derive(Clone)]
struct ClientSocket(Arc<OwnedFd>);

/// `HttpServer::on_connect`: remembers a duplicate of each TCP connection's socket.
pub fn remember_socket(connection: &dyn Any, data: &mut Extensions) {
    if let Some(stream) = connection.downcast_ref::<actix_web::rt::net::TcpStream>()
        && let Ok(fd) = stream.as_fd().try_clone_to_owned()
    {
        data.insert(ClientSocket(Arc::new(fd)));
    }
}

/// Resolves when the request's client has closed its connection; never when that can not be
/// known (no socket remembered, as in in-process tests).
pub async fn hung_up(req: &HttpRequest) {
    let Some(ClientSocket(fd)) = req.conn_data::<ClientSocket>().cloned() else {
        return std::future::pending().await;
    };
    let watch = async move {
        let dup = fd.try_clone().ok()?;
        let std_stream = std::net::TcpStream::from(dup);
        std_stream.set_nonblocking(true).ok()?;
        let stream = tokio::net::TcpStream::from_std(std_stream).ok()?;
        let mut byte = [0u8; 1];
        loop {
            stream.readable().await.ok()?;
            match stream.peek(&mut byte).await {
                Ok(0) => return Some(()),
                // Bytes of a next request: the client is there; look again later.
                Ok(_) => tokio::time::sleep(Duration::from_millis(500)).await,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return Some(()),
            }
        }
    };
    if watch.await.is_none() {
        std::future::pending::<()>().await;
    }
}
