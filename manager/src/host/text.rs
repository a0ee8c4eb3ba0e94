//! Text helpers.

/// The longest prefix of `text` that fits `max` bytes, cut at a character boundary.
pub fn clip(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clips_at_a_character_boundary() {
        assert_eq!(clip("héllo", 2), "h");
    }
}
