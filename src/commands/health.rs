//! `exhibit health`: the probe container health checks run, where no curl
//! exists.

use crate::commands::outln;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;

use crate::cli::{Cli, Failure};

/// Asks the agent for /healthz, at `addr`, else at the config's
/// `admin.listen` (when there is a config), else at 127.0.0.1:9464; exits
/// 0 when it answers 200.
pub(crate) fn exec(cli: &Cli, addr: Option<SocketAddr>) -> Result<ExitCode, Failure> {
    let addr = match addr {
        Some(a) => a,
        None => match super::load_config(cli, false)? {
            Some(c) => reachable(c.admin.listen),
            None => crate::config::AdminConfig::default().listen,
        },
    };
    Ok(probe(addr))
}

/// An agent listening on every address (`0.0.0.0`, `::`) is reached on
/// loopback.
fn reachable(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), listen.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), listen.port())
        }
        _ => listen,
    }
}

fn probe(addr: SocketAddr) -> ExitCode {
    use std::io::{Read, Write};
    let timeout = std::time::Duration::from_secs(5);
    let probe = || -> std::io::Result<String> {
        let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
        let mut head = String::new();
        s.take(64 * 1024).read_to_string(&mut head)?;
        Ok(head)
    };
    match probe() {
        Ok(resp) if resp.starts_with("HTTP/1.1 200") => {
            outln!("healthy");
            ExitCode::SUCCESS
        }
        Ok(resp) => {
            eprintln!("unhealthy: {}", resp.lines().next().unwrap_or(""));
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("unhealthy: {addr}: {e}");
            ExitCode::from(1)
        }
    }
}
