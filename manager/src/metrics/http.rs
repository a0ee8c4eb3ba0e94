//! The metrics endpoint: a tiny HTTP server answering `GET /metrics` in the Prometheus text
//! format, and `POST /reload` with the route the daemon gives it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use crate::Error;

use super::Metrics;

/// What answers `POST /reload`: asks for a reload, waits for its outcome, and returns the HTTP
/// status and body.
pub type ReloadRoute = Box<dyn Fn() -> (&'static str, String) + Send>;

/// The answer to `POST /reload` on an endpoint without a reload route.
pub fn no_reload() -> (&'static str, String) {
    (
        "404 Not Found",
        "this endpoint does not reload a rulebook\n".into(),
    )
}

/// Serves `GET /metrics` on `addr` from a background thread, and `POST /reload` with `reload`
/// (see [`ReloadRoute`]; without one it answers [`no_reload`]); returns the bound address
/// (useful with port 0).
pub fn serve(
    addr: &str,
    metrics: Arc<Metrics>,
    reload: Option<ReloadRoute>,
) -> Result<SocketAddr, Error> {
    let listener = TcpListener::bind(addr)
        .map_err(|e| Error::io(format!("listen for metrics on {addr}"), e))?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::io("read the metrics address", e))?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                answer(stream, &metrics, reload.as_ref());
            }
        })
        .map_err(|e| Error::io("start the metrics thread", e))?;
    Ok(local)
}

/// Most bytes of request head read before answering.
const MAX_REQUEST: usize = 8192;

fn answer(mut stream: TcpStream, metrics: &Metrics, reload: Option<&ReloadRoute>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
    }
    let line = head
        .split(|&b| b == b'\r' || b == b'\n')
        .next()
        .unwrap_or(&[]);
    let mut parts = line.split(|&b| b == b' ');
    let method = parts.next().unwrap_or(&[]);
    let path = parts.next().unwrap_or(&[]);
    let path = path.split(|&b| b == b'?').next().unwrap_or(&[]);
    let (status, ctype, body) = match (method, path) {
        (b"GET", b"/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.render(),
        ),
        (b"POST", b"/reload") => {
            let (status, body) = reload.map_or_else(no_reload, |route| route());
            (status, "text/plain; charset=utf-8", body)
        }
        (b"GET", _) => ("404 Not Found", "text/plain", "try /metrics\n".to_string()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET /metrics and POST /reload\n".to_string(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::Relaxed;

    #[test]
    fn serves_over_http() {
        let m = Arc::new(Metrics::new(vec![]));
        m.events_received.fetch_add(7, Relaxed);
        let addr = serve("127.0.0.1:0", m, None).unwrap();
        let get = |req: &str| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(req.as_bytes()).unwrap();
            let mut text = String::new();
            s.read_to_string(&mut text).unwrap();
            text
        };
        let ok = get("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK"));
        assert!(ok.contains("reflex_events_received_total 7"));
        assert!(get("GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert!(get("POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
    }
}
