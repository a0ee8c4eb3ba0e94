//! The table of reactions: each built-in's key, who performs it and the arguments it takes.
//! The rules compiler checks rulebooks against it, and the Manager, the Actor and the device
//! find their reactions in it. Adding a reaction is adding one entry here and the file that
//! performs it.
//!
//! ```
//! use reflex_core::reaction::{Performer, find};
//! let run = find("reactions.actor.run").unwrap();
//! assert_eq!(run.performer, Performer::Actor);
//! assert!(run.args.iter().any(|a| a.name == "argv" && a.required));
//! assert!(find("reactions.backup.nightly").is_none()); // a plugin: any arguments
//! ```

/// Who performs a reaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Performer {
    /// The Manager, in its own process.
    Manager,
    /// An Actor, on an action the Manager sends it.
    Actor,
    /// A device, on its own rule's firing or on an action the Manager sends it.
    Device,
}

/// What shape an argument has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    /// One templated scalar.
    Text,
    /// One templated scalar that, when literal, is a valid tag.
    Tag,
    /// One templated scalar that, when literal, is one of these words.
    OneOf(&'static [&'static str]),
    /// A number of seconds, greater than 0.
    Seconds,
    /// A non-empty list of templated scalars.
    List,
    /// A map of templated values (flattened to dotted names).
    Map,
    /// A map of templated values that become the fields of an event, so each must fit an
    /// event's string value.
    EventData,
}

/// One argument a reaction takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgSpec {
    /// Its name.
    pub name: &'static str,
    /// Its shape.
    pub kind: ArgKind,
    /// Whether the reaction needs it.
    pub required: bool,
}

/// One built-in reaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReactionSpec {
    /// Its key, `reactions.<module>.<function>`.
    pub key: &'static str,
    /// Who performs it.
    pub performer: Performer,
    /// The arguments it takes; any other is refused.
    pub args: &'static [ArgSpec],
}

/// The module whose reactions, plugins included, are always performed by Actors.
pub const ACTOR_MODULE: &str = "actor";
/// The module of device reactions.
pub const DEVICE_MODULE: &str = "device";
/// The levels `reactions.log.print` accepts.
pub const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error"];

/// `reactions.actor.run`: an Actor runs a command.
pub const ACTOR_RUN: &str = "reactions.actor.run";
/// `reactions.actor.fire_event`: an Actor sends an event as its own.
pub const ACTOR_FIRE_EVENT: &str = "reactions.actor.fire_event";
/// `reactions.device.set_pin`: a device drives its output pin.
pub const DEVICE_SET_PIN: &str = "reactions.device.set_pin";
/// `reactions.device.toggle_pin`: a device inverts its output pin.
pub const DEVICE_TOGGLE_PIN: &str = "reactions.device.toggle_pin";

const fn arg(name: &'static str, kind: ArgKind, required: bool) -> ArgSpec {
    ArgSpec {
        name,
        kind,
        required,
    }
}

const fn reaction(
    key: &'static str,
    performer: Performer,
    args: &'static [ArgSpec],
) -> ReactionSpec {
    ReactionSpec {
        key,
        performer,
        args,
    }
}

/// Every built-in reaction: the Manager's, then the Actors', then the devices'. The order of
/// the Manager's and the Actors' is their reaction number in a compiled rulebook.
pub const REACTIONS: &[ReactionSpec] = &[
    reaction(
        "reactions.eventer.fire_event",
        Performer::Manager,
        &[
            arg("tag", ArgKind::Tag, true),
            arg("data", ArgKind::EventData, false),
        ],
    ),
    reaction(
        "reactions.exec.run",
        Performer::Manager,
        &[
            arg("argv", ArgKind::List, true),
            arg("timeout", ArgKind::Seconds, false),
            arg("cwd", ArgKind::Text, false),
        ],
    ),
    reaction(
        "reactions.http.post",
        Performer::Manager,
        &[
            arg("url", ArgKind::Text, true),
            arg("body", ArgKind::Map, false),
            arg("json", ArgKind::Map, false),
            arg("headers", ArgKind::Map, false),
            arg("timeout", ArgKind::Seconds, false),
        ],
    ),
    reaction(
        "reactions.log.print",
        Performer::Manager,
        &[
            arg("message", ArgKind::Text, false),
            arg("level", ArgKind::OneOf(LOG_LEVELS), false),
        ],
    ),
    reaction(
        ACTOR_RUN,
        Performer::Actor,
        &[
            arg("argv", ArgKind::List, true),
            arg("timeout", ArgKind::Seconds, false),
        ],
    ),
    reaction(
        ACTOR_FIRE_EVENT,
        Performer::Actor,
        &[
            arg("tag", ArgKind::Tag, true),
            arg("data", ArgKind::EventData, false),
        ],
    ),
    reaction(
        DEVICE_SET_PIN,
        Performer::Device,
        &[arg("state", ArgKind::Text, true)],
    ),
    reaction(DEVICE_TOGGLE_PIN, Performer::Device, &[]),
];

/// The built-in reaction `key`, or `None` for a plugin.
pub fn find(key: &str) -> Option<&'static ReactionSpec> {
    REACTIONS.iter().find(|r| r.key == key)
}

/// The keys of the built-ins `performer` performs, in table order.
pub fn keys_of(performer: Performer) -> impl Iterator<Item = &'static str> {
    REACTIONS
        .iter()
        .filter(move |r| r.performer == performer)
        .map(|r| r.key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_in_their_module() {
        for (i, r) in REACTIONS.iter().enumerate() {
            assert!(REACTIONS[..i].iter().all(|o| o.key != r.key), "{}", r.key);
            let module = r.key.split('.').nth(1).unwrap();
            match r.performer {
                Performer::Actor => assert_eq!(module, ACTOR_MODULE),
                Performer::Device => assert_eq!(module, DEVICE_MODULE),
                Performer::Manager => assert!(module != ACTOR_MODULE && module != DEVICE_MODULE),
            }
        }
        assert_eq!(keys_of(Performer::Device).count(), 2);
        assert_eq!(find(ACTOR_RUN).map(|r| r.performer), Some(Performer::Actor));
    }
}
