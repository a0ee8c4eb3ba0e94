//! `reflex`: the Manager and the command-line tool; the subcommands are in the library's `cli`.

fn main() -> std::process::ExitCode {
    reflex_manager::main()
}
