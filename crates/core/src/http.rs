//! Pure HTTP/1.1 request parsing for `tollgate web` (outside input: fuzzed
//! by `fuzz/fuzz_targets/web_request.rs`). Only what the pages need: the
//! method, the path and its query, cookies, a bearer token, the address a
//! trusted proxy forwards, and a small form body.

/// The longest request head read (request line and headers).
pub const MAX_HEAD: usize = 16 * 1024;
/// The longest body read (the login page's form).
pub const MAX_BODY: usize = 4 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    /// The path, without the query.
    pub path: String,
    pub query: String,
    /// The `Cookie` header(s), joined.
    pub cookies: String,
    /// `Authorization: Bearer TOKEN`: the token.
    pub bearer: Option<String>,
    /// The last address of `X-Forwarded-For` (the one the nearest proxy
    /// added), for a request from a trusted proxy.
    pub forwarded_for: Option<String>,
    pub content_length: usize,
}

/// Parse a request head from the bytes read so far: `Ok(None)` when more
/// are needed, else the head and where the body starts. Anything odd (a
/// bad length, a transfer encoding, an absolute or non-`/` target) is an
/// error with a reason.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 48];
    let mut req = httparse::Request::new(&mut headers);
    let n = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => return Err("request head too large".into()),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("bad request: {e}")),
    };
    let method = req.method.unwrap_or_default().to_string();
    let target = req.path.unwrap_or_default();
    if !target.starts_with('/') {
        return Err("request target must be a path".into());
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut cookies = Vec::new();
    let mut content_length = None;
    let (mut bearer, mut forwarded_for) = (None, None);
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value).map_err(|_| format!("header {} is not UTF-8", h.name))?;
        if h.name.eq_ignore_ascii_case("cookie") {
            cookies.push(value.to_string());
        } else if h.name.eq_ignore_ascii_case("authorization") {
            let (scheme, token) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
            if scheme.eq_ignore_ascii_case("bearer") && bearer.is_none() {
                bearer = Some(token.trim().to_string());
            }
        } else if h.name.eq_ignore_ascii_case("x-forwarded-for") {
            forwarded_for = value.rsplit(',').next().map(|a| a.trim().to_string()).filter(|a| !a.is_empty());
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let len: usize = value.trim().parse().map_err(|_| "bad Content-Length".to_string())?;
            if content_length.is_some_and(|l| l != len) {
                return Err("conflicting Content-Length".into());
            }
            content_length = Some(len);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err("Transfer-Encoding is not supported".into());
        }
    }
    let content_length = content_length.unwrap_or(0);
    if content_length > MAX_BODY {
        return Err("request body too large".into());
    }
    Ok(Some((
        Head {
            method,
            path: path.to_string(),
            query: query.to_string(),
            cookies: cookies.join("; "),
            bearer,
            forwarded_for,
            content_length,
        },
        n,
    )))
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(cookies: &'a str, name: &str) -> Option<&'a str> {
    cookies.split(';').filter_map(|c| c.trim().split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v)
}

/// Text for HTML (element content and quoted attributes).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The path of an http(s) URL (`/` when it has none).
pub fn url_path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/').map_or("/", |i| &rest[i..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads() {
        let r = b"GET /oidc/login?l=abc HTTP/1.1\r\nHost: x\r\nCookie: a=1; tg=zz\r\n\r\nrest";
        let (h, n) = parse_head(r).unwrap().unwrap();
        assert_eq!((h.method.as_str(), h.path.as_str(), h.query.as_str()), ("GET", "/oidc/login", "l=abc"));
        assert_eq!((cookie(&h.cookies, "tg"), cookie(&h.cookies, "b")), (Some("zz"), None));
        assert_eq!(&r[n..], b"rest");
        assert_eq!(parse_head(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap(), None, "incomplete");
        let api = b"GET /api/v1/usage HTTP/1.1\r\nAuthorization: Bearer  tgapi_x \r\nX-Forwarded-For: 10.0.0.1, 192.0.2.7\r\n\r\n";
        let (h, _) = parse_head(api).unwrap().unwrap();
        assert_eq!((h.bearer.as_deref(), h.forwarded_for.as_deref()), (Some("tgapi_x"), Some("192.0.2.7")));
        let basic = b"GET / HTTP/1.1\r\nAuthorization: Basic eDp5\r\n\r\n";
        assert_eq!(parse_head(basic).unwrap().unwrap().0.bearer, None);
        let post = b"POST /l HTTP/1.1\r\nContent-Length: 5\r\n\r\nl=abc";
        assert_eq!(parse_head(post).unwrap().unwrap().0.content_length, 5);
        for (bad, why) in [
            (&b"GET http://x/ HTTP/1.1\r\n\r\n"[..], "path"),
            (b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n", "Content-Length"),
            (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "conflicting"),
            (b"POST / HTTP/1.1\r\nContent-Length: 99999\r\n\r\n", "too large"),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", "Transfer-Encoding"),
            (b"G\x00T / HTTP/1.1\r\n\r\n", "bad request"),
        ] {
            let e = parse_head(bad).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
        assert!(parse_head(&vec![b'a'; MAX_HEAD]).is_err());
    }

    #[test]
    fn escaping_and_paths() {
        assert_eq!(escape("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        assert_eq!(url_path("https://vpn.example.org/oidc/callback"), "/oidc/callback");
        assert_eq!(url_path("http://127.0.0.1:9000"), "/");
    }
}
