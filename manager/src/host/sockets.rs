//! ZeroMQ socket set-up: the Manager's sockets never linger at close, and hold at most a
//! queue's worth of messages each way.

use crate::Error;

/// A socket of `kind` for `role` (named in errors) bound to `endpoint`, lingering 0 and with
/// both high-water marks at `hwm`.
pub fn bind(
    ctx: &zmq::Context,
    kind: zmq::SocketType,
    role: &str,
    endpoint: &str,
    hwm: i32,
) -> Result<zmq::Socket, Error> {
    bind_limited(ctx, kind, role, endpoint, hwm, -1)
}

/// As [`bind`], refusing any message frame longer than `max_frame` bytes (`-1`: no limit): a
/// peer that declares a longer one is disconnected before its bytes are buffered.
pub fn bind_limited(
    ctx: &zmq::Context,
    kind: zmq::SocketType,
    role: &str,
    endpoint: &str,
    hwm: i32,
    max_frame: i64,
) -> Result<zmq::Socket, Error> {
    let s = ctx
        .socket(kind)
        .map_err(|e| Error::socket("create", role, e))?;
    // Set before binding: a listener hands its options to the connections it accepts.
    s.set_linger(0)
        .and_then(|_| s.set_rcvhwm(hwm))
        .and_then(|_| s.set_sndhwm(hwm))
        .and_then(|_| s.set_maxmsgsize(max_frame))
        .map_err(|e| Error::socket("configure", endpoint, e))?;
    s.bind(endpoint)
        .map_err(|e| Error::socket("bind", endpoint, e))?;
    Ok(s)
}

/// A PUSH socket for `role` connected to `endpoint`, lingering 0, with a send high-water mark
/// of `hwm`.
pub fn push(
    ctx: &zmq::Context,
    role: &str,
    endpoint: &str,
    hwm: i32,
) -> Result<zmq::Socket, Error> {
    let s = ctx
        .socket(zmq::PUSH)
        .map_err(|e| Error::socket("create", role, e))?;
    s.set_sndhwm(hwm)
        .and_then(|_| s.set_linger(0))
        .map_err(|e| Error::socket("configure", endpoint, e))?;
    s.connect(endpoint)
        .map_err(|e| Error::socket("connect", endpoint, e))?;
    Ok(s)
}
