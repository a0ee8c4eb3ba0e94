//! A small bounded HTTP/1.1 server: one thread reads every connection without blocking (so
//! idle or slow clients cost a descriptor, never a thread), a fixed pool of workers answers
//! the requests read in full, and every bound is explicit ([`Limits`]):
//!
//! * at most `connections` open at once; past that the oldest connection still reading its
//!   request is closed (a slow-loris client cannot lock others out), counted as
//!   `connection_limit`;
//! * a request (head and body) must arrive within `deadline` of its connection's accept, or
//!   it is answered `408` and closed (`deadline`);
//! * heads past `head` bytes are answered `431`, bodies past `body` bytes `413`, before the
//!   body is read;
//! * requests wait for a worker in a bounded queue; past it they are answered `503` (`busy`).
//!
//! One request per connection: every response closes it.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::Error;
use crate::metrics::{HttpCounters, HttpRefusal};

use super::request::{Head, Request, Response, parse_head};

/// What answers a request read in full.
pub type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

/// The bounds of one server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once.
    pub connections: usize,
    /// Bytes of a request head.
    pub head: usize,
    /// Bytes of a request body.
    pub body: usize,
    /// Time from accept to a request read in full.
    pub deadline: Duration,
    /// Worker threads answering requests.
    pub workers: usize,
    /// Time a worker spends writing one response.
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            connections: 512,
            head: 8 * 1024,
            body: 64 * 1024,
            deadline: Duration::from_secs(10),
            workers: 4,
            write_timeout: Duration::from_secs(5),
        }
    }
}

/// What a worker is handed.
enum Job {
    /// A request read in full, to answer with the handler.
    Answer(TcpStream, Request),
    /// A request refused while it was read, with its response.
    Refuse(TcpStream, Response),
}

/// A connection being read.
struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    buf: Vec<u8>,
    opened: Instant,
    /// The head, once read, and where the body starts in `buf`.
    head: Option<(Head, usize)>,
}

/// Binds `addr` and serves it with `handler` from background threads named after `name`;
/// returns the bound address (useful with port 0).
pub fn serve(
    addr: &str,
    name: &str,
    limits: Limits,
    counters: Arc<HttpCounters>,
    handler: Handler,
) -> Result<SocketAddr, Error> {
    let listener = TcpListener::bind(addr)
        .map_err(|e| Error::io(format!("listen for {name} on {addr}"), e))?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::io(format!("read the {name} address"), e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::io(format!("configure the {name} listener"), e))?;
    let (jobs, queue) = crossbeam_channel::bounded::<Job>(limits.workers.max(1) * 16);
    for i in 0..limits.workers.max(1) {
        let (queue, handler, counters) = (queue.clone(), handler.clone(), counters.clone());
        std::thread::Builder::new()
            .name(format!("{name}-{i}"))
            .spawn(move || work(&queue, &handler, &counters, limits))
            .map_err(|e| Error::io(format!("start the {name} workers"), e))?;
    }
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || read_loop(&listener, &jobs, &counters, limits))
        .map_err(|e| Error::io(format!("start the {name} thread"), e))?;
    Ok(local)
}

fn work(queue: &Receiver<Job>, handler: &Handler, counters: &HttpCounters, limits: Limits) {
    while let Ok(job) = queue.recv() {
        let (mut stream, response, drain) = match job {
            Job::Answer(stream, request) => {
                counters.answered();
                (stream, handler(&request), false)
            }
            Job::Refuse(stream, response) => (stream, response, true),
        };
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_write_timeout(Some(limits.write_timeout));
        let _ = stream.write_all(&response.to_bytes());
        let _ = stream.shutdown(Shutdown::Write);
        if drain {
            // Read what the client still sends (a body refused unread), briefly, so that
            // closing does not reset the connection before it reads the answer.
            let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
            let mut sink = [0u8; 4096];
            let mut left = 256 * 1024usize;
            while left > 0 {
                match stream.read(&mut sink) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => left = left.saturating_sub(n),
                }
            }
        }
    }
}

/// The reading thread: accepts, reads every connection without blocking, and hands complete
/// requests (or refusals) to the workers.
fn read_loop(listener: &TcpListener, jobs: &Sender<Job>, counters: &HttpCounters, limits: Limits) {
    let mut conns: Vec<Conn> = Vec::new();
    let mut fds: Vec<libc::pollfd> = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        fds.clear();
        fds.push(libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        fds.extend(conns.iter().map(|c| libc::pollfd {
            fd: c.stream.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }));
        let now = Instant::now();
        let wait = conns
            .iter()
            .map(|c| (c.opened + limits.deadline).saturating_duration_since(now))
            .min()
            .unwrap_or(Duration::from_secs(1))
            .min(Duration::from_secs(1));
        let timeout = i32::try_from(wait.as_millis()).unwrap_or(1000).max(1);
        // SAFETY: `fds` is a live, initialised slice of pollfd of the length given.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if ready < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != ErrorKind::Interrupted {
                tracing::warn!(error = %e, "http poll failed");
                std::thread::sleep(Duration::from_millis(50));
            }
            continue;
        }
        // Reads first, by index (accepting below appends, closing removes in reverse).
        let mut done: Vec<(usize, Outcome)> = Vec::new();
        for (i, conn) in conns.iter_mut().enumerate() {
            if fds[i + 1].revents == 0 {
                continue;
            }
            match conn.stream.read(&mut chunk) {
                Ok(0) => done.push((i, Outcome::Close)),
                Ok(n) => {
                    conn.buf.extend_from_slice(&chunk[..n]);
                    if let Some(outcome) = progress(conn, counters, limits) {
                        done.push((i, outcome));
                    }
                }
                Err(e)
                    if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {}
                Err(_) => done.push((i, Outcome::Close)),
            }
        }
        let now = Instant::now();
        let mut finished = vec![false; conns.len()];
        for (i, _) in &done {
            finished[*i] = true;
        }
        for (i, conn) in conns.iter().enumerate() {
            if now >= conn.opened + limits.deadline && !finished[i] {
                counters.refused(HttpRefusal::Deadline);
                let response = Response::error(408, "request not received in time");
                done.push((i, Outcome::Refuse(response)));
            }
        }
        done.sort_by_key(|(i, _)| std::cmp::Reverse(*i));
        for (i, outcome) in done {
            let stream = conns.swap_remove(i).stream;
            match outcome {
                Outcome::Answer(request) => hand_over(jobs, Job::Answer(stream, request), counters),
                // A request refused while its client may still be sending is drained by a
                // worker before closing (so the answer is not lost to a reset); clients cut
                // at their deadline get theirs written here without blocking, so that slow
                // clients never occupy a worker.
                Outcome::Refuse(response) if response.status != 408 => {
                    hand_over(jobs, Job::Refuse(stream, response), counters)
                }
                Outcome::Refuse(response) => {
                    let mut stream = stream;
                    let _ = stream.write(&response.to_bytes());
                    let _ = stream.shutdown(Shutdown::Write);
                }
                Outcome::Close => drop(stream),
            }
        }
        if fds[0].revents != 0 {
            accept(listener, &mut conns, counters, limits);
        }
    }
}

/// What becomes of a connection the reading thread is done with.
enum Outcome {
    /// Closed without an answer (the client went away).
    Close,
    /// Its request, read in full.
    Answer(Request),
    /// Refused, with this response.
    Refuse(Response),
}

fn hand_over(jobs: &Sender<Job>, job: Job, counters: &HttpCounters) {
    match jobs.try_send(job) {
        Ok(()) => {}
        Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => {
            counters.refused(HttpRefusal::Busy);
            let mut stream = match job {
                Job::Answer(s, _) | Job::Refuse(s, _) => s,
            };
            // Best effort, without blocking the reading thread.
            let _ = stream.write(&Response::error(503, "busy; try again").to_bytes());
        }
    }
}

fn accept(listener: &TcpListener, conns: &mut Vec<Conn>, counters: &HttpCounters, limits: Limits) {
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                if stream.set_nonblocking(true).is_err() {
                    continue;
                }
                if conns.len() >= limits.connections.max(1) {
                    // The oldest connection still reading its request makes room.
                    if let Some((i, _)) = conns.iter().enumerate().min_by_key(|(_, c)| c.opened) {
                        conns.swap_remove(i);
                        counters.refused(HttpRefusal::ConnectionLimit);
                    }
                }
                conns.push(Conn {
                    stream,
                    peer,
                    buf: Vec::new(),
                    opened: Instant::now(),
                    head: None,
                });
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) => {
                // Out of descriptors, typically: refuse for a moment rather than spin.
                tracing::warn!(error = %e, "http accept failed");
                counters.refused(HttpRefusal::AcceptFailed);
                std::thread::sleep(Duration::from_millis(10));
                return;
            }
        }
    }
}

/// Looks at what a connection has sent so far: its outcome once its request is complete or
/// refused, `None` while more is needed.
fn progress(conn: &mut Conn, counters: &HttpCounters, limits: Limits) -> Option<Outcome> {
    if conn.head.is_none() {
        let Some(end) = conn.buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            if conn.buf.len() > limits.head {
                counters.refused(HttpRefusal::HeadTooLarge);
                return Some(Outcome::Refuse(Response::error(
                    431,
                    "request head too large",
                )));
            }
            return None;
        };
        if end > limits.head {
            counters.refused(HttpRefusal::HeadTooLarge);
            return Some(Outcome::Refuse(Response::error(
                431,
                "request head too large",
            )));
        }
        let head = match parse_head(&conn.buf[..end]) {
            Ok(h) => h,
            Err(e) => {
                counters.refused(HttpRefusal::Malformed);
                return Some(Outcome::Refuse(e.response()));
            }
        };
        if head.length > limits.body {
            counters.refused(HttpRefusal::BodyTooLarge);
            let message = format!(
                "body of {} bytes; at most {} accepted",
                head.length, limits.body
            );
            return Some(Outcome::Refuse(Response::error(413, message)));
        }
        let start = end + 4;
        if head.expects_continue && conn.buf.len() < start + head.length {
            let _ = conn.stream.write(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        conn.head = Some((head, start));
    }
    let (head, start) = conn.head.as_ref()?;
    let end = start + head.length;
    if conn.buf.len() < end {
        return None;
    }
    Some(Outcome::Answer(Request {
        method: head.method.clone(),
        path: head.path.clone(),
        headers: head.headers.clone(),
        body: conn.buf[*start..end].to_vec(),
        peer: conn.peer,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(request).unwrap();
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        text
    }

    fn echo_server(limits: Limits) -> (SocketAddr, Arc<HttpCounters>) {
        let counters = Arc::new(HttpCounters::default());
        let handler: Handler = Arc::new(|r: &Request| {
            Response::text(200, format!("{} {} {}", r.method, r.path, r.body.len()))
        });
        let addr = serve(
            "127.0.0.1:0",
            "http-test",
            limits,
            counters.clone(),
            handler,
        )
        .unwrap();
        (addr, counters)
    }

    #[test]
    fn answers_bodies_and_refuses_what_is_too_large() {
        let limits = Limits {
            body: 16,
            head: 256,
            ..Limits::default()
        };
        let (addr, counters) = echo_server(limits);
        let ok = exchange(addr, b"POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
        assert!(ok.starts_with("HTTP/1.1 200 OK"), "{ok}");
        assert!(ok.ends_with("POST /x 3"), "{ok}");
        let big = exchange(addr, b"POST /x HTTP/1.1\r\nContent-Length: 17\r\n\r\n");
        assert!(big.starts_with("HTTP/1.1 413"), "{big}");
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(300));
        assert!(exchange(addr, long.as_bytes()).starts_with("HTTP/1.1 431"));
        assert!(exchange(addr, b"NONSENSE\r\n\r\n").starts_with("HTTP/1.1 400"));
        assert_eq!(counters.refusals(HttpRefusal::BodyTooLarge), 1);
        assert_eq!(counters.refusals(HttpRefusal::HeadTooLarge), 1);
        assert_eq!(counters.refusals(HttpRefusal::Malformed), 1);
    }

    #[test]
    fn a_request_too_slow_is_cut_at_its_deadline() {
        let limits = Limits {
            deadline: Duration::from_millis(300),
            ..Limits::default()
        };
        let (addr, counters) = echo_server(limits);
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /x HTTP/1.1\r\n").unwrap();
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert_eq!(counters.refusals(HttpRefusal::Deadline), 1);
    }

    #[test]
    fn past_the_connection_limit_the_oldest_idle_one_goes() {
        let limits = Limits {
            connections: 8,
            ..Limits::default()
        };
        let (addr, counters) = echo_server(limits);
        let idle: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(addr).unwrap()).collect();
        let ok = exchange(addr, b"GET /y HTTP/1.1\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK"), "{ok}");
        assert!(counters.refusals(HttpRefusal::ConnectionLimit) >= 12);
        drop(idle);
    }
}
