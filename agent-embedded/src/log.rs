//! Logging through defmt when the `defmt` feature is on, and nothing at all when it is off.

/// Logs a warning with defmt; without the feature, evaluates nothing and keeps the arguments
/// "used".
macro_rules! log_warn {
    ($fmt:literal $(, $arg:expr)* $(,)?) => {{
        #[cfg(feature = "defmt")]
        defmt::warn!($fmt $(, $arg)*);
        #[cfg(not(feature = "defmt"))]
        {
            $(let _ = &$arg;)*
        }
    }};
}

pub(crate) use log_warn;
