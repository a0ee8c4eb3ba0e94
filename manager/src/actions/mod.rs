//! The action path: a firing turned into an action ([`build`]), the Actors the Manager knows
//! from their heartbeats and target expansion ([`known`]), the outbox that feeds the Publisher
//! ([`outbox`]), and the Publisher process with its supervision ([`publisher`]).
//!
//! * Ids (and sequence numbers) start at the Manager's start time in microseconds and count
//!   up, so they are unique per run and keep increasing across restarts.
//! * A target of `*` is sent once; an exact id once; a glob is expanded against the Actors
//!   heard from within [`ACTOR_TTL`](known::ACTOR_TTL), one copy per Actor with its exact id as target. A glob
//!   that matches no known Actor is dropped and counted as `no_target`.
//! * Sending never blocks: when the feed refuses (no Publisher connected, or its queue is
//!   full) the action waits in a bounded queue and is sent on a later tick, oldest first;
//!   when that queue is full the oldest waiting action is dropped (`action_queue_full`).
//! * An action for an exact Actor is kept until that Actor's result comes back, and sent
//!   again every [`RETRY_EVERY`](outbox::RETRY_EVERY) until then or until it expires: this covers actions lost
//!   with a crashed Publisher or sent before the Actor's subscription was up. Actors perform
//!   an action id at most once, so a resend never runs twice.
//! * Every copy is authenticated once, when it is made, and a resend is the same bytes: with
//!   the Manager's Ed25519 key, or, for a device with a key in the allow-list, with that
//!   device's HMAC key (see [`crate::trust`]).

pub mod build;
pub mod known;
pub mod outbox;
pub mod publisher;

pub use known::KnownActors;
pub use outbox::Outbox;
