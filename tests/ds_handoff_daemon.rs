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
    key: &str,
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
        dir.join(key).display(),
        dir.join(format!("state-{}", me.0)).display()
    )
}

fn stop(mut d: Daemon) {
    if d.child.is_some() {
        d.signal(libc::SIGTERM);
        d.wait_exit();
    }
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

/// The testbed with mip6d on ha1, the client, sn1 (contact) and sn2 (snode).
struct Bed {
    tb: Testbed,
    dsa: Ipv6Addr,
    sn2: Ipv6Addr,
    /// ha1, client, sn1, sn2.
    daemons: Vec<Daemon>,
    dir: PathBuf,
}

impl Bed {
    /// `sn2_key`: sn2's shared key when it is not the group's; `sn2_env`: its
    /// environment (fault injection).
    fn up(tag: &str, sn2_key: Option<&str>, sn2_env: &[(&str, &str)]) -> Bed {
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
        let tb = Testbed::up(format!("{tag}{}", std::process::id() % 100_000), None);
        let (dsa, ha, sn1, sn2) = (
            tb.addr("M6_DSA_ADDR"),
            tb.addr("M6_HA1_ADDR"),
            tb.addr("M6_SN1_ADDR"),
            tb.addr("M6_SN2_ADDR"),
        );
        let gw = tb.addr("M6_ROUTER_SN2NET_ADDR").to_string();
        // sn2 owns the DSA too; what it sends from the DSA carries a Home Address option
        // (see ds_handoff_e2e).
        let dsa_s = dsa.to_string();
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
            &["ip", "-6", "rule", "add", "from", &dsa_s, "lookup", "4242"],
        );
        tb.sh(
            "sn2",
            &[
                "ip", "-6", "route", "add", "default", "via", &gw, "mtu", "1476", "table", "4242",
            ],
        );
        let dir = temp_dir(tag);
        let key = |name: &str, text: &str| {
            std::fs::write(dir.join(name), text).unwrap();
            std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(0o600))
                .unwrap();
        };
        key("key", "ds_handoff_daemon shared key of 32+ bytes");
        key(
            "key-sn2",
            sn2_key.unwrap_or("ds_handoff_daemon shared key of 32+ bytes"),
        );
        let conf = |f: &str| {
            std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("testbed/conf")
                    .join(f),
            )
            .unwrap()
        };
        let mut daemons = Vec::new();
        for (node, text, args, env) in [
            ("ha1", conf("ha1.conf"), vec!["--datapath", "user"], &[][..]),
            ("client", conf("cn.conf"), vec!["--datapath", "user"], &[]),
            (
                "sn1",
                conf("contact.conf")
                    + &ds_block(dsa, ha, (1, "contact", sn1), (2, sn2, "snode"), &dir, "key"),
                vec!["--datapath", "user"],
                &[],
            ),
            (
                "sn2",
                // The acceptor's per-connection binding takes the client's Mobility
                // Headers for the connection; no correspondent-node data path beside it.
                "NodeConfig CN;\n".to_string()
                    + &ds_block(
                        dsa,
                        ha,
                        (2, "snode", sn2),
                        (1, sn1, "contact"),
                        &dir,
                        "key-sn2",
                    ),
                vec!["--no-datapath"],
                sn2_env,
            ),
        ] {
            let mut d = Daemon::new(&format!("{tag}-{node}"), &text);
            let mut a = vec!["-d", "1"];
            a.extend(args);
            d.spawn_in_netns_with_env(&tb.ns(node), &a, env);
            daemons.push(d);
        }
        wait_for("ha1 to register the DSA for sn1", || {
            mip6ctl_json(&daemons[0].socket, "bc")
                .to_string()
                .contains(&sn1.to_string())
                .then_some(())
        });
        Bed {
            tb,
            dsa,
            sn2,
            daemons,
            dir,
        }
    }

    fn socket(&self, node: &str) -> PathBuf {
        let i = ["ha1", "client", "sn1", "sn2"]
            .iter()
            .position(|n| *n == node)
            .unwrap();
        self.daemons[i].socket.clone()
    }

    /// The application socket of sn1's or sn2's mip6d.
    fn app(&self, node: &str) -> PathBuf {
        mip6d::dsnode::service::app_socket_path(&self.socket(node), "hod")
    }

    fn logs(&self) {
        for d in &self.daemons {
            eprintln!("--- {}:\n{}", d.dir.display(), d.stderr());
        }
    }

    fn stop(mut self) {
        for d in self.daemons.drain(..).rev() {
            stop(d);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The client's side of one download of `total` bytes (stream `run`): the request first,
/// the upload after the download. Returns whether the download was intact.
fn download(bed: &Bed, run: usize, total: usize) -> thread::JoinHandle<bool> {
    let (ns, dsa, sn2, cn) = (bed.tb.ns("client"), bed.dsa, bed.sn2, bed.socket("client"));
    thread::spawn(move || {
        netns::enter(&ns).unwrap();
        wait_for("the client's binding to sn2 to go", || {
            let bc = mip6ctl_json(&cn, "bc").to_string();
            (!bc.contains(&sn2.to_string())).then_some(())
        });
        let mut s = TcpStream::connect(SocketAddrV6::new(dsa, PORT, 0, 0)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(&stream(0..REQUEST_LEN, 1)).unwrap();
        let mut got = vec![0; total];
        let mut off = 0;
        while off < total {
            let k = s.read(&mut got[off..]).expect("download");
            assert!(k > 0, "run {run}: end of stream after {off} bytes");
            off += k;
        }
        s.write_all(&stream(0..UPLOAD_LEN, 2)).expect("upload");
        s.shutdown(std::net::Shutdown::Write).unwrap();
        s.read_to_end(&mut Vec::new()).expect("clean end of stream");
        sha256(&got) == sha256(&stream(0..total, run))
    })
}

/// The server's end of a download: the request and the upload came along intact.
fn finish(s: &mut TcpStream) -> bool {
    let mut request = vec![0; REQUEST_LEN];
    s.read_exact(&mut request).unwrap();
    let mut upload = Vec::new();
    s.read_to_end(&mut upload).unwrap();
    // Our side's end: mip6d then releases the client's binding.
    s.shutdown(std::net::Shutdown::Write).unwrap();
    request == stream(0..REQUEST_LEN, 1) && upload == stream(0..UPLOAD_LEN, 2)
}

fn assert_no_resets(bed: &Bed) {
    let counters = tcp_counters(&bed.tb.ns("client"));
    for k in [
        "TcpEstabResets",
        "TcpOutRsts",
        "TcpExtPAWSEstab",
        "TcpExtTCPAbortOnData",
    ] {
        assert_eq!(counters.get(k), Some(&0), "client {k}: {counters:?}");
    }
}

#[test]
fn mip6d_hands_connections_off_for_the_operator_and_for_applications() {
    let bed = Bed::up("hod", None, &[]);
    let (dsa, sn2) = (bed.dsa, bed.sn2);
    let tb = &bed.tb;
    let (sock1, sock2, cn_sock) = (bed.socket("sn1"), bed.socket("sn2"), bed.socket("client"));
    let (app1, app2) = (bed.app("sn1"), bed.app("sn2"));

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
        bed.logs();
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
        bed.logs();
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
        bed.logs();
    }
    let intact = client.expect("client");
    let outcome = sn1_app.join().expect("sn1's application");
    let served = sn2_app.join().expect("sn2's application");
    let (h1, h2) = (handoffs(&sock1), handoffs(&sock2));
    assert_no_resets(&bed);
    bed.stop();

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
}

/// sn1's application: accepts one client, serves `upto` bytes of `total` (stream `run`)
/// and returns the socket.
fn serve_first(
    bed: &Bed,
    run: usize,
    upto: usize,
    ready: mpsc::Sender<()>,
) -> thread::JoinHandle<TcpStream> {
    let (ns, dsa) = (bed.tb.ns("sn1"), bed.dsa);
    thread::spawn(move || {
        netns::enter(&ns).unwrap();
        let listener = TcpListener::bind(SocketAddrV6::new(dsa, PORT, 0, 0)).unwrap();
        ready.send(()).unwrap();
        let (mut s, _) = listener.accept().unwrap();
        wait_unread(&s, REQUEST_LEN);
        s.write_all(&stream(0..upto, run)).unwrap();
        s
    })
}

/// sn2 holds another key: `mip6ctl handoff` and an application's handoff are refused
/// at once by the authentication hello, nothing is frozen, and the connection goes on
/// at sn1.
#[test]
fn a_node_without_the_groups_key_is_refused_for_authentication() {
    const TOTAL: usize = 600_000;
    let bed = Bed::up(
        "hok",
        Some("another key, not the group's, 32+ bytes long"),
        &[],
    );
    let (ready, sn1_ready) = mpsc::channel();
    let first = serve_first(&bed, 0, TOTAL / 3, ready);
    sn1_ready.recv_timeout(Duration::from_secs(10)).unwrap();
    let client = download(&bed, 0, TOTAL);
    let mut s = first.join().expect("sn1 served a third");
    let peer = v6(s.peer_addr().unwrap()).to_string();
    let sock1 = bed.socket("sn1");

    // The operator's path.
    let t = Instant::now();
    let out = mip6ctl(&[
        "handoff",
        "--conn",
        &peer,
        "--to",
        "2",
        "--socket",
        sock1.to_str().unwrap(),
    ]);
    let took = t.elapsed();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !text.contains("authentication") {
        bed.logs();
    }
    assert!(!out.status.success(), "{text}");
    // An explicit refusal, not a timeout: sn2 said it could not verify our hello.
    assert!(
        text.contains("authentication failed: node 2 could not verify our hello"),
        "{text}"
    );
    // Still ours and untouched: it takes writes.
    s.write_all(&stream(TOTAL / 3..2 * TOTAL / 3, 0))
        .expect("the connection goes on at sn1");

    // The application's path: the socket comes back with the refusal.
    let ns1 = bed.tb.ns("sn1");
    let app1 = bed.app("sn1");
    let r = thread::spawn(move || {
        netns::enter(&ns1).unwrap();
        let mut app = DsApp::connect(&app1).unwrap();
        let r = app.hand_off(s, "2", b"").unwrap();
        let mut s = r.back.expect("the socket back after a refusal");
        s.write_all(&stream(2 * TOTAL / 3..TOTAL, 0)).unwrap();
        (r.completed, r.outcome, finish(&mut s))
    })
    .join()
    .expect("sn1's application");
    let intact = client.join().expect("client");
    let (h1, h2) = (handoffs(&sock1), handoffs(&bed.socket("sn2")));
    assert_no_resets(&bed);
    bed.stop();

    assert!(!r.0, "{r:?}");
    assert!(r.1.contains("authentication failed"), "{r:?}");
    assert!(r.2, "request and upload intact");
    assert!(intact, "download intact");
    // Nothing was frozen: no phase measured, no state.
    let out: Vec<_> = h1.iter().filter(|h| h["direction"] == "out").collect();
    assert_eq!(out.len(), 2, "{h1:?}");
    for h in out {
        assert!(
            h["state"]
                .as_str()
                .unwrap()
                .contains("authentication failed"),
            "{h}"
        );
        assert!(h["state_bytes"].is_null(), "{h}");
    }
    assert!(
        h2.iter().any(|h| h["state"]
            .as_str()
            .is_some_and(|s| s.starts_with("refused: authentication failed"))),
        "sn2 records the refusal: {h2:?}"
    );
    eprintln!("refused in {took:?}");
}

/// sn2's mip6d dies (SIGKILL, by fault injection) as the Offer arrives, after it took
/// the handoff's connection: sn1 rolls back and its application goes on serving.
#[test]
fn an_acceptor_that_dies_mid_handoff_leaves_the_connection_with_the_donor() {
    const TOTAL: usize = 600_000;
    let mut bed = Bed::up(
        "hox",
        None,
        &[("MIP6D_TEST_FAULT", "acceptor-dies-on-offer")],
    );
    let (ready, sn1_ready) = mpsc::channel();
    let first = serve_first(&bed, 0, TOTAL / 2, ready);
    sn1_ready.recv_timeout(Duration::from_secs(10)).unwrap();
    let client = download(&bed, 0, TOTAL);
    let s = first.join().expect("sn1 served half");
    let ns1 = bed.tb.ns("sn1");
    let app1 = bed.app("sn1");
    let r = thread::spawn(move || {
        netns::enter(&ns1).unwrap();
        let mut app = DsApp::connect(&app1).unwrap();
        let r = app.hand_off(s, "2", b"").unwrap();
        let mut s = r.back.expect("the socket back after the rollback");
        s.write_all(&stream(TOTAL / 2..TOTAL, 0)).unwrap();
        (r.completed, r.outcome, finish(&mut s))
    })
    .join();
    if r.is_err() {
        bed.logs();
    }
    let r = r.expect("sn1's application");
    let intact = client.join().expect("client");
    let died = bed.daemons[3]
        .child
        .as_mut()
        .unwrap()
        .try_wait()
        .unwrap()
        .and_then(|st| std::os::unix::process::ExitStatusExt::signal(&st));
    bed.daemons[3].child = None;
    let h1 = handoffs(&bed.socket("sn1"));
    assert_no_resets(&bed);
    bed.stop();

    assert_eq!(died, Some(libc::SIGKILL), "sn2's mip6d died as injected");
    assert!(!r.0, "{r:?}");
    assert!(r.1.starts_with("rolled back"), "{r:?}");
    assert!(r.2, "request and upload intact");
    assert!(intact, "download intact");
    let out: Vec<_> = h1.iter().filter(|h| h["direction"] == "out").collect();
    assert_eq!(out.len(), 1, "{h1:?}");
    // Frozen and offered (phase 1 measured), then rolled back.
    assert!(out[0]["phases_us"][0].is_u64(), "{h1:?}");
}

/// Through the daemons, one connection goes sn1 → sn2 → sn1 (the applications hand it
/// on); a second goes to sn2, whose handoff back is rejected (nobody serves the port at
/// sn1 any more) and rolled back: sn2's application finishes it, and mip6d still deletes
/// the client's binding to sn2 at the end.
#[test]
fn a_connection_goes_there_and_back_and_a_rolled_back_one_releases_its_binding() {
    const TOTAL: usize = 900_000;
    let bed = Bed::up("hob", None, &[]);
    let (app1, app2) = (bed.app("sn1"), bed.app("sn2"));
    let cn = bed.socket("client");
    let sn2 = bed.sn2;

    // sn2's application: hands each connection on to sn1 after its third.
    let ns2 = bed.tb.ns("sn2");
    let a2 = app2.clone();
    let (sn2_ready, registered2) = mpsc::channel();
    let sn2_app = thread::spawn(move || {
        netns::enter(&ns2).unwrap();
        let mut app = DsApp::connect(&a2).unwrap();
        app.register(PORT).unwrap();
        sn2_ready.send(()).unwrap();
        let mut out = vec![];
        for run in 0..2 {
            let mut h = app.accept().expect("a connection from sn1");
            h.stream
                .write_all(&stream(TOTAL / 3..2 * TOTAL / 3, run))
                .unwrap();
            let mut hand = DsApp::connect(&a2).unwrap();
            let r = hand.hand_off(h.stream, "1", b"").unwrap();
            match r.back {
                None => out.push((r.completed, r.outcome, None)),
                Some(mut s) => {
                    s.write_all(&stream(2 * TOTAL / 3..TOTAL, run)).unwrap();
                    out.push((r.completed, r.outcome, Some(finish(&mut s))));
                }
            }
        }
        out
    });
    registered2.recv_timeout(Duration::from_secs(10)).unwrap();

    // sn1's application: accepts both clients, hands each to sn2 after a third, and
    // serves the first one's last third when it comes back.
    let ns1 = bed.tb.ns("sn1");
    let dsa = bed.dsa;
    let (sn1_ready, ready1) = mpsc::channel();
    let (to_sn1, sn1_told) = mpsc::channel::<()>();
    let sn1_app = thread::spawn(move || {
        netns::enter(&ns1).unwrap();
        let listener = TcpListener::bind(SocketAddrV6::new(dsa, PORT, 0, 0)).unwrap();
        let mut back = DsApp::connect(&app1).unwrap();
        back.register(PORT).unwrap();
        let mut back = Some(back);
        sn1_ready.send(()).unwrap();
        let mut out = vec![];
        for run in 0..2 {
            let (mut s, _) = listener.accept().unwrap();
            wait_unread(&s, REQUEST_LEN);
            s.write_all(&stream(0..TOTAL / 3, run)).unwrap();
            let mut app = DsApp::connect(&app1).unwrap();
            let r = app.hand_off(s, "2", b"").unwrap();
            assert!(r.completed, "run {run} to sn2: {r:?}");
            if run == 0 {
                let mut h = back
                    .as_mut()
                    .unwrap()
                    .accept()
                    .expect("the connection back from sn2");
                assert_eq!(h.from_node, 2);
                h.stream
                    .write_all(&stream(2 * TOTAL / 3..TOTAL, run))
                    .unwrap();
                out.push(finish(&mut h.stream));
                // Nobody serves the port here any more: the next handoff back is
                // rejected.
                back = None;
                to_sn1.send(()).unwrap();
            }
        }
        out
    });
    ready1.recv_timeout(Duration::from_secs(10)).unwrap();

    let c0 = download(&bed, 0, TOTAL).join();
    if c0.is_err() {
        bed.logs();
    }
    let intact0 = c0.expect("client, run 0");
    sn1_told.recv_timeout(Duration::from_secs(10)).unwrap();
    wait_for("sn1's registration to go", || {
        mip6ctl_json(&bed.socket("sn1"), "status")["roles"]["ds-handoff:hod"]["registered_ports"]
            .as_array()
            .is_some_and(|p| p.is_empty())
            .then_some(())
    });
    let c1 = download(&bed, 1, TOTAL).join();
    if c1.is_err() {
        bed.logs();
    }
    let intact1 = c1.expect("client, run 1");
    // The rolled-back connection ended at sn2: its binding must go with it.
    let released = (0..250).any(|_| {
        let gone = !mip6ctl_json(&cn, "bc")
            .to_string()
            .contains(&sn2.to_string());
        if !gone {
            thread::sleep(Duration::from_millis(20));
        }
        gone
    });
    let served1 = sn1_app.join().expect("sn1's application");
    let served2 = sn2_app.join().expect("sn2's application");
    let (h1, h2) = (handoffs(&bed.socket("sn1")), handoffs(&bed.socket("sn2")));
    assert_no_resets(&bed);
    bed.stop();

    assert_eq!((intact0, intact1), (true, true), "downloads intact");
    assert_eq!(served1, [true], "run 0 back at sn1: request and upload");
    assert!(served2[0].0 && served2[0].2.is_none(), "{served2:?}");
    assert!(!served2[1].0, "{served2:?}");
    assert!(
        served2[1].1.starts_with("rolled back: Rejected(NoService)"),
        "{served2:?}"
    );
    assert_eq!(served2[1].2, Some(true), "run 1 finished at sn2");
    assert!(
        released,
        "the client still has a binding to sn2 after the rolled-back connection ended"
    );
    let done = |h: &[serde_json::Value], dir: &str| {
        h.iter()
            .filter(|x| x["direction"] == dir && x["state"] == "completed")
            .count()
    };
    // sn1 → sn2 twice, sn2 → sn1 once (the other rolled back).
    assert_eq!(done(&h1, "out"), 2, "{h1:?}");
    assert_eq!(done(&h2, "out"), 1, "{h2:?}");
    assert_eq!(done(&h1, "in"), 1, "{h1:?}");
}
