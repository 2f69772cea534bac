//! The Mobile IPv6 daemon.

use clap::Parser;

/// Mobile IPv6 daemon: home agent, mobile node and correspondent node.
#[derive(Parser, Debug)]
#[command(name = "mip6d", version, about)]
struct Args {
    /// Configuration file.
    #[arg(short = 'c', long = "config", default_value = "/etc/mip6d.conf")]
    config: std::path::PathBuf,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    eprintln!(
        "mip6d: {}: the daemon roles are not implemented in this version; \
         use mip6ctl decode to inspect Mobile IPv6 traffic",
        args.config.display()
    );
    std::process::ExitCode::from(1)
}
