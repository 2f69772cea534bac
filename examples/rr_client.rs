//! A mobile node's side of route optimisation against a real correspondent `mip6d`, on the
//! namespace testbed, told step by step in plain words (`scripts/demo` runs it):
//! return routability, a Binding Update and its acknowledgement, route-optimised UDP both
//! ways, and the deregistration.
//!
//! ```text
//! rr_client --testbed-prefix P [--stand-in | --home-agent] [--count N] [--kbm-out FILE] [--between CMD]
//! rr_client --ns MN-NS --cn-ns CN-NS --hoa A --coa A --cn A [--count N] [--kbm-out FILE] [--between CMD]
//! ```
//!
//! - `--testbed-prefix P` reads `$M6_STATE_DIR/P.env` (default `testbed/state`): the MN's
//!   namespace, home and current address, the client's namespace and address. The MN must
//!   be on foreign1 (`testbed/run move mn foreign1`).
//! - `--stand-in` (with `--testbed-prefix`) first installs the stand-in for the home agent
//!   (the HoA on the MN's `lo`, host routes on the router and ha1; see
//!   `tests/support/mn_stub.rs`). Otherwise that must be in place already.
//! - `--home-agent` (with `--testbed-prefix`) instead registers with the real `mip6d`
//!   home agent on ha1 first (the HoA on the MN's `lo`, a home Binding Update, the MN's
//!   side of the ip6ip6 tunnel), so the Home Test Init and Home Test go through the HA's
//!   tunnel; the home registration is removed at the end.
//! - `--count N` datagrams each way (default 1).
//! - `--kbm-out FILE` writes the Kbm of the registration and of the deregistration in hex,
//!   one per line (for `mip6ctl decode --kbm`).
//! - `--between CMD` runs `sh -c CMD` while the binding exists (after the data exchange,
//!   before the deregistration), e.g. `mip6ctl bc`.
//!
//! Root, iproute2 and ip6tables; no `mip6d` with its data path may run in the MN's
//! namespace (its `-p 135` rule would take the Mobility Headers meant for this stub).
//! Exits non-zero, saying why, when a step fails or the correspondent misbehaves.

#[path = "../tests/support/mn_stub.rs"]
mod mn_stub;
#[path = "../tests/proto_support/mod.rs"]
mod proto_support;
#[path = "../tests/support/testbed.rs"]
mod testbed;

use mn_stub::{install_stand_in, state_addr, Mn, StandIn, HOME_PORT};
use std::net::{IpAddr, Ipv6Addr};
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;
use testbed::read_state;

const USAGE: &str = "usage: rr_client --testbed-prefix P [--stand-in | --home-agent] [--count N] [--kbm-out FILE] [--between CMD]
       rr_client --ns MN-NS --cn-ns CN-NS --hoa A --coa A --cn A [--count N] [--kbm-out FILE] [--between CMD]";

#[derive(Default)]
struct Args {
    prefix: Option<String>,
    stand_in: bool,
    /// With `--home-agent`: the HA's address (from the state file).
    home_agent: Option<Ipv6Addr>,
    use_home_agent: bool,
    ns: Option<String>,
    cn_ns: Option<String>,
    hoa: Option<Ipv6Addr>,
    coa: Option<Ipv6Addr>,
    cn: Option<Ipv6Addr>,
    count: usize,
    kbm_out: Option<PathBuf>,
    between: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        count: 1,
        ..Args::default()
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--stand-in" {
            a.stand_in = true;
            continue;
        }
        if flag == "--home-agent" {
            a.use_home_agent = true;
            continue;
        }
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let addr = |v: &str| {
            v.parse::<Ipv6Addr>()
                .map_err(|e| format!("{flag} {v}: {e}"))
        };
        match flag.as_str() {
            "--testbed-prefix" => a.prefix = Some(v),
            "--ns" => a.ns = Some(v),
            "--cn-ns" => a.cn_ns = Some(v),
            "--hoa" => a.hoa = Some(addr(&v)?),
            "--coa" => a.coa = Some(addr(&v)?),
            "--cn" => a.cn = Some(addr(&v)?),
            "--count" => a.count = v.parse().map_err(|e| format!("--count {v}: {e}"))?,
            "--kbm-out" => a.kbm_out = Some(v.into()),
            "--between" => a.between = Some(v),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(a)
}

/// Fills in what the testbed's state file knows, and installs the stand-in if asked.
fn from_testbed(a: &mut Args) -> Result<(), String> {
    let Some(prefix) = a.prefix.clone() else {
        if a.stand_in || a.use_home_agent {
            return Err("--stand-in and --home-agent need --testbed-prefix".into());
        }
        return Ok(());
    };
    if a.stand_in && a.use_home_agent {
        return Err("--stand-in and --home-agent: one or the other".into());
    }
    let dir = std::env::var_os("M6_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testbed/state"));
    let state = read_state(&dir.join(format!("{prefix}.env")))?;
    let ns = |node: &str| format!("{prefix}-{node}");
    if state.get("M6_MN_LINK").map(String::as_str) != Some("foreign1") {
        return Err(format!(
            "the mobile node is not on foreign1: testbed/run --prefix {prefix} move mn foreign1"
        ));
    }
    a.ns.get_or_insert(ns("mn"));
    a.cn_ns.get_or_insert(ns("client"));
    a.hoa.get_or_insert(state_addr(&state, "M6_MN_HOME_ADDR")?);
    a.coa.get_or_insert(state_addr(&state, "M6_MN_ADDR")?);
    a.cn.get_or_insert(state_addr(&state, "M6_CLIENT_ADDR")?);
    if a.use_home_agent {
        a.home_agent = Some(state_addr(&state, "M6_HA1_ADDR")?);
        let host = format!("{}/128", a.hoa.unwrap());
        mn_stub_ip(
            &ns("mn"),
            &["ip", "addr", "add", &host, "dev", "lo", "nodad"],
        )?;
        println!("The home address on the mobile node's lo (away from home, it must own it).");
    }
    if a.stand_in {
        println!("The home agent's tunnel, stood in for by addresses and host routes:");
        let (mn_ns, router_ns, ha1_ns) = (ns("mn"), ns("router"), ns("ha1"));
        let s = StandIn {
            mn_ns: &mn_ns,
            router_ns: &router_ns,
            ha1_ns: &ha1_ns,
            router_uplink1: state_addr(&state, "M6_ROUTER_UPLINK1_ADDR")?,
        };
        for line in install_stand_in(&s, a.hoa.unwrap(), a.coa.unwrap())? {
            println!("  {line}");
        }
    }
    Ok(())
}

fn mn_stub_ip(ns: &str, cmd: &[&str]) -> Result<(), String> {
    testbed::ip_netns(ns, cmd).map(|_| ())
}

fn need<T: Clone>(v: &Option<T>, flag: &str) -> Result<T, String> {
    v.clone()
        .ok_or_else(|| format!("{flag} is required (or --testbed-prefix)"))
}

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

fn run() -> Result<(), String> {
    let mut a = parse_args()?;
    from_testbed(&mut a)?;
    let (ns, cn_ns) = (need(&a.ns, "--ns")?, need(&a.cn_ns, "--cn-ns")?);
    let (hoa, coa, cn) = (
        need(&a.hoa, "--hoa")?,
        need(&a.coa, "--coa")?,
        need(&a.cn, "--cn")?,
    );
    let mut m = Mn::start(&ns, &cn_ns, hoa, coa, cn)?;
    println!(
        "Mobile node {hoa} (home address), away at {coa} (care-of address), in {ns};\n\
         correspondent {cn}, a mip6d in {cn_ns}."
    );

    if let Some(ha) = a.home_agent {
        println!("\nHome registration with the home agent {ha}:");
        println!("  BU sent from {coa} with a Home Address option {hoa}: H and A flags, Alternate Care-of Address {coa}");
        let ba = m.home_register(ha, 50)?;
        println!(
            "  BA received from {} at {}{}: status {}, sequence {}, lifetime {} s (no IPsec on this testbed)",
            ba.src,
            ba.dst,
            ba.rh2_home
                .map(|h| format!(" with a Type 2 Routing Header for {h}"))
                .unwrap_or_default(),
            ba.status,
            ba.sequence,
            u32::from(ba.lifetime_units) * 4
        );
        check(ba.status == 0 && ba.src == ha, || {
            format!("the home registration was not accepted: {ba:?}")
        })?;
        m.queue.home_tunnel(ha, coa)?;
        println!(
            "  tunnel {coa} <-> {ha} on: the home address's traffic goes through the home agent"
        );
    }

    println!("\nReturn routability:");
    m.send_test_inits()?;
    println!("  HoTI sent from the home address {hoa} to {cn}");
    println!("  CoTI sent from the care-of address {coa} to {cn}");
    let (hot, cot) = m.receive_tests()?;
    check((hot.src, hot.dst) == (cn, hoa), || {
        format!("HoT from {} to {}", hot.src, hot.dst)
    })?;
    check((cot.src, cot.dst) == (cn, coa), || {
        format!("CoT from {} to {}", cot.src, cot.dst)
    })?;
    println!(
        "  HoT received at the home address: cookie echoed, home nonce index {}, home keygen token kept",
        hot.nonce_index
    );
    println!(
        "  CoT received at the care-of address: cookie echoed, care-of nonce index {}, care-of keygen token kept",
        cot.nonce_index
    );

    let mut keys = Vec::new();
    println!("\nBinding:");
    let lifetime_units = 50;
    println!(
        "  BU sent from {coa} with a Home Address option {hoa}: sequence {}, lifetime {} s, A flag,\n  \
         Nonce Indices (home {}, care-of {}), Binding Authorization Data from Kbm = SHA1(home token | care-of token)",
        m.next_sequence(),
        u32::from(lifetime_units) * 4,
        hot.nonce_index,
        cot.nonce_index
    );
    let ba = m.bind(lifetime_units)?;
    keys.push(ba.kbm);
    print_ba(&ba, coa, hoa);
    check(ba.status == 0 && ba.authenticator_valid, || {
        format!("the registration was not accepted: {ba:?}")
    })?;

    println!("\nRoute-optimised data:");
    for i in 1..=a.count {
        let text = format!("hello mobile node #{i}");
        let got = m.datagram_to_home(text.as_bytes())?;
        check(
            got.payload == text.as_bytes() && got.from == IpAddr::V6(cn),
            || format!("the HoA's socket received {got:?}"),
        )?;
        println!(
            "  client socket -> [{hoa}]:{HOME_PORT} \"{text}\": reached {coa} with a Type 2 Routing Header for {hoa},\n    \
             delivered to the MN's socket on the home address, from {}",
            got.from
        );
    }
    let port = m.client_port();
    for i in 1..=a.count {
        let text = format!("hello correspondent #{i}");
        let got = m.datagram_from_home(text.as_bytes(), mn_stub::PATIENCE)?;
        let got = got.ok_or("the client's socket received nothing")?;
        check(
            got.payload == text.as_bytes() && got.from == IpAddr::V6(hoa),
            || format!("the client's socket received {got:?}"),
        )?;
        println!(
            "  MN -> [{cn}]:{port} \"{text}\", from {coa} with a Home Address option:\n    \
             delivered to the client's socket from {} (the home address)",
            got.from
        );
    }

    if let Some(cmd) = &a.between {
        let st = Command::new("sh")
            .args(["-c", cmd])
            .status()
            .map_err(|e| format!("sh -c {cmd}: {e}"))?;
        check(st.success(), || format!("sh -c {cmd}: {st}"))?;
    }

    println!("\nDeregistration:");
    println!(
        "  BU sent: sequence {}, lifetime 0, Nonce Indices (home {}), Kbm = SHA1(home token)",
        m.next_sequence(),
        hot.nonce_index
    );
    let ba = m.bind(0)?;
    keys.push(ba.kbm);
    print_ba(&ba, coa, hoa);
    check(ba.status == 0 && ba.authenticator_valid, || {
        format!("the deregistration was not accepted: {ba:?}")
    })?;
    let late = m.datagram_from_home(b"after the binding", Duration::from_millis(300))?;
    let be = m.binding_error()?;
    check(late.is_none(), || {
        format!("a HAO without a binding was delivered: {late:?}")
    })?;
    println!(
        "  a datagram with a Home Address option now gets a Binding Error (status {}, home address {}) and is not delivered",
        be.status, be.home_address
    );

    if let Some(ha) = a.home_agent {
        let ba = m.home_register(ha, 0)?;
        check(ba.status == 0, || format!("home deregistration: {ba:?}"))?;
        println!("\nHome deregistration with {ha}: BA status 0");
    }

    if let Some(f) = &a.kbm_out {
        let body: String = keys
            .iter()
            .map(|k| format!("{}\n", mip6d::hex::encode(k)))
            .collect();
        std::fs::write(f, body).map_err(|e| format!("write {}: {e}", f.display()))?;
    }
    Ok(())
}

fn print_ba(ba: &mn_stub::BindingAck, coa: Ipv6Addr, hoa: Ipv6Addr) {
    let rh2 = match ba.rh2_home {
        Some(h) if h == hoa => format!("with a Type 2 Routing Header for {h}"),
        Some(h) => format!("with a Type 2 Routing Header for {h} (not the home address!)"),
        None => "without a Type 2 Routing Header".into(),
    };
    let to = if ba.dst == coa {
        "at the care-of address".to_string()
    } else {
        format!("at {} (not the care-of address!)", ba.dst)
    };
    let status = match ba.status {
        0 => "0 (accepted)".to_string(),
        s => format!("{s} (refused)"),
    };
    let auth = if ba.authenticator_valid {
        "authenticator valid"
    } else {
        "authenticator INVALID"
    };
    println!(
        "  BA received {to} {rh2}: status {status}, sequence {}, lifetime {} s, {auth}",
        ba.sequence,
        u32::from(ba.lifetime_units) * 4
    );
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rr_client: {e}");
            if e.contains("required") || e.contains("option") || e.contains("needs") {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
            ExitCode::FAILURE
        }
    }
}
