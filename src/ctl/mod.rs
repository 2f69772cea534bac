//! `mip6ctl`: the operator's command line.

pub mod capture;
pub mod client;
pub mod decode;
pub mod handoffs;
pub mod members;

use clap::{Args, Parser, Subcommand};
use std::fs::File;
use std::io::{self, BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::hex;
use crate::wire::packet;

/// Inspect Mobile IPv6 traffic and control a running mip6d.
#[derive(Parser, Debug)]
#[command(name = "mip6ctl", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Decode captured IPv6 packets: Mobility Header, Home Address option, Type 2
    /// Routing Header, DHAAD, Mobile Prefix and Router Advertisement messages.
    Decode(DecodeArgs),
    /// Show the running daemon: version, pid, role, uptime, configuration, reloads.
    Status(QueryArgs),
    /// Show the binding cache (home agent and correspondent node roles).
    Bc(QueryArgs),
    /// Show the binding update list (mobile node role).
    Bul(QueryArgs),
    /// Show message counters and control socket statistics.
    Stats(QueryArgs),
    /// Show the Distributed Servers membership view: this node's role and rank, the
    /// epoch, the contact, each member's role, address and liveness, the DSA sequence.
    Members(QueryArgs),
    /// Hand a live TCP connection to the DSA over to another server node: mip6d takes
    /// the connection from the process that owns it (that process must then close its
    /// descriptor) and waits until the handoff is over.
    Handoff(HandoffArgs),
    /// Show recent handoffs: direction, connection, the other node, outcome, state
    /// size and the seven phases in milliseconds.
    Handoffs(QueryArgs),
}

#[derive(Args, Debug)]
struct HandoffArgs {
    /// The client's end of the connection, [ADDRESS]:PORT.
    #[arg(long, value_name = "[CLIENT]:PORT")]
    conn: String,
    /// The acceptor: a node id or address from the DistributedServer block's Peers.
    #[arg(long, value_name = "NODE")]
    to: String,
    /// The DistributedServer block (when the node runs several).
    #[arg(long, value_name = "NAME")]
    ds: Option<String>,
    /// Return once the handoff started instead of waiting for its end.
    #[arg(long)]
    no_wait: bool,
    /// Print the daemon's answer as JSON (one line).
    #[arg(long)]
    json: bool,
    /// The daemon's control socket.
    #[arg(long, value_name = "PATH", default_value = client::DEFAULT_SOCKET)]
    socket: PathBuf,
}

fn run_handoff(a: &HandoffArgs) -> ExitCode {
    match handoffs::hand_off(&a.socket, &a.conn, &a.to, a.ds.as_deref(), !a.no_wait) {
        Ok((rec, ok)) => {
            let text = if a.json {
                format!("{rec}\n")
            } else if a.no_wait {
                format!("handoff {} started\n", rec["id"])
            } else {
                handoffs::render_one(&rec)
            };
            let _ = io::stdout().lock().write_all(text.as_bytes());
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("mip6ctl handoff: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Args, Debug)]
struct QueryArgs {
    /// Print the daemon's answer as JSON (one line) instead of a table.
    #[arg(long)]
    json: bool,
    /// The daemon's control socket.
    #[arg(long, value_name = "PATH", default_value = client::DEFAULT_SOCKET)]
    socket: PathBuf,
}

fn run_query(cmd: crate::daemon::control::Command, args: &QueryArgs) -> ExitCode {
    let data = match client::query(&args.socket, cmd) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("mip6ctl {}: {e}", cmd.name());
            return ExitCode::FAILURE;
        }
    };
    let text = if args.json {
        format!("{data}\n")
    } else {
        client::render(cmd, &data)
    };
    match io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mip6ctl {}: writing output: {e}", cmd.name());
            ExitCode::FAILURE
        }
    }
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["pcap", "hex"])))]
struct DecodeArgs {
    /// A pcap or pcapng capture (link types Ethernet, raw IP, IPv6, Linux cooked).
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    /// Whole IPv6 packets in hex, one argument per packet.
    #[arg(long, value_name = "HEX", num_args = 1..)]
    hex: Vec<String>,
    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,
    /// Binding management key (20 bytes, hex): verify the Binding Authorization Data of
    /// Binding Updates and Acknowledgements. Repeat it, or separate keys with commas, to
    /// check several bindings at once: an authenticator is valid when any key verifies it.
    #[arg(long, value_name = "HEX", value_delimiter = ',')]
    kbm: Vec<String>,
}

/// Exit status for input that could not be read at all (as opposed to malformed packets,
/// which are reported per packet).
const EXIT_UNREADABLE: u8 = 2;

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Decode(args) => match run_decode(&args, &mut io::stdout().lock()) {
            Ok(()) => ExitCode::SUCCESS,
            // A reader that stops early (`| head`) is not an error of the input.
            Err(DecodeError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => {
                ExitCode::SUCCESS
            }
            Err(DecodeError::Output(e)) => {
                eprintln!("mip6ctl decode: writing output: {e}");
                ExitCode::FAILURE
            }
            Err(DecodeError::Input(msg)) => {
                eprintln!("mip6ctl decode: {msg}");
                ExitCode::from(EXIT_UNREADABLE)
            }
        },
        Command::Status(a) => run_query(crate::daemon::control::Command::Status, &a),
        Command::Bc(a) => run_query(crate::daemon::control::Command::Bc, &a),
        Command::Bul(a) => run_query(crate::daemon::control::Command::Bul, &a),
        Command::Stats(a) => run_query(crate::daemon::control::Command::Stats, &a),
        Command::Members(a) => run_query(crate::daemon::control::Command::Members, &a),
        Command::Handoff(a) => run_handoff(&a),
        Command::Handoffs(a) => run_query(crate::daemon::control::Command::Handoffs, &a),
    }
}

/// Why decoding stopped: unreadable input (exit status 2) or a failed write.
#[derive(Debug)]
enum DecodeError {
    Input(String),
    Output(io::Error),
}

impl From<String> for DecodeError {
    fn from(msg: String) -> Self {
        DecodeError::Input(msg)
    }
}

fn parse_kbm(text: &str) -> Result<[u8; 20], String> {
    let bytes = hex::decode(text).map_err(|e| format!("--kbm: {e}"))?;
    bytes.as_slice().try_into().map_err(|_| {
        format!(
            "--kbm: expected 20 bytes (40 hex digits), got {}",
            bytes.len()
        )
    })
}

fn emit_one(
    out: &mut dyn Write,
    args: &DecodeArgs,
    keys: &[[u8; 20]],
    index: usize,
    ipv6: Result<&[u8], String>,
) -> Result<(), DecodeError> {
    let write_err = DecodeError::Output;
    let (kind, detail) = match ipv6 {
        Ok(raw) => match packet::parse(raw) {
            Ok(p) => {
                if args.json {
                    let v = decode::render_json(index, raw, &p, keys);
                    writeln!(out, "{v}").map_err(write_err)?;
                } else {
                    write!(
                        out,
                        "#{index} {}",
                        decode::render_text_checked(raw, &p, keys)
                    )
                    .map_err(write_err)?;
                }
                return Ok(());
            }
            Err(e) => (e.kind.name().to_string(), e.to_string()),
        },
        Err(detail) => ("link-layer".to_string(), detail),
    };
    if args.json {
        let v = decode::render_json_unreadable(index, &kind, &detail);
        writeln!(out, "{v}").map_err(write_err)
    } else {
        writeln!(out, "#{index} not decoded: {detail}").map_err(write_err)
    }
}

fn run_decode(args: &DecodeArgs, out: &mut dyn Write) -> Result<(), DecodeError> {
    let keys = args
        .kbm
        .iter()
        .map(|k| parse_kbm(k))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(path) = &args.pcap {
        let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut reader = capture::CaptureReader::new(BufReader::new(file))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let mut index = 0;
        while let Some(frame) = reader
            .next_frame()
            .map_err(|e| format!("{}: frame {}: {e}", path.display(), index + 1))?
        {
            index += 1;
            emit_one(out, args, &keys, index, capture::ipv6_payload(&frame))?;
        }
    } else {
        // Validate every argument before printing anything, so a typo in the third packet
        // does not leave half a report behind.
        let packets = args
            .hex
            .iter()
            .enumerate()
            .map(|(i, h)| hex::decode(h).map_err(|e| format!("--hex argument {}: {e}", i + 1)))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, p) in packets.iter().enumerate() {
            emit_one(out, args, &keys, i + 1, Ok(p))?;
        }
    }
    Ok(())
}
