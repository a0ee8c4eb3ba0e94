//! Cutting text to a capacity.

/// The longest prefix of `text` that fits in `max` bytes and ends at a character boundary.
///
/// ```
/// use reflex_core::text::clip;
/// assert_eq!(clip("abcdef", 3), "abc");
/// assert_eq!(clip("aé", 2), "a");
/// ```
pub fn clip(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::clip;

    #[test]
    fn cuts_at_char_boundaries() {
        assert_eq!(clip("abc", 5), "abc");
        assert_eq!(clip("abcdef", 3), "abc");
        // 'é' is two bytes: cutting inside it backs off to before it.
        assert_eq!(clip("aé", 2), "a");
        assert_eq!(clip("é", 0), "");
        assert_eq!(clip("", 4), "");
    }
}
