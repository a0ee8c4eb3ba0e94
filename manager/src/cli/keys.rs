//! `reflex keys gen`: makes the keys of reflex's message authentication.
//!
//! * An Ed25519 key pair: `NAME.key`, the secret key (mode 0600), and `NAME.pub`, its public
//!   key (mode 0644). The Manager signs actions with its secret key and Actors verify them with
//!   its public key; an agent signs its events with its own secret key and the Manager verifies
//!   them with the public key found in its `--trust` directory.
//! * A device key (`--mac`): `NAME.mac` (mode 0600), 32 random bytes shared by one device and
//!   the Manager, which both compute HMAC-SHA256 tags with it.
//! * An HTTP bearer token (`--token`): `NAME.token` (mode 0600), 32 random bytes as hex; in
//!   the Manager's trust directory it lets its holder send events as source `NAME` over
//!   `--http`, and `admin.token` authorizes `POST /reload`.
//!
//! Secret files are created with mode 0600 in one step (never written first and restricted
//! afterwards), and an existing file is never overwritten. The format of the files is
//! [`reflex_core::auth::keyfile`]'s; see `docs/security.md`.

use std::path::PathBuf;

use crate::Error;
use crate::host::hostname::hostname;
use crate::host::keyfiles::{generate_mac, generate_pair, generate_token};

/// Arguments of `reflex keys`.
#[derive(Debug, Clone, clap::Args)]
pub struct KeysArgs {
    /// What to do with keys.
    #[command(subcommand)]
    pub command: KeysCommand,
}

/// The subcommands of `reflex keys`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum KeysCommand {
    /// Generate an Ed25519 key pair (NAME.key, mode 0600, and NAME.pub), or with --mac a
    /// device's HMAC key (NAME.mac, mode 0600).
    Gen(GenArgs),
}

/// Arguments of `reflex keys gen`.
#[derive(Debug, Clone, clap::Args)]
pub struct GenArgs {
    /// The directory to write the files into (created with mode 0700 when missing).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out: PathBuf,
    /// The id of the agent, device or Manager the key belongs to; the files are named after
    /// it. Default: this host's name (required with --mac).
    #[arg(long)]
    pub name: Option<String>,
    /// Generate a device's HMAC key instead of an Ed25519 key pair.
    #[arg(long, conflicts_with = "token")]
    pub mac: bool,
    /// Generate an HTTP bearer token (NAME.token, mode 0600) for `--http` ingest as source
    /// NAME; `--name admin` makes the token that authorizes `POST /reload`.
    #[arg(long)]
    pub token: bool,
}

/// Runs `reflex keys`: exit status 0 with the files written, 1 with a message.
pub fn main(args: &KeysArgs) -> std::process::ExitCode {
    let KeysCommand::Gen(gen_args) = &args.command;
    match generate(gen_args) {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("reflex keys gen: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn generate(args: &GenArgs) -> Result<Vec<String>, Error> {
    if args.token {
        let Some(name) = &args.name else {
            return Err(Error::Auth(
                "--token needs --name NAME: the source the token sends as, or `admin`".into(),
            ));
        };
        let path = generate_token(&args.out, name)?;
        let what = if name == crate::http::tokens::ADMIN {
            "it authorizes POST /reload (reflex reload --token FILE)".to_string()
        } else {
            format!("it sends events over --http as source `{name}`")
        };
        Ok(vec![
            format!("wrote {} (secret, mode 0600)", path.display()),
            format!("keep it in the Manager's --trust directory; {what}"),
        ])
    } else if args.mac {
        let Some(name) = &args.name else {
            return Err(Error::Auth(
                "--mac needs --name DEVICE, the device's id".into(),
            ));
        };
        let path = generate_mac(&args.out, name)?;
        Ok(vec![
            format!("wrote {} (secret, mode 0600)", path.display()),
            format!(
                "put a copy in the Manager's --trust directory, and the key into {name}'s firmware"
            ),
        ])
    } else {
        let name = args.name.clone().unwrap_or_else(hostname);
        let (secret, public) = generate_pair(&args.out, &name)?;
        Ok(vec![
            format!("wrote {} (secret, mode 0600)", secret.display()),
            format!("wrote {} (public)", public.display()),
        ])
    }
}
