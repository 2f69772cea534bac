//! `mip6ctl`: the operator's command line.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Inspect Mobile IPv6 traffic and control a running mip6d.
#[derive(Parser, Debug)]
#[command(name = "mip6ctl", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {}
}
