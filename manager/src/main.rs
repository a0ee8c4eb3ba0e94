//! `reflex`: the Manager and the command-line tool. Each subcommand lives in its own module.

mod check;
mod cli;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    reflex_manager::init_logging();
    match cli.command {
        Command::Check(args) => check::run(&args),
        Command::Manager(args) => reflex_manager::daemon::main(&args),
        Command::Publisher(args) => reflex_manager::publisher::main(&args),
        Command::Send(args) => reflex_manager::send::main(&args),
        Command::Watch(args) => reflex_manager::watch::main(&args),
        Command::Reload(args) => reflex_manager::reload::main(&args),
        Command::Demo(args) => reflex_manager::demo::main(&args),
        Command::Keys(args) => reflex_manager::keys::main(&args),
    }
}
