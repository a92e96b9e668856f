//! Incremental UTF-8 validity tracking, used to mask bytes that would make the output invalid.

/// Where a byte sequence stands in the UTF-8 grammar after the bytes emitted so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Utf8State {
    /// Continuation bytes still expected for the current character.
    pending: u8,
    /// Allowed range of the next continuation byte (narrower right after some lead bytes, to
    /// exclude overlong forms, surrogates and code points above U+10FFFF).
    low: u8,
    high: u8,
}

impl Utf8State {
    /// True at a character boundary, where the text may end.
    pub(crate) fn at_boundary(&self) -> bool {
        self.pending == 0
    }

    /// Whether `byte` may come next, given that at most `room` more bytes fit (including this
    /// one). Byte 0 means "end of text" and is allowed only at a character boundary.
    pub(crate) fn allows(&self, byte: u8, room: usize) -> bool {
        if !self.at_boundary() {
            return (self.low..=self.high).contains(&byte);
        }
        match byte {
            0 => true,
            0x01..=0x7F => room >= 1,
            0xC2..=0xDF => room >= 2,
            0xE0..=0xEF => room >= 3,
            0xF0..=0xF4 => room >= 4,
            _ => false,
        }
    }

    /// The state after `byte`, which must be allowed.
    pub(crate) fn advance(self, byte: u8) -> Self {
        if self.pending > 0 {
            return Self {
                pending: self.pending - 1,
                low: 0x80,
                high: 0xBF,
            };
        }
        let (pending, low, high) = match byte {
            0xC2..=0xDF => (1, 0x80, 0xBF),
            0xE0 => (2, 0xA0, 0xBF),
            0xED => (2, 0x80, 0x9F),
            0xE1..=0xEF => (2, 0x80, 0xBF),
            0xF0 => (3, 0x90, 0xBF),
            0xF4 => (3, 0x80, 0x8F),
            0xF1..=0xF3 => (3, 0x80, 0xBF),
            _ => (0, 0x80, 0xBF),
        };
        Self { pending, low, high }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks every byte sequence of up to 3 bytes (and 4-byte ones from a few leads) and checks
    /// that the automaton accepts exactly the valid UTF-8 strings.
    #[test]
    fn accepts_exactly_valid_utf8() {
        fn walk(prefix: &mut Vec<u8>, state: Utf8State, depth: usize) {
            let valid = std::str::from_utf8(prefix).is_ok();
            assert_eq!(state.at_boundary(), valid, "{prefix:x?}");
            if depth == 0 {
                return;
            }
            for b in 1..=255u8 {
                if prefix.len() == 1 && prefix[0] < 0x80 && b < 0x80 && b != 0x41 {
                    continue; // ASCII pairs are all alike: sample one.
                }
                let allowed = state.allows(b, 4);
                prefix.push(b);
                let prefix_ok = match std::str::from_utf8(prefix) {
                    Ok(_) => true,
                    Err(e) => e.error_len().is_none(),
                };
                assert_eq!(allowed, prefix_ok, "{prefix:x?}");
                if allowed {
                    walk(prefix, state.advance(b), depth - 1);
                }
                prefix.pop();
            }
        }
        walk(&mut Vec::new(), Utf8State::default(), 3);
        for lead in [0xF0u8, 0xF4, 0xF2] {
            let s = Utf8State::default().advance(lead);
            for b in 0x80..=0xBFu8 {
                if s.allows(b, 3) {
                    let s2 = s.advance(b).advance(0x80);
                    assert!(s2.allows(0xBF, 1));
                    assert!(s2.advance(0xBF).at_boundary());
                    let bytes = [lead, b, 0x80, 0xBF];
                    assert!(std::str::from_utf8(&bytes).is_ok(), "{bytes:x?}");
                }
            }
        }
    }

    #[test]
    fn end_only_at_boundary_and_room_respected() {
        let s = Utf8State::default();
        assert!(s.allows(0, 0));
        assert!(!s.allows(0xE2, 2));
        assert!(s.allows(0xE2, 3));
        let s = s.advance(0xE2);
        assert!(!s.allows(0, 2));
        assert!(!s.allows(b'a', 2));
        assert!(s.allows(0x82, 2));
    }
}
