//! Rule functions: compare a register's value with a threshold.

use serde::{Deserialize, Serialize};

/// A comparison, `rules.simple.<name>` in a rulebook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RuleFn {
    /// `value > threshold`.
    Gt,
    /// `value >= threshold`.
    Ge,
    /// `value < threshold`.
    Lt,
    /// `value <= threshold`.
    Le,
    /// `value == threshold`.
    Eq,
    /// `value != threshold`.
    Ne,
    /// `lo <= value <= hi` (`threshold: [lo, hi]`).
    Between,
    /// `value < lo || value > hi` (`threshold: [lo, hi]`).
    Outside,
    /// The value differs from the one seen at the previous evaluation (no threshold).
    Changed,
}

impl RuleFn {
    /// Whether the function takes `threshold: [lo, hi]`.
    pub fn takes_range(self) -> bool {
        matches!(self, RuleFn::Between | RuleFn::Outside)
    }

    /// Whether the function takes a threshold at all.
    pub fn takes_threshold(self) -> bool {
        !matches!(self, RuleFn::Changed)
    }

    /// Evaluates the comparison. `previous` is the register value at the previous evaluation,
    /// used by [`RuleFn::Changed`] only (no previous value: not changed).
    ///
    /// ```
    /// use reflex_core::rule::RuleFn;
    /// assert!(RuleFn::Gt.eval(21.0, 20.0, 20.0, None));
    /// assert!(RuleFn::Between.eval(5.0, 1.0, 10.0, None));
    /// assert!(RuleFn::Changed.eval(2.0, 0.0, 0.0, Some(1.0)));
    /// ```
    pub fn eval(self, value: f64, lo: f64, hi: f64, previous: Option<f64>) -> bool {
        match self {
            RuleFn::Gt => value > lo,
            RuleFn::Ge => value >= lo,
            RuleFn::Lt => value < lo,
            RuleFn::Le => value <= lo,
            RuleFn::Eq => value == lo,
            RuleFn::Ne => value != lo,
            RuleFn::Between => lo <= value && value <= hi,
            RuleFn::Outside => value < lo || value > hi,
            RuleFn::Changed => previous.is_some_and(|p| p != value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RuleFn::*;

    #[test]
    fn comparisons() {
        assert!(!Gt.eval(20.0, 20.0, 20.0, None));
        assert!(Ge.eval(20.0, 20.0, 20.0, None));
        assert!(Lt.eval(1.0, 2.0, 2.0, None));
        assert!(Le.eval(2.0, 2.0, 2.0, None));
        assert!(Eq.eval(0.0, 0.0, 0.0, None));
        assert!(Ne.eval(1.0, 0.0, 0.0, None));
        assert!(!Between.eval(11.0, 1.0, 10.0, None));
        assert!(Outside.eval(11.0, 1.0, 10.0, None));
        assert!(!Outside.eval(10.0, 1.0, 10.0, None));
        assert!(!Changed.eval(1.0, 0.0, 0.0, None));
        assert!(!Changed.eval(1.0, 0.0, 0.0, Some(1.0)));
    }
}
