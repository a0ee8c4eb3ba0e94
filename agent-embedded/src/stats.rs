//! What the agent has done and what it has dropped.

use reflex_core::frame::FrameStats;

/// Counters of an [`crate::Agent`]. Each saturates at `u32::MAX`; nothing the agent drops goes
/// uncounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Stats {
    /// Beacon events sent up the line.
    pub events_sent: u32,
    /// Beacon samples that failed.
    pub beacon_errors: u32,
    /// Heartbeats sent.
    pub heartbeats_sent: u32,
    /// Envelopes that could not be encoded (over a capacity or [`crate::TX_FRAME_LEN`]).
    pub encode_errors: u32,
    /// UART reads or writes that failed.
    pub uart_errors: u32,
    /// What the deframer saw on the line: intact frames and the damaged ones it dropped.
    pub frames: FrameStats,
    /// Intact frames that did not hold a valid envelope.
    pub decode_errors: u32,
    /// Actions for this device that succeeded.
    pub actions_ok: u32,
    /// Actions for this device that failed (unknown function, bad argument, pin error).
    pub actions_failed: u32,
    /// Actions received again (same id) and answered without being performed again.
    pub actions_duplicate: u32,
    /// Actions for this device refused because their tag does not verify with the device's
    /// key (or they carry none); only with a key ([`crate::Agent::with_key`]).
    pub actions_refused: u32,
    /// Authentic actions for this device refused as expired or replayed.
    pub actions_stale: u32,
    /// Envelopes not for this device: actions for other targets, and other kinds.
    pub ignored: u32,
    /// On-device rule firings.
    pub rules_fired: u32,
    /// On-device reactions that succeeded.
    pub reactions_ok: u32,
    /// On-device reactions that failed.
    pub reactions_failed: u32,
    /// Reaction reports not sent because one event fired more than
    /// [`crate::MAX_REPORTS_PER_EVENT`] reactions (the reactions themselves were performed).
    pub reports_dropped: u32,
    /// Rule evaluations skipped because the register store was full.
    pub store_full: u32,
}

/// Adds one to a counter, saturating.
pub(crate) fn bump(counter: &mut u32) {
    *counter = counter.saturating_add(1);
}
