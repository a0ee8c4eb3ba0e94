//! This host's name.

use reflex_core::event::MAX_SOURCE_LEN;

use super::text::clip;

/// This host's name, cut to [`MAX_SOURCE_LEN`] bytes (`localhost` when it cannot be read).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its whole length, which is passed along.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let name = if r == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    };
    let name = if name.is_empty() {
        "localhost".to_string()
    } else {
        name
    };
    clip(&name, MAX_SOURCE_LEN).to_string()
}
