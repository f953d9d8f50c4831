//! OpenVPN's live client list, from the management interface (`status 3`)
//! or a status file (`status-version 2` or `3`), and `client-kill`.

use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveClient {
    pub username: String,
    pub real_ip: String,
    pub real_port: i64,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub connected_at: i64,
    pub client_id: Option<i64>,
}

/// Parse a status report (version 2 with commas, or 3 with tabs). Columns
/// are found by their header names, so added columns do not break it.
pub fn parse_status(text: &str) -> Result<Vec<LiveClient>> {
    let mut header: Option<Vec<String>> = None;
    let mut out = Vec::new();
    for line in text.lines() {
        let sep = if line.contains('\t') { '\t' } else { ',' };
        let cells: Vec<&str> = line.split(sep).collect();
        match cells.first().copied() {
            Some("HEADER") if cells.get(1) == Some(&"CLIENT_LIST") => {
                header = Some(cells[1..].iter().map(|s| s.to_string()).collect());
            }
            Some("CLIENT_LIST") => {
                let h = header.as_ref().context("CLIENT_LIST before its HEADER line")?;
                let col = |name: &str| -> Option<&str> {
                    h.iter().position(|c| c == name).and_then(|i| cells.get(i)).copied()
                };
                let num = |name: &str| -> Result<i64> {
                    col(name).and_then(|v| v.trim().parse().ok()).with_context(|| format!("bad {name} in status line"))
                };
                let cn = col("Common Name").unwrap_or("");
                let username = match col("Username") {
                    Some(u) if !u.is_empty() && u != "UNDEF" => u,
                    _ => cn,
                };
                if username.is_empty() || username == "UNDEF" {
                    // Still in its TLS handshake: not authenticated, no session yet.
                    continue;
                }
                let (real_ip, real_port) = split_addr(col("Real Address").unwrap_or(""));
                out.push(LiveClient {
                    username: username.to_string(),
                    real_ip,
                    real_port,
                    bytes_in: num("Bytes Received")?,
                    bytes_out: num("Bytes Sent")?,
                    connected_at: num("Connected Since (time_t)")?,
                    client_id: col("Client ID").and_then(|v| v.parse().ok()),
                });
            }
            _ => {}
        }
    }
    if header.is_none() {
        bail!("no CLIENT_LIST header: not a status-version 2 or 3 report");
    }
    Ok(out)
}

/// "192.0.2.2:50000", "[2001:db8::1]:50000" or "2001:db8::1:50000".
fn split_addr(a: &str) -> (String, i64) {
    let a = a.strip_prefix("udp4:").or_else(|| a.strip_prefix("tcp4-server:")).unwrap_or(a);
    match a.rsplit_once(':') {
        Some((ip, port)) if port.parse::<i64>().is_ok() => {
            (ip.trim_start_matches('[').trim_end_matches(']').to_string(), port.parse().unwrap_or(0))
        }
        _ => (a.to_string(), 0),
    }
}

/// A connection to the management interface: `unix:/path` or `HOST:PORT`.
pub struct Management {
    reader: BufReader<Box<dyn ReadWrite>>,
}

trait ReadWrite: std::io::Read + std::io::Write {
    fn dup(&self) -> std::io::Result<Box<dyn ReadWrite>>;
}
impl ReadWrite for std::net::TcpStream {
    fn dup(&self) -> std::io::Result<Box<dyn ReadWrite>> {
        Ok(Box::new(self.try_clone()?))
    }
}
impl ReadWrite for std::os::unix::net::UnixStream {
    fn dup(&self) -> std::io::Result<Box<dyn ReadWrite>> {
        Ok(Box::new(self.try_clone()?))
    }
}

impl Management {
    pub fn connect(addr: &str) -> Result<Management> {
        let timeout = Some(Duration::from_secs(10));
        let stream: Box<dyn ReadWrite> = if let Some(path) = addr.strip_prefix("unix:") {
            let s = std::os::unix::net::UnixStream::connect(path)
                .with_context(|| format!("cannot connect to management socket {path}"))?;
            s.set_read_timeout(timeout)?;
            Box::new(s)
        } else {
            use std::net::ToSocketAddrs;
            let sa = addr
                .to_socket_addrs()
                .with_context(|| format!("bad management address {addr:?}: use unix:/path or HOST:PORT"))?
                .next()
                .context("management address resolves to nothing")?;
            let s = std::net::TcpStream::connect_timeout(&sa, Duration::from_secs(5))
                .with_context(|| format!("cannot connect to management interface {addr}"))?;
            s.set_read_timeout(timeout)?;
            Box::new(s)
        };
        let mut m = Management { reader: BufReader::new(stream) };
        // Greeting: ">INFO:OpenVPN Management Interface ...". A password
        // prompt means management-client-auth or a password file.
        let first = m.line()?;
        if first.starts_with("ENTER PASSWORD") {
            bail!("the management interface asks for a password, which sweep does not support");
        }
        Ok(m)
    }

    fn line(&mut self) -> Result<String> {
        let mut s = String::new();
        let n = self.reader.read_line(&mut s).context("management interface: read failed")?;
        if n == 0 {
            bail!("management interface closed the connection");
        }
        Ok(s.trim_end().to_string())
    }

    fn send(&mut self, cmd: &str) -> Result<()> {
        let mut w = self.reader.get_ref().dup()?;
        w.write_all(format!("{cmd}\n").as_bytes())?;
        w.flush()?;
        Ok(())
    }

    /// `status 3`, up to its END line. Real-time `>` notifications are skipped.
    pub fn status(&mut self) -> Result<Vec<LiveClient>> {
        self.send("status 3")?;
        let mut text = String::new();
        loop {
            let l = self.line()?;
            if l == "END" {
                break;
            }
            if l.starts_with('>') {
                continue;
            }
            if l.starts_with("ERROR") {
                bail!("management interface: {l}");
            }
            text.push_str(&l);
            text.push('\n');
        }
        parse_status(&text)
    }

    /// `client-kill CID HALT`: the client is told to stop, not to reconnect.
    pub fn kill(&mut self, client_id: i64) -> Result<()> {
        self.send(&format!("client-kill {client_id} HALT"))?;
        loop {
            let l = self.line()?;
            if l.starts_with("SUCCESS") {
                return Ok(());
            }
            if l.starts_with("ERROR") {
                bail!("client-kill {client_id}: {l}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V3: &str = "TITLE\tOpenVPN 2.6.14 x86_64-pc-linux-gnu\n\
TIME\t2026-11-22 14:00:00\t1795356000\n\
HEADER\tCLIENT_LIST\tCommon Name\tReal Address\tVirtual Address\tVirtual IPv6 Address\tBytes Received\tBytes Sent\tConnected Since\tConnected Since (time_t)\tUsername\tClient ID\tPeer ID\tData Channel Cipher\n\
CLIENT_LIST\talice\t192.0.2.2:50123\t10.99.0.2\t\t12345\t67890\t2026-11-22 13:59:00\t1795355940\talice\t7\t0\tAES-256-GCM\n\
HEADER\tROUTING_TABLE\tVirtual Address\tCommon Name\tReal Address\tLast Ref\tLast Ref (time_t)\n\
GLOBAL_STATS\tMax bcast/mcast queue length\t0\n";

    #[test]
    fn parses_status_3() {
        let v = parse_status(V3).unwrap();
        assert_eq!(
            v,
            vec![LiveClient {
                username: "alice".into(),
                real_ip: "192.0.2.2".into(),
                real_port: 50123,
                bytes_in: 12345,
                bytes_out: 67890,
                connected_at: 1795355940,
                client_id: Some(7),
            }]
        );
    }

    #[test]
    fn parses_status_2_with_commas() {
        let v2 = V3.replace('\t', ",");
        assert_eq!(parse_status(&v2).unwrap().len(), 1);
        assert!(parse_status("garbage\n").is_err());
        let handshaking = V3.replace("\talice\t", "\tUNDEF\t");
        assert_eq!(parse_status(&handshaking).unwrap(), vec![], "clients still in their handshake are skipped");
        let empty = "HEADER,CLIENT_LIST,Common Name,Real Address\nEND\n";
        assert_eq!(parse_status(empty).unwrap(), vec![]);
    }

    #[test]
    fn addresses() {
        assert_eq!(split_addr("192.0.2.2:1194"), ("192.0.2.2".into(), 1194));
        assert_eq!(split_addr("[2001:db8::1]:1194"), ("2001:db8::1".into(), 1194));
        assert_eq!(split_addr("2001:db8::1:1194"), ("2001:db8::1".into(), 1194));
    }
}
