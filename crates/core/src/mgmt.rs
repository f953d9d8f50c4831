//! OpenVPN's live client list, from the management interface (`status 3`)
//! or a status file (`status-version 2` or `3`), and `client-kill`.

use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveClient {
    /// The username, else the common name; empty for a client that sent
    /// no username and has no common name.
    pub username: String,
    /// The username is one the client sent (not the common name standing
    /// in): only then does it name the user. A client that sent none is
    /// known by its sign-in, found by address and connect time.
    pub named: bool,
    /// As `names::canonical_ip` spells it.
    pub real_ip: String,
    /// None where OpenVPN prints no port (IPv6 clients).
    pub real_port: Option<i64>,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub connected_at: i64,
    pub client_id: Option<i64>,
}

/// A parsed status report.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Status {
    pub clients: Vec<LiveClient>,
    /// CLIENT_LIST rows that could not be read: a client-controlled field
    /// (a username still in its handshake) with the separator in it, or a
    /// bad number. Whoever they are, they may be live: the sweep closes no
    /// session as lost while there are any.
    pub unreadable: usize,
}

/// Parse a status report (version 2 with commas, or 3 with tabs). Columns
/// are found by their header names, so added columns do not break it. A
/// row that does not fit its header is counted, never fatal.
pub fn parse_status(text: &str) -> Result<Status> {
    let mut header: Option<Vec<String>> = None;
    let mut out = Status::default();
    for line in text.lines() {
        let sep = if line.contains('\t') { '\t' } else { ',' };
        let cells: Vec<&str> = line.split(sep).collect();
        match cells.first().copied() {
            Some("HEADER") if cells.get(1) == Some(&"CLIENT_LIST") => {
                header = Some(cells[1..].iter().map(|s| s.to_string()).collect());
            }
            Some("CLIENT_LIST") => {
                let h = header.as_ref().context("CLIENT_LIST before its HEADER line")?;
                if cells.len() != h.len() {
                    out.unreadable += 1;
                    continue;
                }
                let col = |name: &str| -> Option<&str> {
                    h.iter().position(|c| c == name).and_then(|i| cells.get(i)).copied()
                };
                let num = |name: &str| -> Result<i64> {
                    col(name).and_then(|v| v.trim().parse().ok()).with_context(|| format!("bad {name} in status line"))
                };
                let cn = col("Common Name").unwrap_or("");
                let (username, named) = match col("Username") {
                    Some(u) if !u.is_empty() && u != "UNDEF" => (u, true),
                    _ => (if cn == "UNDEF" { "" } else { cn }, false),
                };
                let addressed = ["Virtual Address", "Virtual IPv6 Address"]
                    .iter()
                    .any(|c| col(c).is_some_and(|v| !v.is_empty() && v != "UNDEF"));
                if username.is_empty() && !addressed {
                    // Still in its TLS handshake: not authenticated, no session
                    // yet. (A client that sent no username has an address
                    // once connected.)
                    continue;
                }
                let (real_ip, real_port) = split_addr(col("Real Address").unwrap_or(""));
                let (Ok(bytes_in), Ok(bytes_out), Ok(connected_at)) =
                    (num("Bytes Received"), num("Bytes Sent"), num("Connected Since (time_t)"))
                else {
                    out.unreadable += 1;
                    continue;
                };
                out.clients.push(LiveClient {
                    username: username.to_string(),
                    named,
                    real_ip,
                    real_port,
                    bytes_in,
                    bytes_out,
                    connected_at,
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

/// The Real Address column: "192.0.2.2:50000", "[2001:db8::1]:50000", or
/// an IPv6 address alone (OpenVPN 2.6 prints IPv6 clients without a port),
/// possibly after a protocol prefix ("udp4:", "tcp6-server:").
pub fn split_addr(a: &str) -> (String, Option<i64>) {
    use std::net::{IpAddr, Ipv4Addr};
    let a = match a.split_once(':') {
        Some((proto, rest)) if proto.starts_with("udp") || proto.starts_with("tcp") => rest,
        _ => a,
    };
    if a.parse::<IpAddr>().is_ok() {
        return (crate::names::canonical_ip(a), None);
    }
    if let Some((ip, port)) = a.strip_prefix('[').and_then(|r| r.split_once("]:")) {
        if let (Ok(_), Ok(port)) = (ip.parse::<IpAddr>(), port.parse::<u16>()) {
            return (crate::names::canonical_ip(ip), Some(i64::from(port)));
        }
    }
    if let Some((ip, port)) = a.rsplit_once(':') {
        if let (Ok(_), Ok(port)) = (ip.parse::<Ipv4Addr>(), port.parse::<u16>()) {
            return (ip.to_string(), Some(i64::from(port)));
        }
    }
    (a.to_string(), None)
}

/// The most lines a `status 3` reply may have before we stop reading: far
/// more than one OpenVPN process serves clients.
const MAX_STATUS_LINES: usize = 1_000_000;

/// Pure apart from `next_line`: collect a `status 3` reply up to its END
/// line, skipping real-time `>` notifications (`>CLIENT:…`, `>BYTECOUNT…`)
/// that the interface may interleave, and parse it.
pub fn read_status_reply(mut next_line: impl FnMut() -> Result<String>) -> Result<Status> {
    let mut text = String::new();
    for _ in 0..MAX_STATUS_LINES {
        let l = next_line()?;
        if l == "END" {
            return parse_status(&text);
        }
        if l.starts_with('>') {
            continue;
        }
        if l.starts_with("ERROR") {
            bail!("management interface: {}", crate::names::for_log(&l));
        }
        text.push_str(&l);
        text.push('\n');
    }
    bail!("management interface: status reply longer than {MAX_STATUS_LINES} lines")
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

    /// `status 3`, up to its END line.
    pub fn status(&mut self) -> Result<Status> {
        self.send("status 3")?;
        read_status_reply(|| self.line())
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
        let v = parse_status(V3).unwrap().clients;
        assert_eq!(
            v,
            vec![LiveClient {
                username: "alice".into(),
                named: true,
                real_ip: "192.0.2.2".into(),
                real_port: Some(50123),
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
        assert_eq!(parse_status(&v2).unwrap().clients.len(), 1);
        assert!(parse_status("garbage\n").is_err());
        let handshaking = V3.replace("\talice\t", "\tUNDEF\t").replace("\t10.99.0.2\t", "\t\t");
        assert_eq!(
            parse_status(&handshaking).unwrap(),
            Status::default(),
            "clients still in their handshake are skipped"
        );
        // A client that sent no username, connected: kept, named by nobody.
        let unnamed = V3.replace("\talice\t", "\tUNDEF\t");
        let c = &parse_status(&unnamed).unwrap().clients;
        assert_eq!((c.len(), c[0].username.as_str(), c[0].named), (1, "", false));
        let by_cert = V3.replace("\talice\t7", "\tUNDEF\t7");
        let c = &parse_status(&by_cert).unwrap().clients;
        assert_eq!((c[0].username.as_str(), c[0].named), ("alice", false), "the common name stands in");
        let empty = "HEADER,CLIENT_LIST,Common Name,Real Address\nEND\n";
        assert_eq!(parse_status(empty).unwrap(), Status::default());
    }

    /// A client still in its handshake controls its username: a comma in it
    /// must not break the whole report (status-version 2 is comma-separated).
    #[test]
    fn a_row_that_does_not_fit_is_counted_not_fatal() {
        let v2 = V3.replace('\t', ",");
        let pending = "CLIENT_LIST,x,192.0.2.9:4000,,,0,0,2026-11-22 13:59:00,1795355940,a,b,UNDEF,0,AES-256-GCM\n";
        let text = v2.replacen("HEADER,ROUTING_TABLE", &format!("{pending}HEADER,ROUTING_TABLE"), 1);
        let s = parse_status(&text).unwrap();
        assert_eq!((s.clients.len(), s.unreadable), (1, 1));
        let bad_number = v2.replace(",12345,", ",lots,");
        assert_eq!(parse_status(&bad_number).unwrap().unreadable, 1);
    }

    #[test]
    fn addresses() {
        assert_eq!(split_addr("192.0.2.2:1194"), ("192.0.2.2".into(), Some(1194)));
        assert_eq!(split_addr("udp4:192.0.2.2:1194"), ("192.0.2.2".into(), Some(1194)));
        assert_eq!(split_addr("[2001:db8::1]:1194"), ("2001:db8::1".into(), Some(1194)));
        // OpenVPN 2.6 prints IPv6 clients without a port: the last group is
        // part of the address, not a port.
        assert_eq!(split_addr("2001:db8::1:1194"), ("2001:db8::1:1194".into(), None));
        assert_eq!(split_addr("2001:db8::2"), ("2001:db8::2".into(), None));
        assert_eq!(split_addr("::ffff:192.0.2.2"), ("192.0.2.2".into(), None));
        assert_eq!(split_addr("tcp6-server:2001:db8::2"), ("2001:db8::2".into(), None));
    }

    #[test]
    fn status_replies_skip_notifications() {
        let mut lines = V3.lines().map(str::to_string).collect::<Vec<_>>();
        lines.insert(2, ">CLIENT:ESTABLISHED,7".into());
        lines.insert(3, ">BYTECOUNT_CLI:7,1,2".into());
        lines.push("END".into());
        let mut it = lines.into_iter();
        let s = read_status_reply(|| it.next().context("eof")).unwrap();
        assert_eq!(s.clients.len(), 1);
        let mut err = vec!["ERROR: unknown command".to_string()].into_iter();
        assert!(read_status_reply(|| err.next().context("eof")).is_err());
    }
}
