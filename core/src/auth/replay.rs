//! Replay refusal: the highest sequence number seen from one source, and which of the
//! [`REPLAY_WINDOW`] numbers below it were seen too.

use core::fmt;

/// How far below the highest sequence number seen a message may still arrive (once): the width
/// of the window, in sequence numbers.
pub const REPLAY_WINDOW: u64 = 128;

/// Why a sequence number is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Replay {
    /// This sequence number was accepted already.
    Repeated,
    /// It is [`REPLAY_WINDOW`] or more below the highest one accepted.
    TooOld,
}

impl fmt::Display for Replay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Replay::Repeated => f.write_str("sequence number already seen"),
            Replay::TooOld => write!(
                f,
                "sequence number {REPLAY_WINDOW} or more below the highest seen"
            ),
        }
    }
}

/// One source's replay window, as in IPsec and DTLS: a message is accepted when its sequence
/// number is above every one seen so far, or within [`REPLAY_WINDOW`] below the highest and not
/// seen yet. So each number is accepted at most once, and a little reordering is tolerated.
/// Sixteen bytes of state and no allocation.
///
/// Check a message's authenticity before calling [`accept`](ReplayWindow::accept): a forged
/// message must not move the window.
///
/// ```
/// use reflex_core::auth::{Replay, ReplayWindow};
/// let mut w = ReplayWindow::new();
/// assert_eq!(w.accept(10), Ok(()));
/// assert_eq!(w.accept(12), Ok(()));
/// assert_eq!(w.accept(11), Ok(()));          // late, but not seen yet
/// assert_eq!(w.accept(11), Err(Replay::Repeated));
/// assert_eq!(w.accept(500), Ok(()));
/// assert_eq!(w.accept(12), Err(Replay::TooOld));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayWindow {
    /// The highest sequence number accepted; `None` before the first.
    highest: Option<u64>,
    /// Bit `i` set: `highest - i` was accepted.
    seen: u128,
}

impl ReplayWindow {
    /// A window that has seen nothing: the first sequence number is accepted, whatever it is.
    pub const fn new() -> ReplayWindow {
        ReplayWindow {
            highest: None,
            seen: 0,
        }
    }

    /// A window that accepts only sequence numbers above `highest`: the window of a source
    /// whose highest number was kept across a restart, when which numbers below it were
    /// seen is not known.
    ///
    /// ```
    /// use reflex_core::auth::{Replay, ReplayWindow};
    /// let mut w = ReplayWindow::after(10);
    /// assert_eq!(w.accept(10), Err(Replay::Repeated));
    /// assert_eq!(w.accept(9), Err(Replay::Repeated));
    /// assert_eq!(w.accept(11), Ok(()));
    /// ```
    pub const fn after(highest: u64) -> ReplayWindow {
        ReplayWindow {
            highest: Some(highest),
            seen: u128::MAX,
        }
    }

    /// The highest sequence number accepted so far.
    pub const fn highest(&self) -> Option<u64> {
        self.highest
    }

    /// Whether `seq` would be accepted, without recording it.
    pub fn check(&self, seq: u64) -> Result<(), Replay> {
        let Some(highest) = self.highest else {
            return Ok(());
        };
        if seq > highest {
            return Ok(());
        }
        let behind = highest - seq;
        if behind >= REPLAY_WINDOW {
            Err(Replay::TooOld)
        } else if self.seen & (1u128 << behind) != 0 {
            Err(Replay::Repeated)
        } else {
            Ok(())
        }
    }

    /// Accepts `seq` (recording it) or says why not.
    pub fn accept(&mut self, seq: u64) -> Result<(), Replay> {
        self.check(seq)?;
        match self.highest {
            Some(highest) if seq <= highest => self.seen |= 1u128 << (highest - seq),
            Some(highest) => {
                let ahead = seq - highest;
                self.seen = if ahead >= REPLAY_WINDOW {
                    1
                } else {
                    (self.seen << ahead) | 1
                };
                self.highest = Some(seq);
            }
            None => {
                self.seen = 1;
                self.highest = Some(seq);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn edges_of_the_window() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.check(0), Ok(()));
        w.accept(0).unwrap();
        assert_eq!(w.accept(0), Err(Replay::Repeated));
        w.accept(REPLAY_WINDOW).unwrap();
        assert_eq!(w.accept(0), Err(Replay::TooOld));
        w.accept(1).unwrap();
        assert_eq!(w.accept(1), Err(Replay::Repeated));
        w.accept(u64::MAX).unwrap();
        assert_eq!(w.accept(u64::MAX), Err(Replay::Repeated));
        assert_eq!(w.accept(u64::MAX - REPLAY_WINDOW), Err(Replay::TooOld));
        w.accept(u64::MAX - REPLAY_WINDOW + 1).unwrap();
        assert_eq!(w.highest(), Some(u64::MAX));
    }

    proptest! {
        /// Against a model that remembers every number: each is accepted at most once, and
        /// exactly when it is new and within the window.
        #[test]
        fn matches_a_model(seqs in proptest::collection::vec(0u64..400, 0..300)) {
            let mut w = ReplayWindow::new();
            let mut accepted = std::collections::BTreeSet::new();
            for s in seqs {
                let highest = accepted.iter().next_back().copied();
                let expect = match highest {
                    None => true,
                    Some(h) => !accepted.contains(&s) && (s > h || h - s < REPLAY_WINDOW),
                };
                prop_assert_eq!(w.accept(s).is_ok(), expect, "seq {}", s);
                if expect {
                    accepted.insert(s);
                }
            }
        }
    }
}
