//! The host port probe: a port is free when we can bind it on every address the manager publishes on.

use std::net::{Ipv4Addr, TcpListener};

use cm_core::PortProbe;

/// Probes ports by binding them briefly on 0.0.0.0 (which also covers 127.0.0.1).
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpPortProbe;

impl PortProbe for TcpPortProbe {
    fn is_free(&self, port: u16) -> bool {
        // Binding the wildcard fails when any address holds the port, loopback included.
        TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_port_is_busy_and_a_released_one_free() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(!TcpPortProbe.is_free(port));
        drop(listener);
        assert!(TcpPortProbe.is_free(port));
    }
}
