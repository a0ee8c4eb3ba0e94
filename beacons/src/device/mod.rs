//! Firmware beacons: `no_std`, allocation-free, board-agnostic.
//!
//! | beacon | tag | fields |
//! |---|---|---|
//! | [`CpuLoad`] | `/device/cpu/<id>` | `cpu_pct` (float, 0 to 100, one decimal) |
//! | [`Uptime`] | `/device/uptime/<id>` | `uptime_s` (integer) |
//! | [`Sensor`] | `/device/sensor/<name>/<id>` | one float field, named by the firmware |
//!
//! A sensor is anything implementing [`SensorRead`]; [`I2cRegister`] reads a 16-bit register
//! of an I2C device through embedded-hal 1.0.

mod cpu;
mod sensor;
mod uptime;

pub use cpu::{CpuLoad, IdleCounter};
pub use sensor::{I2cRegister, Sensor, SensorRead};
pub use uptime::Uptime;
