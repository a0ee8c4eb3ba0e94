//! Device reactions: what a device can do, on its own rule's firing or on an action from the
//! Manager.
//!
//! | key | arguments | does |
//! |---|---|---|
//! | `reactions.device.set_pin` | `state`: `true`/`false`, `1`/`0`, `on`/`off`, `high`/`low` | drives the output pin |
//! | `reactions.device.toggle_pin` | none | inverts the output pin |
//!
//! Keys are resolved once, when the agent starts ([`DeviceFn::from_key`]); the hot path works
//! on the resolved [`DeviceFn`].

use embedded_hal::digital::{Error as _, OutputPin};
use reflex_core::Value;

use crate::Error;

pub use reflex_core::reaction::DEVICE_MODULE;
use reflex_core::reaction::{DEVICE_SET_PIN, DEVICE_TOGGLE_PIN};

/// Every device reaction key, in [`DeviceFn`] order (the device entries of core's table,
/// [`reflex_core::reaction::REACTIONS`]). A firmware build script adds these to the catalog
/// its rulebook is compiled against.
pub const DEVICE_KEYS: &[&str] = &[DEVICE_SET_PIN, DEVICE_TOGGLE_PIN];

/// A device reaction, resolved from its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DeviceFn {
    /// `reactions.device.set_pin`: drive the pin to the `state` argument.
    SetPin,
    /// `reactions.device.toggle_pin`: invert the pin.
    TogglePin,
}

impl DeviceFn {
    /// Resolves a key such as `reactions.device.set_pin`.
    ///
    /// ```
    /// use reflex_agent_embedded::DeviceFn;
    /// assert_eq!(DeviceFn::from_key("reactions.device.toggle_pin"), Some(DeviceFn::TogglePin));
    /// assert_eq!(DeviceFn::from_key("reactions.log.print"), None);
    /// ```
    pub fn from_key(key: &str) -> Option<DeviceFn> {
        match key {
            DEVICE_SET_PIN => Some(DeviceFn::SetPin),
            DEVICE_TOGGLE_PIN => Some(DeviceFn::TogglePin),
            _ => None,
        }
    }

    /// The function's key.
    pub const fn key(self) -> &'static str {
        match self {
            DeviceFn::SetPin => DEVICE_SET_PIN,
            DeviceFn::TogglePin => DEVICE_TOGGLE_PIN,
        }
    }
}

/// Reads a pin state from an argument value: booleans, numbers (non-zero is high) and the
/// words `on`/`off`, `high`/`low`, `true`/`false` (any case).
///
/// ```
/// use reflex_agent_embedded::reaction::pin_state;
/// use reflex_core::Value;
/// assert_eq!(pin_state(&Value::str("ON").unwrap()).unwrap(), true);
/// assert_eq!(pin_state(&Value::Int(0)).unwrap(), false);
/// assert!(pin_state(&Value::str("maybe").unwrap()).is_err());
/// ```
pub fn pin_state(value: &Value) -> Result<bool, Error> {
    const BAD: Error = Error::BadArgument("state");
    match value {
        Value::Bool(b) => Ok(*b),
        Value::Int(i) => Ok(*i != 0),
        Value::Float(f) if f.is_finite() => Ok(*f != 0.0),
        Value::Float(_) => Err(BAD),
        Value::Str(s) => {
            let is = |w: &str| s.eq_ignore_ascii_case(w);
            if is("on") || is("high") || is("true") || is("1") {
                Ok(true)
            } else if is("off") || is("low") || is("false") || is("0") {
                Ok(false)
            } else {
                Err(BAD)
            }
        }
    }
}

/// The output pin and the level the agent last drove it to (an [`OutputPin`] cannot be read
/// back, so toggling needs the agent to remember).
#[derive(Debug)]
pub struct Pin<P> {
    pin: P,
    high: bool,
}

impl<P: OutputPin> Pin<P> {
    /// Takes the pin and drives it low, so the remembered level is the real one.
    pub fn new(mut pin: P) -> Pin<P> {
        // A failure here shows again, and is counted, at the first reaction.
        let _ = pin.set_low();
        Pin { pin, high: false }
    }

    /// The level last driven.
    pub fn is_high(&self) -> bool {
        self.high
    }

    /// Drives the pin.
    pub fn set(&mut self, high: bool) -> Result<(), Error> {
        let r = if high {
            self.pin.set_high()
        } else {
            self.pin.set_low()
        };
        r.map_err(|e| Error::Pin(e.kind()))?;
        self.high = high;
        Ok(())
    }

    /// Performs a device function. `state` is the `state` argument, when given. Returns the
    /// level the pin is left at.
    pub fn perform(&mut self, func: DeviceFn, state: Option<&Value>) -> Result<bool, Error> {
        let high = match func {
            DeviceFn::SetPin => pin_state(state.ok_or(Error::BadArgument("state"))?)?,
            DeviceFn::TogglePin => !self.high,
        };
        self.set(high)?;
        Ok(high)
    }

    /// Gives the pin back.
    pub fn release(self) -> P {
        self.pin
    }
}
