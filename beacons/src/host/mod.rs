//! Host beacons (feature `std`, Linux): they read `/proc`, `statvfs` and commands' output.
//!
//! | beacon | tag | fields |
//! |---|---|---|
//! | [`Load`] | `/client/load/<source>` | `load_avg`, `load5`, `load15`, `io_avg` |
//! | [`Memory`] | `/client/mem/<source>` | `used_pct`, `available_mb`, `total_mb` |
//! | [`Disk`] | `/client/disk/<source>` | `used_pct`, `free_mb`, `mount` |
//! | [`Process`] | `/client/service/<source>` | `running`, `count`, `name` |
//! | [`Command`] | `/client/cmd/<name>/<source>` | `exit`, `output`, `value` |
//!
//! [`HostBeaconSpec`] describes one of them in the agent's configuration, and
//! [`HostBeaconSpec::build`] makes it. Parsing is separate from reading, so that odd contents
//! are a [`BeaconError::Malformed`], never a panic.

mod command;
mod disk;
mod load;
mod memory;
mod process;
mod spec;

pub use command::Command;
pub use disk::Disk;
pub use load::Load;
pub use memory::Memory;
pub use process::Process;
pub use spec::{DEFAULT_INTERVAL_S, DEFAULT_TIMEOUT_S, HostBeaconSpec, ScheduleSpec, build};

use std::io::Read;

use reflex_core::event::Tag;

use crate::BeaconError;
use crate::text::{check_id, tag};

/// The tag `/client/<kind>/<source>`, after checking the source id.
fn client_tag(kind: &str, source_id: &str) -> Result<Tag, BeaconError> {
    check_id(
        source_id,
        "the source id must be an id: 1 to 32 bytes, not starting with '.', with no '/', '\\', whitespace, control or glob characters",
    )?;
    tag(format_args!("/client/{kind}/{source_id}"))
}

/// Reads a whole (small) file into `buf`, reusing its allocation.
fn read_into(buf: &mut String, path: &'static str) -> Result<(), BeaconError> {
    buf.clear();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_string(buf))
        .map_err(|_| BeaconError::Unreadable(path))?;
    Ok(())
}

/// Rounds to two decimals: percentages and averages read better, and on-change filters see
/// fewer meaningless changes.
fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
