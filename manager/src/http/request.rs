//! One HTTP/1.1 exchange as the server sees it: the [`Request`] read in full (head and body),
//! and the [`Response`] written back before the connection is closed.

use std::net::SocketAddr;

/// A request read in full.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` bytes).
    pub body: Vec<u8>,
    /// Who sent it.
    pub peer: SocketAddr,
}

impl Request {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The token of an `Authorization: Bearer TOKEN` header.
    pub fn bearer(&self) -> Option<&str> {
        let value = self.header("authorization")?;
        let (scheme, token) = value.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty())
    }
}

/// A response; the connection is closed after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A plain-text response.
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into().into_bytes(),
        }
    }

    /// A JSON response.
    pub fn json(status: u16, body: &serde_json::Value) -> Response {
        let mut bytes = body.to_string().into_bytes();
        bytes.push(b'\n');
        Response {
            status,
            content_type: "application/json",
            body: bytes,
        }
    }

    /// A JSON error: `{"error": message}`.
    pub fn error(status: u16, message: impl Into<String>) -> Response {
        Response::json(status, &serde_json::json!({ "error": message.into() }))
    }

    /// The bytes on the wire: status line, headers, body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        let mut out = head.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

/// The reason phrase of the status codes this server answers with.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// The parts of a request head that decide how to read the rest.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    /// The method.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// `Content-Length` (0 without one).
    pub length: usize,
    /// Whether the client waits for `100 Continue` before sending its body.
    pub expects_continue: bool,
}

/// Why a request head is refused; each maps to a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// Not `METHOD PATH HTTP/1.x`, or a header line without `:`, or not text.
    Malformed,
    /// `Transfer-Encoding` (chunked bodies are not taken).
    Chunked,
    /// A `Content-Length` that is not a number.
    BadLength,
}

impl HeadError {
    /// The response to a head refused for this reason.
    pub fn response(self) -> Response {
        match self {
            HeadError::Malformed => Response::error(400, "malformed request head"),
            HeadError::Chunked => Response::error(
                411,
                "chunked bodies are not accepted: send a Content-Length",
            ),
            HeadError::BadLength => Response::error(400, "Content-Length is not a number"),
        }
    }
}

/// Parses a request head (up to, not including, the blank line).
pub fn parse_head(bytes: &[u8]) -> Result<Head, HeadError> {
    let text = std::str::from_utf8(bytes).map_err(|_| HeadError::Malformed)?;
    let mut lines = text.split("\r\n");
    let first = lines.next().ok_or(HeadError::Malformed)?;
    let mut parts = first.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::Malformed);
    };
    if method.is_empty() || !target.starts_with('/') || !version.starts_with("HTTP/1.") {
        return Err(HeadError::Malformed);
    }
    let path = target.split('?').next().unwrap_or(target).to_string();
    let mut headers = Vec::new();
    let mut length = 0;
    let mut expects_continue = false;
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or(HeadError::Malformed)?;
        let name = name.trim().to_ascii_lowercase();
        let value = value.trim().to_string();
        match name.as_str() {
            "content-length" => length = value.parse().map_err(|_| HeadError::BadLength)?,
            "transfer-encoding" => return Err(HeadError::Chunked),
            "expect" => expects_continue = value.eq_ignore_ascii_case("100-continue"),
            _ => {}
        }
        headers.push((name, value));
    }
    Ok(Head {
        method: method.to_string(),
        path,
        headers,
        length,
        expects_continue,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_parse_and_refuse() {
        let h = parse_head(
            b"POST /events?x=1 HTTP/1.1\r\nContent-Length: 12\r\nAuthorization: Bearer abc\r\nExpect: 100-continue",
        )
        .unwrap();
        assert_eq!((h.method.as_str(), h.path.as_str()), ("POST", "/events"));
        assert_eq!(h.length, 12);
        assert!(h.expects_continue);
        let r = Request {
            method: h.method,
            path: h.path,
            headers: h.headers,
            body: vec![],
            peer: "127.0.0.1:1".parse().unwrap(),
        };
        assert_eq!(r.bearer(), Some("abc"));
        assert_eq!(parse_head(b"GET /\r\n"), Err(HeadError::Malformed));
        assert_eq!(parse_head(b"\xff\xfe"), Err(HeadError::Malformed));
        assert_eq!(
            parse_head(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked"),
            Err(HeadError::Chunked)
        );
        assert_eq!(
            parse_head(b"POST / HTTP/1.1\r\nContent-Length: -1"),
            Err(HeadError::BadLength)
        );
    }

    #[test]
    fn responses_say_their_length() {
        let bytes = Response::error(413, "too big").to_bytes();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("HTTP/1.1 413 Content Too Large\r\n"));
        assert!(text.contains("Content-Length: 20\r\n"), "{text}");
        assert!(text.ends_with("{\"error\":\"too big\"}\n"));
    }
}
