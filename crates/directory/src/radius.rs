//! Password checks against RADIUS servers: the Access-Request (built in
//! `tollgate_core::radius`) to each server in turn, the same packet again
//! after each silent `timeout`, the first verified answer taken.

use std::net::{ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};
use tollgate_core::config::Radius;
use tollgate_core::directory::Answer;
use tollgate_core::radius::{access_request, answer, hex, parse_response, Bad, Login, Response, MAX_PACKET};

use crate::Stop;

fn random<const N: usize>() -> Result<[u8; N], String> {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).map_err(|e| format!("no randomness: {e}"))?;
    Ok(b)
}

/// Ask one server, `tries` times, `timeout` each; the first verified
/// answer wins. `Stop::Reject`: no request can be made of these
/// credentials (on any server); `Stop::Unavailable`: why this one gave no
/// answer.
fn exchange(
    server: &str,
    secret: &[u8],
    l: &Login,
    tries: u64,
    timeout: Duration,
    require_ma: bool,
) -> Result<Response, Stop> {
    let addr = server
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve: {e}"))?
        .next()
        .ok_or("cannot resolve: no address")?;
    let local = if addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let sock = UdpSocket::bind(local).map_err(|e| format!("cannot open a socket: {e}"))?;
    // Connected: only this server's datagrams arrive, and a closed port
    // (ICMP) shows as "connection refused" at once.
    sock.connect(addr).map_err(|e| format!("cannot reach: {e}"))?;
    let (id, authenticator) = (random::<1>()?[0], random::<16>()?);
    let packet = access_request(id, &authenticator, secret, l).map_err(Stop::Reject)?;
    // The last answer that failed verification, if any came.
    let mut invalid: Option<String> = None;
    let mut buf = vec![0u8; MAX_PACKET + 1];
    for _ in 0..tries {
        sock.send(&packet).map_err(|e| format!("cannot send: {e}"))?;
        let until = Instant::now() + timeout;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            sock.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
            match sock.recv(&mut buf) {
                Ok(n) => match parse_response(&buf[..n], id, &authenticator, secret, require_ma) {
                    Ok(r) => return Ok(r),
                    Err(Bad::NotOurs) => {}
                    Err(Bad::Invalid(why)) => invalid = Some(why),
                    Err(Bad::Unsigned) => {
                        return Err("unsigned answer (no Message-Authenticator): make the server sign its \
                                    answers, or set require_message_authenticator = false"
                            .into())
                    }
                },
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => break,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Err("connection refused".into()),
                Err(e) => return Err(format!("cannot receive: {e}").into()),
            }
        }
    }
    Err(invalid
        .unwrap_or_else(|| format!("no answer within {}s (a wrong secret looks the same)", timeout.as_secs()))
        .into())
}

/// Read the shared secret: the file's first line.
fn read_secret(cfg: &Radius) -> Result<Vec<u8>, String> {
    let s = std::fs::read(&cfg.secret_file).map_err(|e| format!("cannot read {}: {e}", cfg.secret_file.display()))?;
    let line = s.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Err(format!("{} holds no secret", cfg.secret_file.display()));
    }
    Ok(line.to_vec())
}

pub fn check(cfg: &Radius, username: &str, password: &str, state: Option<&str>, client_ip: Option<&str>) -> Answer {
    let unavailable = |server: &str, reason: String| Answer::Unavailable { server: server.into(), reason };
    let all = cfg.servers.join(", ");
    if password.is_empty() {
        return Answer::Reject { reason: "empty password".into() };
    }
    let secret = match read_secret(cfg) {
        Ok(s) => s,
        Err(e) => return unavailable(&all, e),
    };
    let state = match state.map(hex) {
        None => None,
        Some(Some(s)) => Some(s),
        Some(None) => return unavailable(&all, "the challenge's state is not hex".into()),
    };
    let login = Login {
        username,
        password,
        state: state.as_deref(),
        calling_station: client_ip,
        nas_identifier: &cfg.nas_identifier,
    };
    let timeout = Duration::from_secs(cfg.timeout_secs);
    let mut why: Vec<(&str, String)> = Vec::new();
    for server in &cfg.servers {
        match exchange(server, &secret, &login, cfg.retries + 1, timeout, cfg.require_message_authenticator) {
            Ok(r) => return answer(&r),
            Err(Stop::Reject(reason)) => return Answer::Reject { reason },
            Err(Stop::Unavailable(e)) => why.push((server, e)),
        }
    }
    match why.as_slice() {
        [(server, reason)] => unavailable(server, reason.clone()),
        _ => unavailable(&all, why.iter().map(|(s, e)| format!("{s}: {e}")).collect::<Vec<_>>().join("; ")),
    }
}
