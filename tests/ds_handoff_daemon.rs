//! Handoffs run by mip6d itself (`dsnode::service`) on the testbed: mip6d on ha1 (home
//! agent), the client (correspondent node), sn1 (contact, registers the DSA, donor) and
//! sn2 (acceptor), each sn with a `DistributedServer` block. The applications are
//! threads of this test in the server nodes' namespaces.
//!
//! One connection goes through the operator's path: `mip6ctl handoff` to an unknown
//! node is refused; to sn2 while no application there serves the port, sn2 rejects it
//! and sn1 resumes the connection (its application keeps writing); then, with sn2's
//! application registered, it completes. A second connection goes through the
//! application path: sn1's application passes its socket to mip6d (SCM_RIGHTS) and sn2's
//! receives it. Checked: SHA-256 of both downloads and of the request and upload, no
//! reset at the client, and `mip6ctl handoffs` on both nodes.

#[path = "support/stream.rs"]
mod stream;
#[path = "support/testbed.rs"]
mod testbed;

#[path = "daemon_support/mod.rs"]
mod daemon_support;

use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use daemon_support::{mip6ctl, mip6ctl_json, temp_dir, wait_for, Daemon};
use mip6d::dsapp::DsApp;
use mip6d::sys::{netns, tcp_repair};
use stream::{sha256, stream};
use testbed::{require, tcp_counters, Testbed, Tool};

const PORT: u16 = 8000;
const CONTROL_PORT: u16 = 7790;
const REQUEST_LEN: usize = 777;
const UPLOAD_LEN: usize = 100_000;
const TOTAL: usize = 1_200_000;

fn v6(a: SocketAddr) -> SocketAddrV6 {
    match a {
        SocketAddr::V6(a) => a,
        a => panic!("{a}"),
    }
}

fn ds_block(
    dsa: Ipv6Addr,
    ha: Ipv6Addr,
    me: (u32, &str, Ipv6Addr),
    peer: (u32, Ipv6Addr, &str),
    dir: &Path,
) -> String {
    format!(
        "DistributedServer \"hod\" {{
\tAddress {dsa};
\tHomeAgentAddress {ha};
\tNodeId {};
\tRole {};
\tLocalAddress {};
\tPeers {{
\t\tPeer {} {} {};
\t}}
\tSharedKeyFile \"{}\";
\tStateFile \"{}\";
\tControlPort {CONTROL_PORT};
}}
",
        me.0,
        me.1,
        me.2,
        peer.0,
        peer.1,
        peer.2,
        dir.join("key").display(),
        dir.join(format!("state-{}", me.0)).display()
    )
}

fn stop(mut d: Daemon) {
    if d.child.is_some() {
        d.signal(libc::SIGTERM);
        d.wait_exit();
    }
}

/// The application socket of sn's mip6d.
fn app_socket(d: &Daemon) -> PathBuf {
    mip6d::dsnode::service::app_socket_path(&d.socket, "hod")
}

/// Waits until `n` bytes the client sent are queued unread on `s`.
fn wait_unread(s: &TcpStream, n: usize) {
    let t = Instant::now();
    while (tcp_repair::unread_bytes(s.as_fd()).unwrap() as usize) < n {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "request never arrived"
        );
        thread::sleep(Duration::from_millis(1));
    }
}

fn handoffs(socket: &Path) -> Vec<serde_json::Value> {
    mip6ctl_json(socket, "handoffs")["handoffs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn mip6d_hands_connections_off_for_the_operator_and_for_applications() {
    require(
        "ds_handoff_daemon",
        &[Tool::Ip, Tool::Ip6tables, Tool::Ipset],
    );
    assert!(
        Command::new("nft")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "ds_handoff_daemon needs the `nft` command: apt-get install nftables"
    );
    let tb = Testbed::up(format!("hod{}", std::process::id() % 100_000), None);
    let (dsa, ha, sn1, sn2) = (
        tb.addr("M6_DSA_ADDR"),
        tb.addr("M6_HA1_ADDR"),
        tb.addr("M6_SN1_ADDR"),
        tb.addr("M6_SN2_ADDR"),
    );
    let gw = tb.addr("M6_ROUTER_SN2NET_ADDR").to_string();
    // sn2 owns the DSA too; what it sends from the DSA carries a Home Address option
    // (see ds_handoff_e2e).
    tb.sh(
        "sn2",
        &[
            "ip",
            "addr",
            "add",
            &format!("{dsa}/128"),
            "dev",
            "lo",
            "nodad",
        ],
    );
    tb.sh(
        "sn2",
        &[
            "ip",
            "-6",
            "rule",
            "add",
            "from",
            &dsa.to_string(),
            "lookup",
            "4242",
        ],
    );
    tb.sh(
        "sn2",
        &[
            "ip", "-6", "route", "add", "default", "via", &gw, "mtu", "1476", "table", "4242",
        ],
    );
    let dir = temp_dir("hod");
    std::fs::write(dir.join("key"), "ds_handoff_daemon shared key of 32+ bytes").unwrap();
    std::fs::set_permissions(dir.join("key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let conf = |f: &str| {
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("testbed/conf")
                .join(f),
        )
        .unwrap()
    };
    let mut daemons = Vec::new();
    for (node, text, args) in [
        ("ha1", conf("ha1.conf"), vec!["--datapath", "user"]),
        ("client", conf("cn.conf"), vec!["--datapath", "user"]),
        (
            "sn1",
            conf("contact.conf") + &ds_block(dsa, ha, (1, "contact", sn1), (2, sn2, "snode"), &dir),
            vec!["--datapath", "user"],
        ),
        (
            "sn2",
            // The acceptor's per-connection binding takes the client's Mobility Headers
            // for the connection; no correspondent-node data path beside it.
            "NodeConfig CN;\n".to_string()
                + &ds_block(dsa, ha, (2, "snode", sn2), (1, sn1, "contact"), &dir),
            vec!["--no-datapath"],
        ),
    ] {
        let mut d = Daemon::new(&format!("hod-{node}"), &text);
        let mut a = vec!["-d", "1"];
        a.extend(args);
        d.spawn_in_netns_with(&tb.ns(node), &a);
        daemons.push(d);
    }
    let logs = |ds: &[Daemon]| {
        for d in ds {
            eprintln!("--- {}:\n{}", d.dir.display(), d.stderr());
        }
    };
    wait_for("ha1 to register the DSA for sn1", || {
        mip6ctl_json(&daemons[0].socket, "bc")
            .to_string()
            .contains(&sn1.to_string())
            .then_some(())
    });
    let (sock1, sock2, cn_sock) = (
        daemons[2].socket.clone(),
        daemons[3].socket.clone(),
        daemons[1].socket.clone(),
    );
    let (app1, app2) = (app_socket(&daemons[2]), app_socket(&daemons[3]));

    // sn1's application: serves two connections from the DSA.
    let (to_main, from_sn1) = mpsc::channel::<SocketAddrV6>();
    let (to_sn1, sn1_told) = mpsc::channel::<&'static str>();
    let ns1 = tb.ns("sn1");
    let sn1_app = thread::spawn(move || {
        netns::enter(&ns1).unwrap();
        let listener = TcpListener::bind(SocketAddrV6::new(dsa, PORT, 0, 0)).unwrap();
        to_main.send(SocketAddrV6::new(dsa, PORT, 0, 0)).unwrap();
        // Connection 0: the operator's path.
        let (mut s, peer) = listener.accept().unwrap();
        wait_unread(&s, REQUEST_LEN);
        s.write_all(&stream(0..TOTAL / 2, 0)).unwrap();
        to_main.send(v6(peer)).unwrap();
        // The rejected handoff resumed this very socket: it goes on serving.
        assert_eq!(sn1_told.recv().unwrap(), "rolled back");
        s.write_all(&stream(TOTAL / 2..3 * TOTAL / 4, 0))
            .expect("the resumed connection takes writes");
        to_main.send(v6(peer)).unwrap();
        // Handed off: our descriptor is dead; close it (silently: repair mode).
        assert_eq!(sn1_told.recv().unwrap(), "handed off");
        drop(s);
        // Connection 1: the application path.
        let (mut s, _) = listener.accept().unwrap();
        wait_unread(&s, REQUEST_LEN);
        s.write_all(&stream(0..TOTAL / 2, 1)).unwrap();
        let mut app = DsApp::connect(&app1).unwrap();
        let r = app
            .hand_off(s, "2", &((TOTAL / 2) as u64).to_be_bytes())
            .unwrap();
        assert!(r.completed, "application handoff: {r:?}");
        assert!(r.back.is_none());
        r.outcome
    });
    assert!(from_sn1.recv_timeout(Duration::from_secs(10)).is_ok());

    // sn2's application: registers once it is told to, then serves what it is handed.
    let (to_sn2, sn2_told) = mpsc::channel::<()>();
    let ns2 = tb.ns("sn2");
    let sn2_app = thread::spawn(move || {
        netns::enter(&ns2).unwrap();
        let mut app = DsApp::connect(&app2).unwrap();
        sn2_told.recv().unwrap();
        app.register(PORT).unwrap();
        let mut out = vec![];
        for (run, from) in [(0usize, 3 * TOTAL / 4), (1, TOTAL / 2)] {
            let mut h = app.accept().expect("a connection handed over");
            assert_eq!(h.from_node, 1);
            assert_eq!(h.local, SocketAddrV6::new(dsa, PORT, 0, 0));
            if run == 1 {
                assert_eq!(h.app, ((TOTAL / 2) as u64).to_be_bytes(), "app data");
            }
            h.stream.write_all(&stream(from..TOTAL, run)).unwrap();
            let mut request = vec![0; REQUEST_LEN];
            h.stream.read_exact(&mut request).unwrap();
            let mut upload = Vec::new();
            h.stream.read_to_end(&mut upload).unwrap();
            // Our side's end: mip6d then releases the client's binding.
            h.stream.shutdown(std::net::Shutdown::Write).unwrap();
            out.push((request == stream(0..REQUEST_LEN, 1), sha256(&upload)));
        }
        out
    });

    // The client: two downloads, one after the other.
    let ns_c = tb.ns("client");
    let client = thread::spawn(move || {
        netns::enter(&ns_c).unwrap();
        let mut got_all = vec![];
        for run in 0..2 {
            wait_for("the client's binding to sn2 to go", || {
                let bc = mip6ctl_json(&cn_sock, "bc").to_string();
                (!bc.contains(&sn2.to_string())).then_some(())
            });
            let mut s = TcpStream::connect(SocketAddrV6::new(dsa, PORT, 0, 0)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            s.write_all(&stream(0..REQUEST_LEN, 1)).unwrap();
            let mut got = vec![0; TOTAL];
            let mut off = 0;
            while off < TOTAL {
                let k = s.read(&mut got[off..]).expect("download");
                assert!(k > 0, "run {run}: end of stream after {off} bytes");
                off += k;
            }
            s.write_all(&stream(0..UPLOAD_LEN, 2)).expect("upload");
            s.shutdown(std::net::Shutdown::Write).unwrap();
            s.read_to_end(&mut Vec::new()).expect("clean end of stream");
            got_all.push(sha256(&got) == sha256(&stream(0..TOTAL, run)));
        }
        got_all
    });

    let peer = from_sn1
        .recv_timeout(Duration::from_secs(20))
        .expect("sn1 served the first half");
    let conn = peer.to_string();
    let sock1s = sock1.to_str().unwrap();
    let ctl = |to: &str| mip6ctl(&["handoff", "--conn", &conn, "--to", to, "--socket", sock1s]);
    // An unknown node is refused before anything is touched.
    let out = ctl("9");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success() && err.contains("unknown node 9"),
        "{err}"
    );
    // No such connection.
    let out = mip6ctl(&[
        "handoff",
        "--conn",
        "[2001:db8:ffff::1]:1",
        "--to",
        "2",
        "--socket",
        sock1s,
    ]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success() && err.contains("no such connection"),
        "{err}"
    );
    // sn2 serves no such port yet: it rejects, and sn1 resumes the connection.
    let out = ctl("2");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if out.status.success() || !text.contains("rolled back") {
        logs(&daemons);
    }
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("rolled back: Rejected(NoService)"), "{text}");
    to_sn1.send("rolled back").unwrap();
    assert_eq!(
        from_sn1.recv_timeout(Duration::from_secs(20)).unwrap(),
        peer
    );
    // Now with sn2's application registered.
    to_sn2.send(()).unwrap();
    wait_for("sn2's application to register", || {
        mip6ctl_json(&sock2, "status")["roles"]["ds-handoff:hod"]["registered_ports"]
            .as_array()
            .is_some_and(|p| !p.is_empty())
            .then_some(())
    });
    let out = ctl("2");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        logs(&daemons);
    }
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("completed") && text.contains("state bytes"),
        "{text}"
    );
    to_sn1.send("handed off").unwrap();

    let client = client.join();
    if client.is_err() {
        logs(&daemons);
    }
    let intact = client.expect("client");
    let outcome = sn1_app.join().expect("sn1's application");
    let served = sn2_app.join().expect("sn2's application");
    let (h1, h2) = (handoffs(&sock1), handoffs(&sock2));
    let counters = tcp_counters(&tb.ns("client"));
    for d in daemons.drain(..).rev() {
        stop(d);
    }

    assert_eq!(intact, [true, true], "downloads intact");
    assert_eq!(outcome, "completed");
    for (run, (request, upload)) in served.iter().enumerate() {
        assert!(
            request,
            "run {run}: the request travelled with the connection"
        );
        assert_eq!(
            *upload,
            sha256(&stream(0..UPLOAD_LEN, 2)),
            "run {run}: upload"
        );
    }
    for k in [
        "TcpEstabResets",
        "TcpOutRsts",
        "TcpExtPAWSEstab",
        "TcpExtTCPAbortOnData",
    ] {
        assert_eq!(counters.get(k), Some(&0), "client {k}: {counters:?}");
    }
    // sn1 lists its three attempts (rejected, completed by mip6ctl, completed for the
    // application), each with the seven phases measured on a completed one.
    let out: Vec<_> = h1.iter().filter(|h| h["direction"] == "out").collect();
    assert_eq!(out.len(), 3, "{h1:?}");
    assert!(
        out[0]["state"].as_str().unwrap().starts_with("rolled back"),
        "{h1:?}"
    );
    for h in &out[1..] {
        assert_eq!(h["state"], "completed", "{h}");
        assert!(h["state_bytes"].as_u64().unwrap() > 0, "{h}");
        let phases = h["phases_us"].as_array().unwrap();
        assert_eq!(phases.len(), 7);
        assert!(
            phases.iter().all(|p| p.is_u64()),
            "every phase measured: {h}"
        );
    }
    let incoming: Vec<_> = h2
        .iter()
        .filter(|h| h["direction"] == "in" && h["state"] == "completed")
        .collect();
    assert_eq!(incoming.len(), 2, "{h2:?}");
    assert!(incoming.iter().all(|h| h["node"] == 1), "{h2:?}");
    eprintln!("sn1 handoffs: {h1:#?}");
    let _ = std::fs::remove_dir_all(&dir);
}
