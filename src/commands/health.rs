//! `exhibit health`: the probe container health checks run, where no curl
//! exists.

use std::process::ExitCode;

/// Asks the agent at `addr` for /healthz; exits 0 when it answers 200.
pub(crate) fn exec(addr: std::net::SocketAddr) -> ExitCode {
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
            println!("healthy");
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
