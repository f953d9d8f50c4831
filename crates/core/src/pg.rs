//! A small blocking PostgreSQL client for the shared store.
//!
//! The hooks are short-lived static executables: one connection, a few
//! statements, exit. The well-kept asynchronous clients bring a runtime
//! with them; this one is plain blocking I/O with socket time limits, and
//! leaves the wire format and SCRAM to `postgres-protocol` (the crate the
//! rust-postgres clients themselves are built on). Every statement goes
//! through the extended protocol in one round trip (parse, bind, execute,
//! sync), with parameters and results in text form.

use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::sasl::{self, ScramSha256};
use postgres_protocol::message::{backend, frontend};
use postgres_protocol::IsNull;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

/// Where the server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    /// A directory holding `.s.PGSQL.<port>`.
    Socket(PathBuf),
    Tcp(String),
}

/// How to reach a server. The password never comes from the URL: it is
/// read from a pgpass file when the connection is made.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    pub host: Host,
    pub port: u16,
    pub user: String,
    pub dbname: String,
    pub passfile: Option<PathBuf>,
    pub tls: Tls,
    pub connect_timeout: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tls {
    Disable,
    /// Verify the server's certificate against this CA file and its name.
    VerifyFull(PathBuf),
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// The URL without secrets (there are none in it), for messages.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Socket(dir) => write!(f, "postgresql://{}@/{}?host={}", self.user, self.dbname, dir.display())?,
            Host::Tcp(h) if h.contains(':') => {
                write!(f, "postgresql://{}@[{h}]:{}/{}", self.user, self.port, self.dbname)?
            }
            Host::Tcp(h) => write!(f, "postgresql://{}@{h}:{}/{}", self.user, self.port, self.dbname)?,
        }
        Ok(())
    }
}

const DEFAULT_SOCKET_DIR: &str = "/run/postgresql";

impl Target {
    /// Parses `postgresql://[user@][host][:port][/dbname][?param=value&...]`
    /// (libpq's URI form). Parameters: `host` (a socket directory),
    /// `port`, `user`, `dbname`, `passfile`, `sslmode` (`disable` or
    /// `verify-full`), `sslrootcert`, `connect_timeout` (seconds).
    pub fn parse(url: &str) -> Result<Target, String> {
        let rest = url
            .strip_prefix("postgresql://")
            .or_else(|| url.strip_prefix("postgres://"))
            .ok_or("a PostgreSQL URL starts with postgresql://")?;
        let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = main.split_once('/').unwrap_or((main, ""));
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let mut user = None;
        if let Some(u) = userinfo {
            if u.contains(':') {
                return Err("no password in the URL: put it in a pgpass file (passfile=...)".into());
            }
            user = Some(decode(u)?);
        }
        let (host, port) = split_host_port(hostport)?;
        let mut host = host.map(|h| if h.starts_with('/') { Host::Socket(h.into()) } else { Host::Tcp(h) });
        let mut port = port;
        let mut dbname = (!path.is_empty()).then(|| decode(path)).transpose()?;
        let mut passfile = None;
        let mut sslmode = None;
        let mut rootcert = None;
        let mut timeout = Duration::from_secs(5);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| format!("URL parameter {pair:?} has no value"))?;
            let v = decode(v)?;
            match k {
                "host" if v.starts_with('/') => host = Some(Host::Socket(v.into())),
                "host" => host = Some(Host::Tcp(v)),
                "port" => port = Some(v.parse().map_err(|_| format!("bad port {v:?}"))?),
                "user" => user = Some(v),
                "dbname" => dbname = Some(v),
                "passfile" => passfile = Some(PathBuf::from(v)),
                "sslmode" => sslmode = Some(v),
                "sslrootcert" => rootcert = Some(PathBuf::from(v)),
                "connect_timeout" => {
                    let s: u64 = v.parse().map_err(|_| format!("bad connect_timeout {v:?}"))?;
                    timeout = Duration::from_secs(s.clamp(1, 300));
                }
                "password" => return Err("no password in the URL: put it in a pgpass file (passfile=...)".into()),
                _ => return Err(format!("unknown URL parameter {k:?}")),
            }
        }
        let host = host.unwrap_or_else(|| Host::Socket(DEFAULT_SOCKET_DIR.into()));
        let user = user.ok_or("the URL names no user (postgresql://USER@host/dbname)")?;
        let loopback = matches!(&host, Host::Tcp(h) if h == "localhost" || h == "::1" || h.starts_with("127."));
        let tls = match (sslmode.as_deref(), rootcert) {
            (Some("disable"), _) => Tls::Disable,
            (None, None) if loopback || matches!(host, Host::Socket(_)) => Tls::Disable,
            (None | Some("verify-full"), Some(ca)) => Tls::VerifyFull(ca),
            (None | Some("verify-full"), None) => {
                return Err("a server off this machine needs TLS: add sslrootcert=/path/to/ca.pem (or sslmode=disable on a private network)".into())
            }
            (Some(m), _) => return Err(format!("sslmode {m:?} is not supported: use verify-full or disable")),
        };
        if matches!(host, Host::Socket(_)) && matches!(tls, Tls::VerifyFull(_)) {
            return Err("TLS over a Unix socket makes no sense: drop sslrootcert or use a TCP host".into());
        }
        Ok(Target {
            dbname: dbname.unwrap_or_else(|| user.clone()),
            host,
            port: port.unwrap_or(5432),
            user,
            passfile,
            tls,
            connect_timeout: timeout,
        })
    }
}

fn split_host_port(s: &str) -> Result<(Option<String>, Option<u16>), String> {
    let bad_port = |p: &str| format!("bad port {p:?}");
    if let Some(r) = s.strip_prefix('[') {
        let (h, tail) = r.split_once(']').ok_or("unclosed [ in the URL's host")?;
        let port = match tail.strip_prefix(':') {
            Some(p) => Some(p.parse().map_err(|_| bad_port(p))?),
            None if tail.is_empty() => None,
            None => return Err(format!("unexpected {tail:?} after the host")),
        };
        return Ok((Some(h.to_string()), port));
    }
    let (h, p) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p.parse().map_err(|_| bad_port(p))?)),
        None => (s, None),
    };
    Ok(((!h.is_empty()).then(|| h.to_string()), p))
}

/// Percent-decoding of one URL component.
fn decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or("bad % escape in the URL")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| "bad % escape in the URL")?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the URL is not UTF-8 once decoded".into())
}

/// What went wrong, sorted by what the caller does about it.
#[derive(Debug)]
pub enum Error {
    /// The server could not be reached, or the connection broke: the
    /// service is unavailable (fail closed, try again later).
    Unreachable(String),
    /// The server answered with an error.
    Server { code: String, message: String },
    /// Something this client does not accept (configuration, protocol).
    Client(String),
}

impl Error {
    /// SQLSTATE of a server error.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Server { code, .. } => Some(code),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Unreachable(m) => write!(f, "PostgreSQL unreachable: {m}"),
            Error::Server { code, message } => write!(f, "PostgreSQL: {message} ({code})"),
            Error::Client(m) => write!(f, "PostgreSQL: {m}"),
        }
    }
}

impl std::error::Error for Error {}

fn broken(e: io::Error) -> Error {
    Error::Unreachable(e.to_string())
}

enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.flush(),
            Stream::Tcp(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// A value to bind; text form, with the type PostgreSQL should give it
/// (0: let the server infer it from where it is used).
pub struct Param<'a> {
    pub text: Option<std::borrow::Cow<'a, str>>,
    pub oid: u32,
}

pub const INT8: u32 = 20;
pub const TEXT: u32 = 25;
pub const FLOAT8: u32 = 701;
pub const BYTEA: u32 = 17;

/// One result row, each column in text form (None for NULL).
pub type Row = Vec<Option<String>>;

pub struct Outcome {
    pub rows: Vec<Row>,
    /// Rows inserted, updated or deleted.
    pub affected: u64,
}

pub struct Client {
    stream: Stream,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// The connection is in a state it cannot leave (broken mid-message).
    poisoned: bool,
}

/// The largest message accepted from the server; tollgate's rows are small.
const MAX_MESSAGE: usize = 64 << 20;

impl Client {
    /// Connects and signs in. `io_timeout` bounds every later wait for
    /// the server, `settings` go into the start-up packet (run-time
    /// parameters such as `lock_timeout`).
    pub fn connect(t: &Target, io_timeout: Duration, settings: &[(&str, &str)]) -> Result<Client, Error> {
        let stream = match &t.host {
            Host::Socket(dir) => {
                let path = dir.join(format!(".s.PGSQL.{}", t.port));
                let s =
                    UnixStream::connect(&path).map_err(|e| Error::Unreachable(format!("{}: {e}", path.display())))?;
                s.set_read_timeout(Some(io_timeout)).map_err(broken)?;
                s.set_write_timeout(Some(io_timeout)).map_err(broken)?;
                Stream::Unix(s)
            }
            Host::Tcp(h) => {
                let s = tcp_connect(h, t.port, t.connect_timeout)?;
                s.set_read_timeout(Some(io_timeout)).map_err(broken)?;
                s.set_write_timeout(Some(io_timeout)).map_err(broken)?;
                s.set_nodelay(true).map_err(broken)?;
                match &t.tls {
                    Tls::Disable => Stream::Tcp(s),
                    Tls::VerifyFull(ca) => Stream::Tls(Box::new(start_tls(s, h, ca)?)),
                }
            }
        };
        let mut c = Client {
            stream,
            rbuf: BytesMut::with_capacity(8192),
            wbuf: BytesMut::with_capacity(1024),
            poisoned: false,
        };
        let mut params = vec![
            ("user", t.user.as_str()),
            ("database", t.dbname.as_str()),
            ("application_name", "tollgate"),
            ("client_encoding", "UTF8"),
            ("DateStyle", "ISO"),
        ];
        params.extend_from_slice(settings);
        frontend::startup_message(params.iter().copied(), &mut c.wbuf).map_err(broken)?;
        c.send()?;
        c.authenticate(t)?;
        loop {
            match c.read()? {
                backend::Message::ReadyForQuery(_) => return Ok(c),
                backend::Message::ErrorResponse(e) => return Err(server_error(&e)),
                _ => {}
            }
        }
    }

    fn authenticate(&mut self, t: &Target) -> Result<(), Error> {
        // The URL's passfile, else PGPASSFILE (for the CLI; OpenVPN gives
        // hooks an environment of its own).
        let passfile = t.passfile.clone().or_else(|| std::env::var_os("PGPASSFILE").map(PathBuf::from));
        let password = || -> Result<String, Error> {
            let Some(file) = &passfile else {
                return Err(Error::Client(format!(
                    "the server wants a password for {}: name a pgpass file with passfile=... in the URL",
                    t.user
                )));
            };
            let host = match &t.host {
                Host::Socket(_) => "localhost",
                Host::Tcp(h) => h,
            };
            pgpass(file, host, t.port, &t.dbname, &t.user)
                .map_err(Error::Client)?
                .ok_or_else(|| Error::Client(format!("{} has no line for {}", file.display(), t.user)))
        };
        loop {
            match self.read()? {
                backend::Message::AuthenticationOk => return Ok(()),
                backend::Message::AuthenticationCleartextPassword => {
                    if matches!(t.host, Host::Tcp(_)) && matches!(t.tls, Tls::Disable) && !is_loopback(&t.host) {
                        return Err(Error::Client("refusing to send a clear-text password without TLS".into()));
                    }
                    frontend::password_message(password()?.as_bytes(), &mut self.wbuf).map_err(broken)?;
                    self.send()?;
                }
                backend::Message::AuthenticationMd5Password(body) => {
                    let hash = postgres_protocol::authentication::md5_hash(
                        t.user.as_bytes(),
                        password()?.as_bytes(),
                        body.salt(),
                    );
                    frontend::password_message(hash.as_bytes(), &mut self.wbuf).map_err(broken)?;
                    self.send()?;
                }
                backend::Message::AuthenticationSasl(body) => {
                    let mut mechs = body.mechanisms();
                    let mut scram = false;
                    while let Some(m) = mechs.next().map_err(|e| Error::Client(e.to_string()))? {
                        scram |= m == sasl::SCRAM_SHA_256;
                    }
                    if !scram {
                        return Err(Error::Client("the server offers no SASL mechanism tollgate knows".into()));
                    }
                    let mut s = ScramSha256::new(password()?.as_bytes(), sasl::ChannelBinding::unsupported());
                    frontend::sasl_initial_response(sasl::SCRAM_SHA_256, s.message(), &mut self.wbuf)
                        .map_err(broken)?;
                    self.send()?;
                    match self.read()? {
                        backend::Message::AuthenticationSaslContinue(b) => {
                            s.update(b.data()).map_err(|e| Error::Client(format!("SCRAM: {e}")))?
                        }
                        backend::Message::ErrorResponse(e) => return Err(server_error(&e)),
                        _ => return Err(Error::Client("unexpected message during SCRAM".into())),
                    }
                    frontend::sasl_response(s.message(), &mut self.wbuf).map_err(broken)?;
                    self.send()?;
                    match self.read()? {
                        backend::Message::AuthenticationSaslFinal(b) => {
                            s.finish(b.data()).map_err(|e| Error::Client(format!("SCRAM: {e}")))?
                        }
                        backend::Message::ErrorResponse(e) => return Err(server_error(&e)),
                        _ => return Err(Error::Client("unexpected message during SCRAM".into())),
                    }
                }
                backend::Message::ErrorResponse(e) => return Err(server_error(&e)),
                _ => {
                    return Err(Error::Client("the server asks for an authentication tollgate does not support".into()))
                }
            }
        }
    }

    /// Runs one statement with parameters; `?`-free PostgreSQL text ($1...).
    pub fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Outcome, Error> {
        if self.poisoned {
            return Err(Error::Unreachable("the connection was lost".into()));
        }
        let types: Vec<u32> = params.iter().map(|p| p.oid).collect();
        frontend::parse("", sql, types, &mut self.wbuf).map_err(broken)?;
        let bound = frontend::bind(
            "",
            "",
            std::iter::empty(),
            params.iter(),
            |p, buf| match &p.text {
                Some(t) => {
                    buf.extend_from_slice(t.as_bytes());
                    Ok(IsNull::No)
                }
                None => Ok(IsNull::Yes),
            },
            std::iter::empty(),
            &mut self.wbuf,
        );
        if bound.is_err() {
            self.wbuf.clear();
            return Err(Error::Client("too many parameters".into()));
        }
        frontend::execute("", 0, &mut self.wbuf).map_err(broken)?;
        frontend::sync(&mut self.wbuf);
        self.send()?;
        let mut out = Outcome { rows: Vec::new(), affected: 0 };
        let mut failed = None;
        loop {
            match self.read()? {
                backend::Message::DataRow(row) => {
                    let buf = row.buffer();
                    let mut r = Vec::new();
                    let mut ranges = row.ranges();
                    while let Some(range) = ranges.next().map_err(|e| self.protocol(e))? {
                        r.push(match range {
                            Some(range) => Some(
                                String::from_utf8(buf[range].to_vec())
                                    .map_err(|_| Error::Client("the server sent a value that is not UTF-8".into()))?,
                            ),
                            None => None,
                        });
                    }
                    out.rows.push(r);
                }
                backend::Message::CommandComplete(c) => {
                    let tag = c.tag().map_err(|e| self.protocol(e))?;
                    // "INSERT 0 3", "UPDATE 2", "DELETE 1", "SELECT 5"
                    out.affected = tag.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0);
                }
                backend::Message::ErrorResponse(e) => failed = Some(server_error(&e)),
                backend::Message::ReadyForQuery(_) => break,
                _ => {}
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// Runs statements without parameters (the simple protocol: several
    /// statements may be separated by semicolons).
    pub fn batch(&mut self, sql: &str) -> Result<(), Error> {
        if self.poisoned {
            return Err(Error::Unreachable("the connection was lost".into()));
        }
        frontend::query(sql, &mut self.wbuf).map_err(broken)?;
        self.send()?;
        let mut failed = None;
        loop {
            match self.read()? {
                backend::Message::ErrorResponse(e) => failed = failed.or(Some(server_error(&e))),
                backend::Message::ReadyForQuery(_) => break,
                _ => {}
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn protocol(&mut self, e: io::Error) -> Error {
        self.poisoned = true;
        Error::Client(format!("protocol error: {e}"))
    }

    fn send(&mut self) -> Result<(), Error> {
        let r = self.stream.write_all(&self.wbuf).and_then(|_| self.stream.flush());
        self.wbuf.clear();
        r.map_err(|e| {
            self.poisoned = true;
            broken(e)
        })
    }

    fn read(&mut self) -> Result<backend::Message, Error> {
        loop {
            if let Some(h) = backend::Header::parse(&self.rbuf).map_err(|e| self.protocol(e))? {
                if h.len() as usize > MAX_MESSAGE {
                    self.poisoned = true;
                    return Err(Error::Client("the server sent an oversized message".into()));
                }
            }
            match backend::Message::parse(&mut self.rbuf).map_err(|e| self.protocol(e))? {
                Some(m) => return Ok(m),
                None => {
                    let mut chunk = [0u8; 8192];
                    let n = match self.stream.read(&mut chunk) {
                        Ok(0) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed the connection")),
                        Ok(n) => Ok(n),
                        Err(e) => Err(e),
                    }
                    .map_err(|e| {
                        self.poisoned = true;
                        broken(e)
                    })?;
                    self.rbuf.extend_from_slice(&chunk[..n]);
                }
            }
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if !self.poisoned {
            frontend::terminate(&mut self.wbuf);
            let _ = self.stream.write_all(&self.wbuf);
        }
    }
}

fn is_loopback(h: &Host) -> bool {
    matches!(h, Host::Tcp(h) if h == "localhost" || h == "::1" || h.starts_with("127."))
}

fn tcp_connect(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, Error> {
    let addrs = (host, port).to_socket_addrs().map_err(|e| Error::Unreachable(format!("{host}: {e}")))?;
    let mut last = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(format!("{a}: {e}")),
        }
    }
    Err(Error::Unreachable(last.unwrap_or_else(|| format!("{host}: no address"))))
}

fn start_tls(
    mut s: TcpStream,
    host: &str,
    ca: &std::path::Path,
) -> Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>, Error> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    let certs =
        CertificateDer::pem_file_iter(ca).map_err(|e| Error::Client(format!("cannot read {}: {e}", ca.display())))?;
    for c in certs {
        let c = c.map_err(|e| Error::Client(format!("{}: {e}", ca.display())))?;
        roots.add(c).map_err(|e| Error::Client(format!("{}: {e}", ca.display())))?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Client(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_string()).map_err(|_| Error::Client(format!("bad host name {host:?}")))?;
    let conn =
        rustls::ClientConnection::new(std::sync::Arc::new(config), name).map_err(|e| Error::Client(e.to_string()))?;
    let mut req = BytesMut::new();
    frontend::ssl_request(&mut req);
    s.write_all(&req).map_err(broken)?;
    let mut answer = [0u8; 1];
    s.read_exact(&mut answer).map_err(broken)?;
    if answer[0] != b'S' {
        return Err(Error::Client("the server does not offer TLS".into()));
    }
    let mut tls = rustls::StreamOwned::new(conn, s);
    // Handshake now, so a certificate problem is reported as one.
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).map_err(|e| Error::Client(format!("TLS with {host}: {e}")))?;
    }
    Ok(tls)
}

fn server_error(e: &backend::ErrorResponseBody) -> Error {
    let mut code = String::new();
    let mut message = String::new();
    let mut fields = e.fields();
    while let Ok(Some(f)) = fields.next() {
        let v = String::from_utf8_lossy(f.value_bytes()).into_owned();
        match f.type_() {
            b'C' => code = v,
            b'M' => message = v,
            _ => {}
        }
    }
    Error::Server { code, message }
}

/// The password for a connection from a pgpass file
/// (`host:port:database:user:password`, `*` matches anything, `\` escapes).
/// Like libpq, the file must not be readable by others.
pub fn pgpass(file: &std::path::Path, host: &str, port: u16, db: &str, user: &str) -> Result<Option<String>, String> {
    use std::os::unix::fs::MetadataExt;
    let f = crate::safefs::open_nofollow(file)
        .map_err(|e| format!("cannot open {}: {e}", file.display()))?
        .ok_or_else(|| format!("{} does not exist", file.display()))?;
    let m = f.metadata().map_err(|e| format!("cannot stat {}: {e}", file.display()))?;
    if m.mode() & 0o007 != 0 {
        return Err(format!("{} is readable by others: chmod o-rwx it", file.display()));
    }
    let mut text = String::new();
    (&f).read_to_string(&mut text).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    Ok(pgpass_lookup(&text, host, port, db, user))
}

/// The password of the first pgpass line that matches.
pub fn pgpass_lookup(text: &str, host: &str, port: u16, db: &str, user: &str) -> Option<String> {
    let port = port.to_string();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = pgpass_fields(line);
        if fields.len() != 5 {
            continue;
        }
        let ok = |pat: &str, v: &str| pat == "*" || pat == v;
        if ok(&fields[0], host) && ok(&fields[1], &port) && ok(&fields[2], db) && ok(&fields[3], user) {
            return Some(fields[4].clone());
        }
    }
    None
}

fn pgpass_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    fields.last_mut().unwrap().push(n);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            _ => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_like_libpq() {
        let t = Target::parse("postgresql://tollgate@db.example.org/tg?sslrootcert=/etc/ca.pem").unwrap();
        assert_eq!(t.host, Host::Tcp("db.example.org".into()));
        assert_eq!((t.port, t.user.as_str(), t.dbname.as_str()), (5432, "tollgate", "tg"));
        assert_eq!(t.tls, Tls::VerifyFull("/etc/ca.pem".into()));

        let t = Target::parse("postgresql://tollgate@/tollgate?host=/tmp/pg&port=6543").unwrap();
        assert_eq!((t.host, t.port), (Host::Socket("/tmp/pg".into()), 6543));
        assert_eq!(t.tls, Tls::Disable);

        let t = Target::parse("postgres://tg@[::1]:5433").unwrap();
        assert_eq!((t.host, t.port, t.dbname.as_str()), (Host::Tcp("::1".into()), 5433, "tg"));

        let t = Target::parse("postgresql://tollgate@").unwrap();
        assert_eq!(t.host, Host::Socket(DEFAULT_SOCKET_DIR.into()));
        assert_eq!(t.to_string(), "postgresql://tollgate@/tollgate?host=/run/postgresql");
    }

    #[test]
    fn urls_refuse_passwords_and_cleartext_to_other_machines() {
        for (url, why) in [
            ("postgresql://tg:secret@localhost/tg", "no password in the URL"),
            ("postgresql://tg@localhost/tg?password=x", "no password in the URL"),
            ("postgresql://tg@db.example.org/tg", "needs TLS"),
            ("postgresql://tg@db.example.org/tg?sslmode=require", "not supported"),
            ("postgresql://localhost/tg", "names no user"),
            ("mysql://tg@localhost/tg", "starts with postgresql://"),
            ("postgresql://tg@localhost:99999/tg", "bad port"),
            ("postgresql://tg@localhost/tg?colour=blue", "unknown URL parameter"),
        ] {
            let e = Target::parse(url).unwrap_err();
            assert!(e.contains(why), "{url}: {e}");
        }
        let t = Target::parse("postgresql://tg@10.0.0.5/tg?sslmode=disable").unwrap();
        assert_eq!(t.tls, Tls::Disable);
    }

    /// A real PostgreSQL server with TLS on loopback: verify-full with its
    /// CA and name signs in (SCRAM, password from the pgpass file) and runs
    /// statements; another CA, or a name the certificate does not carry,
    /// is refused before any password is sent.
    #[test]
    fn tls_checks_the_certificate_and_the_name() {
        let d = crate::store::tests::tempdir::Dir::new();
        let sh = |script: &str| {
            let ok = std::process::Command::new("bash").arg("-c").arg(script).current_dir(&d.path).status().unwrap();
            assert!(ok.success(), "{script}");
        };
        // A CA, a server certificate for "localhost", and a second CA.
        sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.crt -days 1 -subj /CN=test-ca 2>/dev/null
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout other.key -out other.crt -days 1 -subj /CN=other-ca 2>/dev/null
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key -out server.csr -subj /CN=localhost 2>/dev/null
            printf 'subjectAltName=DNS:localhost\n' > san.ext
            openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 1 -extfile san.ext 2>/dev/null
            chmod 755 .");
        let port = 20000 + (std::process::id() % 20000) as u16;
        let port_text = port.to_string();
        let pg = crate::store::tests::start_pg_server(
            "tg-pgtest-tls",
            &[("PG_TLS", d.path.as_os_str()), ("PG_PORT", port_text.as_ref())],
        );
        let admin =
            Target::parse(&format!("postgresql://postgres@/postgres?host={}&port={port}", pg.display())).unwrap();
        let mut c = Client::connect(&admin, Duration::from_secs(30), &[]).unwrap();
        c.batch("CREATE ROLE fleet LOGIN PASSWORD 'tls pw'").unwrap();
        let pass = d.path.join("pgpass");
        std::fs::write(&pass, "*:*:*:fleet:tls pw\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
        let url = |host: &str, ca: &str| {
            format!(
                "postgresql://fleet@{host}:{port}/postgres?passfile={}&sslrootcert={}/{ca}",
                pass.display(),
                d.path.display()
            )
        };

        let t = Target::parse(&url("localhost", "ca.crt")).unwrap();
        assert!(matches!(t.tls, Tls::VerifyFull(_)));
        let mut c = Client::connect(&t, Duration::from_secs(30), &[]).unwrap();
        let out = c.query("SELECT ssl::int FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).unwrap();
        assert_eq!(out.rows, vec![vec![Some("1".to_string())]], "the connection is encrypted");

        let e = Client::connect(&Target::parse(&url("localhost", "other.crt")).unwrap(), Duration::from_secs(30), &[])
            .err()
            .expect("a certificate from another CA must be refused")
            .to_string();
        assert!(e.contains("TLS with localhost") && e.contains("certificate"), "{e}");
        let e = Client::connect(&Target::parse(&url("127.0.0.1", "ca.crt")).unwrap(), Duration::from_secs(30), &[])
            .err()
            .expect("a certificate for another name must be refused")
            .to_string();
        assert!(e.contains("TLS with 127.0.0.1") && e.contains("certificate"), "{e}");
    }

    #[test]
    fn pgpass_lines_match_with_wildcards_and_escapes() {
        let d = crate::store::tests::tempdir::Dir::new();
        let f = d.path.join("pgpass");
        std::fs::write(&f, "# comment\nother:*:*:*:no\nlocalhost:5432:tg:tollgate:s3\\:cret\\\\\n*:*:*:*:fallback\n")
            .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(pgpass(&f, "localhost", 5432, "tg", "tollgate").unwrap().as_deref(), Some("s3:cret\\"));
        assert_eq!(pgpass(&f, "db", 5432, "tg", "tollgate").unwrap().as_deref(), Some("fallback"));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(pgpass(&f, "localhost", 5432, "tg", "tollgate").unwrap_err().contains("readable by others"));
    }
}
