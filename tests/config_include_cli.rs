//! `include`, the `mip6d` command line, the `--show-config` round trip and robustness.

use std::path::{Path, PathBuf};
use std::process::Command;

use mip6d::config::*;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mip6d-cfg-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn include_glob_relative_to_the_including_file_in_order() {
    let d = scratch("glob");
    write(&d, "conf.d/20-b.conf", "DebugLevel 2;\n");
    write(&d, "conf.d/10-a.conf", "DebugLevel 1;\nNodeConfig HA;\n");
    write(&d, "conf.d/ignored.txt", "garbage");
    let main = write(
        &d,
        "main.conf",
        "include \"conf.d/*.conf\"\nInterface \"eth0\";\n",
    );
    let c = parse_file(&main).unwrap();
    assert_eq!(c.debug_level, 2, "files are read in sorted order");
    assert_eq!(c.node_config, NodeRole::Ha);
    assert_eq!(c.interfaces.len(), 1);
}

#[test]
fn errors_in_included_files_name_the_chain() {
    let d = scratch("chain");
    write(&d, "inner.conf", "\nNodeConfig XX;\n");
    let main = write(&d, "main.conf", "DebugLevel 1;\ninclude \"inner.conf\";\n");
    let e = parse_file(&main).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{0}/inner.conf:2:12: expected a node role (CN, MN, HA), found `XX`\n\
             {0}/main.conf:2:1: note: included from here",
            d.display()
        )
    );
}

#[test]
fn include_loop_is_an_error() {
    let d = scratch("loop");
    write(&d, "b.conf", "include \"a.conf\"\n");
    let a = write(&d, "a.conf", "include \"b.conf\"\n");
    let e = parse_file(&a).unwrap_err();
    let canon = std::fs::canonicalize(&d).unwrap();
    assert_eq!(
        e.message,
        format!(
            "expected includes without loops, found an include loop: {0}/a.conf -> {0}/b.conf -> {0}/a.conf",
            canon.display()
        )
    );
    assert_eq!(e.location.unwrap().line, 1);
}

#[test]
fn include_nothing_matched_is_a_warning_for_globs_only() {
    let d = scratch("nomatch");
    let main = write(&d, "main.conf", "include \"none/*.conf\"\n");
    let p = parse_file_with(&main, &ParseOptions::default()).unwrap();
    assert_eq!(p.warnings.len(), 1);
    assert!(p.warnings[0]
        .message
        .starts_with("include \"none/*.conf\" matched no file"));
    let main = write(&d, "main2.conf", "include \"none.conf\"\n");
    let e = parse_file(&main).unwrap_err();
    assert!(
        e.message
            .starts_with("expected an existing file after `include`, found \"none.conf\""),
        "{e}"
    );
}

#[test]
fn includes_can_be_disabled() {
    let e = parse_str_with(
        "include \"/dev/null\"",
        "f",
        &ParseOptions { includes: false },
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "f:1:1: expected no `include` here: includes are disabled"
    );
}

const RICH: &str = r#"
NodeConfig MN; DebugLevel 3; DebugLogFile "/var/log/mip6d.log"; Datapath user;
DoRouteOptimizationCN disabled; MnRouterProbeTimeout 0.25; InitialSolicitTimer 7;
HaServedPrefix 2001:db8::/32; DefaultBindingAclPolicy 133;
BindingAclPolicy 2001:db8::1 (2001:db8:1::/48) deny;
Interface "eth0" { IfType CN; MnIfPreference 0; Tunnel enabled; }
Interface "wlan0";
MnHomeLink "eth0" {
  HomeAgentAddress ::; HomeAddress 2001:db8::1234/64 (2001:db8:5::/64);
  HomePrefix 2001:db8::/60; IsMobRtr true; MnRoPolicy ::1 deny; MnRoPolicy allow;
}
IPsecPolicySet { HomeAgentAddress 2001:db8::1; HomeAddress 2001:db8::1234/64; HomeAddress 2001:db8::99/64;
  IPsecPolicy HomeRegBinding UseESP 1 2; IPsecPolicy ICMP UseESP 5 block; IPsecPolicy any UseESP; }
CnBindingPolicySet { 2001:db8::7 allow; 2001:db8::7 2001:db8::8 deny; }
DistributedServer "a" { Address 2001:db8:9::1; HomeAgentAddress 2001:db8:9::2; Role snode; NodeId 40;
  Peers { Peer 1 2001:db8:9::10 contact; Peer 2 2001:db8:9::11 backup; } SharedKeyFile "k";
  HeartbeatInterval 0.05; FailureTimeout 0.123456789; HandoffDrain off; ControlPort 9;
  StateFile "/var/lib/mip6d/a.state"; }
"#;

#[test]
fn show_config_round_trips_a_config_that_uses_everything() {
    let c = parse_str(RICH, "rich.conf").unwrap();
    let shown = c.to_string();
    let again = parse_str(&shown, "shown.conf").unwrap_or_else(|e| panic!("{e}\n{shown}"));
    assert_eq!(c, again, "{shown}");
    assert_ne!(c, Config::default());
    assert!(
        shown.contains("\tIPsecPolicy ICMP UseESP 5 5 block;\n"),
        "{shown}"
    );
    assert!(shown.contains("InitialSolicitTimer 7.0;\n"), "{shown}");
    assert!(shown.contains("\tFailureTimeout 0.123456789;\n"), "{shown}");
}

/// Cheap stand-in for a fuzzer in `cargo test`: mangled versions of real files must
/// never panic, and whatever parses must survive the show/parse round trip.
#[test]
fn mutated_inputs_never_panic() {
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let alphabet = b"{};/(),=\"#:.-% \n\tx9aZ";
    let bases = [RICH, include_str!("../mip6d.conf")];
    for round in 0..4000 {
        let mut bytes = bases[round % bases.len()].as_bytes().to_vec();
        for _ in 0..(1 + next() % 6) {
            let at = (next() as usize) % bytes.len().max(1);
            match next() % 3 {
                0 => bytes[at] = alphabet[(next() as usize) % alphabet.len()],
                1 => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, alphabet[(next() as usize) % alphabet.len()]),
            }
        }
        fuzz_one(&bytes);
    }
    fuzz_one(b"");
    fuzz_one(&[0xff, 0xfe, b'"']);
    fuzz_one("NodeConfig \u{1F600};".as_bytes());
}

fn mip6d(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mip6d"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_check_config() {
    let d = scratch("cli");
    let good = write(&d, "good.conf", "NodeConfig HA;\nInterface \"eth0\";\n");
    let bad = write(&d, "bad.conf", "NodeConfig HA\n");
    let g = good.to_str().unwrap();
    let (rc, _, err) = mip6d(&["-t", "-c", g]);
    assert_eq!(rc, 0, "{err}");
    assert_eq!(
        err,
        format!("mip6d: {g}: configuration OK (NodeConfig HA)\n")
    );
    let (rc, _, err) = mip6d(&["--check-config", "-c", bad.to_str().unwrap()]);
    assert_eq!(rc, 1);
    assert_eq!(
        err,
        format!(
            "{}:1:14: error: expected `;` after `NodeConfig`, found end of file\n",
            bad.display()
        )
    );
    // -M turns the home agent into a mobile node without a home link.
    let (rc, _, err) = mip6d(&["-t", "-M", "-c", g]);
    assert_eq!(rc, 1);
    assert!(
        err.contains("error: expected at least one MnHomeLink block"),
        "{err}"
    );
    let (rc, _, err) = mip6d(&["-t", "-c", d.join("missing.conf").to_str().unwrap()]);
    assert_eq!(rc, 1);
    assert!(err.contains("cannot read the file"), "{err}");
}

#[test]
fn cli_show_config_applies_overrides_and_reparses() {
    let d = scratch("show");
    let f = write(&d, "f.conf", "NodeConfig HA;\nInterface \"eth0\";\n");
    let (rc, out, err) = mip6d(&[
        "--show-config",
        "-c",
        f.to_str().unwrap(),
        "-d",
        "7",
        "-l",
        "/tmp/log",
        "--datapath",
        "user",
    ]);
    assert_eq!(rc, 0, "{err}");
    let c = parse_str(&out, "out").unwrap();
    assert_eq!((c.debug_level, c.datapath), (7, Datapath::User));
    assert_eq!(c.debug_log_file.as_deref(), Some("/tmp/log"));
    assert_eq!(c.interfaces, vec![InterfaceConfig::new("eth0")]);
}

#[test]
fn cli_without_check_starts_the_daemon() {
    // The daemon itself is tested in tests/daemon_*.rs; here only that a valid
    // configuration gets as far as creating the control socket (which cannot succeed in
    // a directory that does not exist, so the process ends by itself).
    let d = scratch("run");
    let f = write(&d, "f.conf", "NodeConfig CN;\n");
    let sock = d.join("missing/mip6d.sock");
    let (rc, _, err) = mip6d(&[
        "-c",
        f.to_str().unwrap(),
        "-f",
        "--control-socket",
        sock.to_str().unwrap(),
    ]);
    assert_eq!(rc, 1);
    assert!(err.contains("cannot create the control socket"), "{err}");
    let (rc, _, _) = mip6d(&["-C", "-H"]);
    assert_eq!(rc, 2, "roles are mutually exclusive");
}
