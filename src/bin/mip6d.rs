//! The Mobile IPv6 daemon. It reads and checks its configuration, then runs the event
//! loop (signals, control socket, systemd notification); the protocol roles plug into the
//! loop as they are implemented.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{ArgGroup, Parser, ValueEnum};
use mip6d::config::{self, Config, ConfigError, Datapath, NodeRole, ParseOptions};
use mip6d::daemon::reload::{Overrides, Source};
use mip6d::daemon::{logging, Daemon, Settings};
use mip6d::datapath::ha_user::{self, HaUserPath};
use mip6d::datapath::kernel::cn::CnKernelPath;
use mip6d::datapath::kernel::ha::HaKernelPath;
use mip6d::datapath::probe::Backend;
use mip6d::datapath::user::CnUserPath;
use mip6d::proto::cn::{Cn, CnConfig};
use mip6d::proto::ha::{Ha, HaConfig, HomePrefix};
use ring::rand::SystemRandom;
use std::sync::Arc;

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

    /// Netfilter queue the user data path receives on; it also uses the next one (route
    /// optimisation), and a home agent the one after (its tunnel). Queue numbers are per
    /// network namespace.
    #[arg(long, value_name = "N", default_value_t = mip6d::datapath::user::DEFAULT_QUEUE)]
    nfqueue: u16,

    /// The tunnel on the user data path (home agent; mobile node: its reverse tunnel):
    /// `seg6` in the kernel (SRv6 lightweight tunnels), `queue` through a netfilter queue,
    /// `auto` the kernel's when it can. The default stays `queue` until the mobile node
    /// decapsulates in the kernel too (see mip6d(8)).
    #[arg(long, value_enum, default_value = "queue")]
    tunnel: TunnelArg,

    /// Leave the network alone: no netfilter rules, queues or raw sockets; only signals,
    /// timers and the control socket run (for trying a configuration, and for tests that
    /// run many daemons side by side).
    #[arg(long)]
    no_datapath: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum TunnelArg {
    Auto,
    Seg6,
    Queue,
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
    // Before anything opens a file or a socket: see ensure_stdio_open.
    if let Err(e) = mip6d::sys::process::ensure_stdio_open() {
        eprintln!("mip6d: cannot open /dev/null: {e}");
        return ExitCode::from(1);
    }
    let args = Args::parse();
    let Ok((mut cfg, mut warnings, path)) = load(&args) else {
        return ExitCode::from(1);
    };
    let overrides = Overrides {
        role: [
            (args.correspondent_node, NodeRole::Cn),
            (args.home_agent, NodeRole::Ha),
            (args.mobile_node, NodeRole::Mn),
        ]
        .iter()
        .find(|(on, _)| *on)
        .map(|(_, r)| *r),
        debug_level: args.debug_level,
        log_file: args.log_file.clone(),
        datapath: args.datapath.map(|d| match d {
            DatapathArg::Auto => Datapath::Auto,
            DatapathArg::Kernel => Datapath::Kernel,
            DatapathArg::User => Datapath::User,
        }),
    };
    overrides.apply(&mut cfg);
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
    run(args, cfg, path, overrides)
}

/// Resolves a path before the daemon may change directory, so that a reload reads the same
/// file and the pid file and socket are removed where they were made.
fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn run(args: Args, cfg: Config, path: PathBuf, overrides: Overrides) -> ExitCode {
    // umip stays in the foreground when DebugLevel > 0 and no DebugLogFile is set. Under
    // systemd (NOTIFY_SOCKET set) we never fork: the service manager tracks the process it
    // started, and a forked child's notifications would be refused.
    let foreground = args.foreground
        || (cfg.debug_level > 0 && cfg.debug_log_file.is_none())
        || std::env::var_os("NOTIFY_SOCKET").is_some();
    let log_file = cfg
        .debug_log_file
        .as_deref()
        .map(|f| absolute(Path::new(f)));
    let settings = Settings {
        source: Source {
            path: absolute(&path),
            explicit: args.config.is_some(),
        },
        overrides,
        foreground,
        pid_file: args.pid_file.as_deref().map(absolute),
        control_socket: absolute(&args.control_socket),
    };
    // Fork now, while the process has one thread and no socket.
    let ready = if foreground {
        None
    } else {
        match mip6d::sys::process::daemonize() {
            Ok(r) => Some(r),
            Err(e) => {
                eprintln!("mip6d: cannot go to the background: {e}");
                return ExitCode::from(1);
            }
        }
    };
    let target = match (&log_file, foreground) {
        (Some(f), _) => logging::Target::File(f),
        (None, true) => logging::Target::Stderr,
        (None, false) => logging::Target::Syslog,
    };
    let log = match logging::init(cfg.debug_level, target) {
        Ok(l) => l,
        Err(e) => {
            let f = log_file.as_deref().unwrap_or(Path::new("?"));
            eprintln!("mip6d: cannot open the log file {}: {e}", f.display());
            return ExitCode::from(1);
        }
    };
    let daemon = match Daemon::start(settings, cfg, log) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("mip6d: {e}");
            if !foreground || log_file.is_some() {
                tracing::error!("{e}");
            }
            return ExitCode::from(1);
        }
    };
    let mut daemon = daemon;
    // Membership is UDP on the control port only, so it runs with --no-datapath too.
    let roles = if args.no_datapath {
        Ok(None)
    } else {
        start_roles(&mut daemon, args.nfqueue, args.tunnel)
    };
    let started = roles.and_then(|dsa| mip6d::ds::membership_machine::start_all(&mut daemon, dsa));
    let started = started.and_then(|()| mip6d::dsnode::service::start_all(&mut daemon));
    if let Err(e) = started {
        eprintln!("mip6d: {e}");
        if !foreground || log_file.is_some() {
            tracing::error!("{e}");
        }
        // Dropping the daemon removes whatever the roles had installed.
        return ExitCode::from(1);
    }
    if let Some(r) = ready {
        if let Err(e) = r.done() {
            tracing::warn!("detaching from the terminal: {e}");
        }
    }
    match daemon.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            if foreground && log_file.is_none() {
                // Already on standard error through the log.
            } else {
                eprintln!("mip6d: {e}");
            }
            ExitCode::from(1)
        }
    }
}

/// Picks the packet path and plugs the roles into the loop. Every node is a correspondent
/// node too (umip: the CN part runs in every role): a home agent runs the `Ha` machine,
/// which embeds it, and so does the mobile node. A Distributed Servers member with a
/// `ContactInterface` runs a held mobile node role for the DSA instead (returned: the
/// membership releases it while this node is the contact).
fn start_roles(
    daemon: &mut Daemon,
    queue: u16,
    tunnel: TunnelArg,
) -> Result<Option<mip6d::ds::contact_home::DsaLink>, String> {
    let cfg = daemon.config().clone();
    // Before anything is installed: what a killed daemon left would collide with it.
    mip6d::daemon::leftovers::remove_all();
    let kernel = select_datapath(&cfg)? == Backend::Kernel;
    let now = std::time::Instant::now();
    let cn_config = CnConfig {
        route_optimization: cfg.do_route_optimization_cn,
        ..CnConfig::default()
    };
    if matches!(cfg.node_config, NodeRole::Ha) {
        let (home_if, ha_config) = ha_config(&cfg, cn_config)?;
        let ha = Ha::new(ha_config, Arc::new(SystemRandom::new()), now)
            .map_err(|_| "home agent: no randomness for the nonces".to_string())?;
        if kernel {
            let path = HaKernelPath::start(ha, &home_if, daemon.registry_mut())?;
            return daemon.add_machine(Box::new(path)).map(|()| None);
        }
        let kernel_tunnels = kernel_tunnels(tunnel)?;
        let path = HaUserPath::start(ha, &home_if, queue, kernel_tunnels, daemon.registry_mut())?;
        return daemon.add_machine(Box::new(path)).map(|()| None);
    }
    let cn = Cn::new(cn_config, Arc::new(SystemRandom::new()), now)
        .map_err(|_| "correspondent node: no randomness for the nonces".to_string())?;
    if matches!(cfg.node_config, NodeRole::Mn) {
        use mip6d::datapath::mn_path::EngineChoice;
        // The kernel's own tunnel makes the SRv6 reverse tunnel moot.
        let kernel_tunnel = !kernel && kernel_tunnels(tunnel)?;
        let engine = if kernel {
            EngineChoice::Kernel
        } else {
            EngineChoice::Queues(queue)
        };
        let path = mip6d::datapath::mn_kernel::start(
            &cfg,
            cn,
            engine,
            kernel_tunnel,
            daemon.registry_mut(),
            now,
        )?;
        return daemon.add_machine(Box::new(path)).map(|()| None);
    }
    if let Some(ds) = mip6d::ds::membership_machine::contact_block(&cfg) {
        use mip6d::datapath::mn_path::EngineChoice;
        let engine = if kernel {
            EngineChoice::Kernel
        } else {
            EngineChoice::Queues(queue)
        };
        let (path, link) =
            mip6d::ds::contact_home::start(&cfg, ds, cn, engine, daemon.registry_mut(), now)?;
        return daemon.add_machine(Box::new(path)).map(|()| Some(link));
    }
    if kernel {
        let path = CnKernelPath::start(cn, daemon.registry_mut())?;
        return daemon.add_machine(Box::new(path)).map(|()| None);
    }
    let path = CnUserPath::start(cn, queue, daemon.registry_mut())?;
    daemon.add_machine(Box::new(path)).map(|()| None)
}

/// Settles `--tunnel` against the running kernel (`datapath::seg6::probe`).
fn kernel_tunnels(asked: TunnelArg) -> Result<bool, String> {
    if asked == TunnelArg::Queue {
        tracing::info!("tunnel: queue (as asked)");
        return Ok(false);
    }
    match (mip6d::datapath::seg6::probe(), asked) {
        (Ok(()), _) => {
            tracing::info!("tunnel: seg6 (the kernel has SRv6 lightweight tunnels)");
            Ok(true)
        }
        (Err(why), TunnelArg::Seg6) => Err(format!("--tunnel seg6: {why}")),
        (Err(why), _) => {
            tracing::info!("tunnel: queue ({why})");
            Ok(false)
        }
    }
}

/// Settles `Datapath` against the running kernel (`datapath::probe`) and logs the choice
/// with its reason. Every role runs on either backend.
fn select_datapath(cfg: &config::Config) -> Result<Backend, String> {
    use mip6d::datapath::probe;
    let tunnels = matches!(cfg.node_config, NodeRole::Ha | NodeRole::Mn);
    let asked = match cfg.datapath {
        Datapath::Auto => "auto",
        Datapath::Kernel => "kernel",
        Datapath::User => "user",
    };
    let sel = probe::select(cfg.datapath, || probe::probe_kernel(tunnels))?;
    tracing::info!(
        "Datapath {asked}: {} ({})",
        sel.backend.keyword(),
        sel.reason
    );
    Ok(sel.backend)
}

/// The home agent's settings from the configuration. The home link is the first
/// `Interface` that is not declared for another role. The home prefixes are
/// `HaServedPrefix` when given, otherwise the global prefixes on the home interface at
/// start, with an infinite valid lifetime (this data path does not follow the home
/// link's Router Advertisements yet).
fn ha_config(cfg: &config::Config, cn: CnConfig) -> Result<(String, HaConfig), String> {
    let home_if = cfg
        .interfaces
        .iter()
        .find(|i| matches!(i.if_type, None | Some(NodeRole::Ha)))
        .map(|i| i.name.clone())
        .ok_or_else(|| {
            "NodeConfig HA needs an Interface statement naming the home link".to_string()
        })?;
    let prefixes: Vec<(std::net::Ipv6Addr, u8)> = if cfg.ha_served_prefixes.is_empty() {
        ha_user::interface_prefixes(&home_if)?
    } else {
        cfg.ha_served_prefixes
            .iter()
            .map(|p| (p.addr, p.len))
            .collect()
    };
    if prefixes.is_empty() {
        return Err(format!(
            "home interface {home_if} has no global address, so no home prefix to serve"
        ));
    }
    let home_prefixes = prefixes
        .into_iter()
        .map(|(prefix, len)| HomePrefix {
            prefix,
            len,
            valid_until: None,
        })
        .collect();
    Ok((
        home_if,
        HaConfig {
            home_prefixes,
            max_binding_life: std::time::Duration::from_secs(u64::from(cfg.ha_max_binding_life)),
            accept_mobile_router: cfg.ha_accept_mob_rtr,
            key_mgmt_mobility: cfg.key_mng_mob_capability,
            cn,
            ..HaConfig::default()
        },
    ))
}
