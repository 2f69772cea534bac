//! The Mobile IPv6 daemon. For now it reads, checks and prints its configuration; the
//! daemon roles themselves are not implemented yet.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{ArgGroup, Parser, ValueEnum};
use mip6d::config::{self, Config, ConfigError, Datapath, NodeRole, ParseOptions};

const DEFAULT_CONFIG: &str = "/etc/mip6d.conf";

/// Mobile IPv6 daemon: home agent, mobile node and correspondent node, with Distributed
/// Servers.
#[derive(Parser, Debug)]
#[command(name = "mip6d", version, about)]
#[command(group(ArgGroup::new("role").args(["correspondent_node", "home_agent", "mobile_node"])))]
struct Args {
    /// Configuration file [default: /etc/mip6d.conf].
    #[arg(short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,

    /// Debug level; overrides DebugLevel (above 0 keeps the daemon in the foreground).
    #[arg(short = 'd', value_name = "LEVEL")]
    debug_level: Option<u32>,

    /// Debug log file; overrides DebugLogFile.
    #[arg(short = 'l', value_name = "FILE")]
    log_file: Option<String>,

    /// Run as a correspondent node (overrides NodeConfig).
    #[arg(short = 'C', long)]
    correspondent_node: bool,

    /// Run as a home agent (overrides NodeConfig).
    #[arg(short = 'H', long)]
    home_agent: bool,

    /// Run as a mobile node (overrides NodeConfig).
    #[arg(short = 'M', long)]
    mobile_node: bool,

    /// Print the effective configuration, defaults included, in mip6d.conf syntax, and exit.
    #[arg(long)]
    show_config: bool,

    /// Check the configuration and exit: 0 if it is valid, 1 if not. Touches nothing.
    #[arg(short = 't', long)]
    check_config: bool,

    /// Stay in the foreground.
    #[arg(short = 'f', long)]
    foreground: bool,

    /// Write the daemon's process id to this file.
    #[arg(long, value_name = "FILE")]
    pid_file: Option<PathBuf>,

    /// Control socket for mip6ctl.
    #[arg(long, value_name = "PATH", default_value = "/run/mip6d.sock")]
    control_socket: PathBuf,

    /// Packet path; overrides Datapath.
    #[arg(long, value_enum)]
    datapath: Option<DatapathArg>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DatapathArg {
    Auto,
    Kernel,
    User,
}

fn report(kind: &str, e: &ConfigError, file: &Path) {
    if e.location.is_some() {
        eprintln!("{}", e.to_string().replacen(": ", &format!(": {kind}"), 1));
    } else {
        eprintln!("mip6d: {}: {kind}{e}", file.display());
    }
}

/// Reads the file. A missing default file means built-in defaults, as in umip, but we say
/// so; a file named with `-c` must exist, and a broken file is never silently ignored.
fn load(args: &Args) -> Result<(Config, Vec<ConfigError>, PathBuf), ()> {
    let (path, explicit) = match &args.config {
        Some(p) => (p.clone(), true),
        None => (PathBuf::from(DEFAULT_CONFIG), false),
    };
    if !explicit && !path.exists() {
        eprintln!(
            "mip6d: {}: no such file; using the built-in defaults (a correspondent node)",
            path.display()
        );
        return Ok((Config::default(), Vec::new(), path));
    }
    match config::parse_file_with(&path, &ParseOptions::default()) {
        Ok(p) => Ok((p.config, p.warnings, path)),
        Err(e) if e.location.is_none() => {
            // I/O problems already name the file.
            eprintln!("mip6d: error: {e}");
            Err(())
        }
        Err(e) => {
            report("error: ", &e, &path);
            Err(())
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let Ok((mut cfg, mut warnings, path)) = load(&args) else {
        return ExitCode::from(1);
    };
    if let Some(role) = [
        (args.correspondent_node, NodeRole::Cn),
        (args.home_agent, NodeRole::Ha),
        (args.mobile_node, NodeRole::Mn),
    ]
    .iter()
    .find(|(on, _)| *on)
    .map(|(_, r)| *r)
    {
        cfg.override_role(role);
    }
    if let Some(d) = args.debug_level {
        cfg.debug_level = d;
    }
    if let Some(l) = &args.log_file {
        cfg.debug_log_file = Some(l.clone());
    }
    if let Some(d) = args.datapath {
        cfg.datapath = match d {
            DatapathArg::Auto => Datapath::Auto,
            DatapathArg::Kernel => Datapath::Kernel,
            DatapathArg::User => Datapath::User,
        };
    }
    let checked = cfg.check();
    let ok = checked.is_ok();
    warnings.extend(checked.warnings);
    for w in &warnings {
        report("warning: ", w, &path);
    }
    for e in &checked.errors {
        report("error: ", e, &path);
    }
    if !ok {
        return ExitCode::from(1);
    }
    if args.show_config {
        print!("{cfg}");
        return ExitCode::SUCCESS;
    }
    if args.check_config {
        eprintln!(
            "mip6d: {}: configuration OK (NodeConfig {})",
            path.display(),
            cfg.node_config.keyword()
        );
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "mip6d: {}: the configuration is valid, but the daemon roles are not implemented in \
         this version; use `mip6d -t` to check a configuration and mip6ctl decode to inspect \
         Mobile IPv6 traffic",
        path.display()
    );
    ExitCode::from(1)
}
