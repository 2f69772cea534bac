//! The story of Mobile IPv6 (RFC 6275), told by the simulator for a newcomer: a mobile
//! node leaves home, registers with its home agent, starts route optimisation with a
//! correspondent, talks to it directly, moves again and comes home.
//!
//! `examples/mip6_story.rs` prints it and writes the pcap; `tests/story.rs` checks it.
//! It lives here, inside the simulator, because the machines, the links, the HA data path
//! and the invariant checks are the simulator's ([`Profile::Story`] sets them up with
//! fixed delays, no loss and no attacker); the example and the test must run the very
//! same story.
//!
//! Timing is deterministic (virtual clock, fixed delays); the bytes of cookies, nonces,
//! tokens and authenticators come from the machines' real randomness and change from
//! run to run.

use super::*;
use mip6d::crypto::rr::{self, Kbm, KeygenToken};
use mip6d::ctl::decode::{check_authenticator, AuthCheck};
use mip6d::hex;
use mip6d::proto::cn::MAX_RR_BINDING_LIFETIME;
use mip6d::wire::checksum;
use std::fmt::Write as _;

/// How long the home agent's Duplicate Address Detection takes: one Neighbour
/// Solicitation and RetransTimer (RFC 4861 §10: 1 s) without an answer.
pub const DAD_TIME: Duration = Duration::from_millis(1000);
/// One-way delays of the access links; a packet crosses the sender's and the receiver's.
const MN_LINK: Duration = Duration::from_millis(10);
const HA_LINK: Duration = Duration::from_millis(2);
const CN_LINK: Duration = Duration::from_millis(15);
const HA_LIFETIME: Duration = Duration::from_secs(600);
const CN_LIFETIME: Duration = MAX_RR_BINDING_LIFETIME;
/// UDP ports of the data exchanged: dynamic ones (RFC 6335), so no dissector in tshark
/// mistakes the datagrams for some well-known protocol.
const MN_PORT: u16 = 49_152;
const CN_PORT: u16 = 49_153;
/// The Binding Update before the first one the mobile node sends.
const INITIAL_SEQUENCE: u16 = 0;
/// Where the pcap's clock starts (2026-01-01 00:00:00 UTC): fixed, so two runs give
/// files that differ only in the random bytes.
const PCAP_EPOCH_SECS: u64 = 1_767_225_600;

/// Puts the simulator in story shape: one mobile node, home agent and correspondent on
/// loss-free links with fixed delays. Called from `Sim::new` for [`Profile::Story`].
pub(super) fn setup(sim: &mut Sim) {
    let fixed = |d: Duration| Link {
        min: d,
        max: d,
        loss: 0.0,
        dup: 0.0,
    };
    let sysrng = Arc::new(SystemRandom::new());
    sim.mn_link = fixed(MN_LINK);
    sim.ha_link = fixed(HA_LINK);
    sim.legacy = false;
    sim.mn = Mn::new(
        MnConfig {
            home_address: hoa(),
            home_agents: vec![ha_addr(0)],
            max_ha_binding_life: HA_LIFETIME,
            max_cn_binding_life: CN_LIFETIME,
            // Ask the correspondent for a Binding Acknowledgement, so the story (and
            // the pcap) shows both authenticated messages.
            use_cn_bu_ack: true,
            initial_sequence: INITIAL_SEQUENCE,
            ..MnConfig::default()
        },
        sysrng.clone(),
    );
    let ha = Ha::new(
        HaConfig {
            home_prefixes: vec![HomePrefix {
                prefix: a("2001:db8:1::"),
                len: 64,
                valid_until: None,
            }],
            ..HaConfig::default()
        },
        sysrng.clone(),
        sim.base,
    )
    .unwrap();
    sim.has = vec![HaNode {
        ha,
        routes: HashMap::new(),
        booted: Duration::ZERO,
        last_accept: HashMap::new(),
        guard_until: HashMap::new(),
    }];
    sim.cns = vec![CnNode {
        cn: Cn::new(CnConfig::default(), sysrng, sim.base).unwrap(),
        addr: cn_addr(0),
        booted: Duration::ZERO,
        issued: HashMap::new(),
        last_accept: HashMap::new(),
        link: fixed(CN_LINK),
    }];
    sim.heal_ok = true;
    sim.max_lifetime = HA_LIFETIME;
    sim.tap = Some(Vec::new());
}

// ---- what the story hands back --------------------------------------------------------

/// One packet as it left a node, numbered as in the pcap (and in `mip6ctl decode`).
#[derive(Clone, Debug)]
pub struct Captured {
    pub number: usize,
    pub at: Duration,
    pub from: &'static str,
    /// `"nowhere"` when nothing routed it.
    pub to: &'static str,
    /// `"MN→HA BU(H)+HAO"`, `"HA→MN tunnel[HoT]"`, `"CN→MN data+RH2"`, …: who, whom and
    /// what, for checking the order of events.
    pub label: String,
    pub bytes: Vec<u8>,
}

/// A binding management key recomputed from the keygen tokens seen on the wire
/// (RFC 6275 §5.2.5), and the Binding Update and Acknowledgement it authenticates.
#[derive(Clone, Debug)]
pub struct KeyUse {
    pub kbm: Kbm,
    /// Sequence number of the Binding Update.
    pub seq: u16,
    /// Packet numbers of the BU and (once seen) the BA.
    pub bu: usize,
    pub ba: Option<usize>,
    /// `mip6d::ctl::decode::check_authenticator` on each, with this key.
    pub bu_auth: Option<AuthCheck>,
    pub ba_auth: Option<AuthCheck>,
    /// Deleting the binding: Kbm from the home token alone (§5.2.6).
    pub deregistration: bool,
}

/// The machines at the end of the story.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndState {
    pub location: Location,
    pub home_registered: bool,
    pub mn_cn_binding: bool,
    pub mn_home_tunnel: bool,
    pub mn_route_optimised: usize,
    pub ha_bindings: usize,
    pub ha_routes: usize,
    pub cn_bindings: usize,
}

pub struct Story {
    /// The narrated timeline and summary, ready to print.
    pub text: String,
    pub packets: Vec<Captured>,
    /// Every non-send action, as (time, who, action).
    pub actions: Vec<(Duration, &'static str, Action)>,
    pub keys: Vec<KeyUse>,
    /// The simulator's report: its invariant violations and counters.
    pub report: Report,
    pub end: EndState,
}

impl Story {
    /// The packets as a classic pcap (link type 101, raw IP; microseconds of the
    /// virtual clock), which `mip6ctl decode` and tshark read.
    pub fn pcap(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&4u16.to_le_bytes());
        out.extend_from_slice(&0i32.to_le_bytes()); // thiszone
        out.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
        out.extend_from_slice(&65_535u32.to_le_bytes()); // snaplen
        out.extend_from_slice(&101u32.to_le_bytes()); // LINKTYPE_RAW
        for p in &self.packets {
            let secs = PCAP_EPOCH_SECS + p.at.as_secs();
            out.extend_from_slice(&(secs as u32).to_le_bytes());
            out.extend_from_slice(&p.at.subsec_micros().to_le_bytes());
            let len = p.bytes.len() as u32;
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&p.bytes);
        }
        out
    }
}

// ---- the story ------------------------------------------------------------------------

/// Runs the story: the same events at the same virtual times on every run.
pub fn run() -> Story {
    let sim = Sim::new(Params {
        seed: 6275,
        profile: Profile::Story,
        plant: Plant::None,
        trace: false,
    });
    let mut t = Teller {
        sim,
        text: String::new(),
        packets: Vec::new(),
        actions: Vec::new(),
        home_tokens: HashMap::new(),
        care_of_tokens: HashMap::new(),
        keys: Vec::new(),
        snapshots: Vec::new(),
        data_sent: 0,
    };
    let s = Duration::from_secs;
    let ms = Duration::from_millis;
    let (coa1, coa2) = (coa_addr(1), coa_addr(2));

    t.intro();

    t.heading("1. At home");
    t.say(&format!(
        "The mobile node (MN) sits on its home link with its home address {}. \
         Nothing mobile is going on: the correspondent (CN) reaches it by plain IPv6 routing.",
        hoa()
    ));
    t.sim.at(
        Duration::ZERO,
        Ev::Move(Movement::AtHome {
            iface: 1,
            preference: 5,
        }),
    );
    t.until(ms(500));
    t.exchange();
    t.snapshot("1. at home");

    t.heading("2. The mobile node leaves home");
    t.say(&format!(
        "It attaches to a foreign link and forms the care-of address {coa1}. It tells its home \
         agent (HA) with a Binding Update (H flag: home registration), sent from the care-of \
         address with the home address in a Home Address option (HAO). The HA first makes sure \
         nobody else uses the home address (Duplicate Address Detection), then installs the \
         binding, a tunnel to the care-of address, a route and proxy Neighbour Discovery, and \
         answers with a Binding Acknowledgement carried by a Type 2 Routing Header (RH2)."
    ));
    t.sim.at(
        s(2),
        Ev::Move(Movement::CoaUp {
            iface: 1,
            coa: coa1,
            preference: 5,
        }),
    );
    t.until(s(6));
    t.snapshot("2. registered at home");

    t.heading("3. Traffic goes through the home agent");
    t.say(
        "The CN still sends to the home address. The HA intercepts the packet on the home link \
         (proxy ND) and tunnels it to the care-of address (ip6ip6); the MN answers through the \
         reverse tunnel.",
    );
    t.exchange();
    t.snapshot("3. via the HA");

    t.heading("4. Route optimisation: return routability");
    t.say(
        "The MN wants the direct path. To prove to the CN that it owns both addresses it runs \
         return routability: a Home Test Init through the HA tunnel (tests the home address) \
         and a Care-of Test Init straight from the care-of address. The CN answers each with a \
         keygen token. From the two tokens the MN computes Kbm = SHA1(home token | care-of \
         token) and signs its Binding Update with it (Nonce Indices + Binding Authorization \
         Data); the CN recomputes the same key and signs its Binding Acknowledgement.",
    );
    t.sim.at(s(7), Ev::StartRo(cn_addr(0)));
    t.until(s(10));
    t.snapshot("4. route optimised");

    t.heading("5. Data flows directly");
    t.say(
        "MN → CN: from the care-of address with a Home Address option. CN → MN: to the care-of \
         address with a Type 2 Routing Header naming the home address. Applications on both \
         ends still see the home address; the HA is no longer in the path.",
    );
    t.exchange();
    t.exchange();
    t.snapshot("5. direct data");

    t.heading("6. The mobile node moves to a second foreign link");
    t.say(&format!(
        "New care-of address {coa2}. The MN re-registers with the HA first (the correspondent \
         may only learn a care-of address the home agent has accepted, §11.7.2), then updates \
         the CN. Its home keygen token is still fresh, so only the care-of test is redone."
    ));
    t.sim.at(
        s(12),
        Ev::Move(Movement::CoaUp {
            iface: 1,
            coa: coa2,
            preference: 5,
        }),
    );
    t.until(s(17));
    t.exchange();
    t.snapshot("6. second link");

    t.heading("7. Back home");
    t.say(
        "The MN is on its home link again. It deregisters with the HA (lifetime 0, sent from \
         the home address); the HA removes the binding, the tunnel, the route and proxy ND. \
         It also deletes the binding at the CN, signed with a key from the home token alone \
         (§5.2.6: the care-of address is now the home address).",
    );
    t.sim.at(
        s(20),
        Ev::Move(Movement::AtHome {
            iface: 1,
            preference: 5,
        }),
    );
    t.until(s(25));
    t.exchange();
    // The simulator's end-of-run checks (agreement of MN and HA, registered where it is
    // or home and deregistered) run when `Ev::End` is handled.
    t.sim.at(s(30), Ev::End);
    t.sim.advance(None);
    t.drain();
    t.snapshot("7. home again");

    t.finish()
}

struct Teller {
    sim: Sim,
    text: String,
    packets: Vec<Captured>,
    actions: Vec<(Duration, &'static str, Action)>,
    /// Keygen tokens the CN sent, by nonce index: what the MN will build Kbm from.
    home_tokens: HashMap<u16, KeygenToken>,
    care_of_tokens: HashMap<u16, KeygenToken>,
    keys: Vec<KeyUse>,
    /// (chapter, time, MN, HA, CN) at the end of each chapter.
    snapshots: Vec<(String, Duration, String, String, String)>,
    data_sent: u32,
}

fn name(n: NodeId) -> &'static str {
    match n {
        NodeId::Mn => "MN",
        NodeId::Ha(_) => "HA",
        NodeId::Cn(_) => "CN",
        NodeId::Legacy => "legacy CN",
    }
}

impl Teller {
    fn intro(&mut self) {
        let _ = writeln!(
            self.text,
            "Mobile IPv6 (RFC 6275), a story in seven steps\n\
             \n\
             Cast:\n  \
             MN  mobile node        home address {}\n  \
             HA  home agent         {} on the home link 2001:db8:1::/64\n  \
             CN  correspondent node {}\n\
             Links: MN {} ms, HA {} ms, CN {} ms one way; no loss. Times are seconds of virtual time.\n\
             Lines: [time] #packet  sender → receiver  message, then its IPv6 addressing;\n\
             `·` lines are what a node did about it.",
            hoa(),
            ha_addr(0),
            cn_addr(0),
            MN_LINK.as_millis(),
            HA_LINK.as_millis(),
            CN_LINK.as_millis(),
        );
    }

    fn heading(&mut self, title: &str) {
        let _ = writeln!(
            self.text,
            "\n{title}\n{}",
            "-".repeat(title.chars().count())
        );
    }

    /// A paragraph, wrapped at 88 columns.
    fn say(&mut self, what: &str) {
        let mut line = String::new();
        for word in what.split_whitespace() {
            if !line.is_empty() && line.len() + 1 + word.len() > 88 {
                let _ = writeln!(self.text, "{line}");
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        let _ = writeln!(self.text, "{line}\n");
    }

    /// Runs the network up to `t` and tells what happened.
    fn until(&mut self, t: Duration) {
        self.sim.advance(Some(t));
        self.drain();
    }

    /// One datagram CN → MN and the MN's answer, each along whatever path the nodes' state
    /// gives it at that moment.
    fn exchange(&mut self) {
        let now = self.sim.now;
        self.data_sent += 1;
        let n = self.data_sent;
        let pkt = self.cn_data(format!("hello #{n} from the CN"));
        self.sim.send(NodeId::Cn(0), pkt);
        self.until(now + Duration::from_millis(200));
        let pkt = self.mn_data(format!("reply #{n} from the MN"));
        self.sim.send(NodeId::Mn, pkt);
        self.until(now + Duration::from_millis(400));
    }

    /// The correspondent's data path: to the care-of address with a Type 2 Routing Header
    /// when it has a binding (§9.3.2), else to the home address.
    fn cn_data(&self, text: String) -> Packet {
        let (cn, h) = (cn_addr(0), hoa());
        let udp = udp(cn, h, CN_PORT, MN_PORT, text.as_bytes());
        let bytes = match self.sim.cns[0].cn.binding(&cn, &h) {
            Some(b) => build_raw(cn, b.coa, None, Some(h), proto::UDP, &udp),
            None => build_raw(cn, h, None, None, proto::UDP, &udp),
        };
        data_packet(bytes)
    }

    /// The mobile node's data path as its actions set it up: direct with a Home Address
    /// option when route-optimised (§11.3.1), else through the reverse tunnel, else (at
    /// home) plain.
    fn mn_data(&self, text: String) -> Packet {
        let (cn, h) = (cn_addr(0), hoa());
        let udp = udp(h, cn, MN_PORT, CN_PORT, text.as_bytes());
        let bytes = if let Some(coa) = self.sim.mn_ro.get(&cn) {
            build_raw(*coa, cn, Some(h), None, proto::UDP, &udp)
        } else if let Some((ha, coa)) = self.sim.mn_tunnel {
            encapsulate(coa, ha, &build_raw(h, cn, None, None, proto::UDP, &udp))
        } else {
            build_raw(h, cn, None, None, proto::UDP, &udp)
        };
        data_packet(bytes)
    }

    /// Turns what the tap recorded since the last call into timeline lines.
    fn drain(&mut self) {
        let Some(tapped) = self.sim.tap.replace(Vec::new()) else {
            return;
        };
        for rec in tapped {
            match rec {
                Tapped::Packet {
                    at,
                    from,
                    to,
                    bytes,
                } => self.packet(at, from, to, bytes),
                Tapped::Action { at, who, action } => {
                    let _ = writeln!(
                        self.text,
                        "[{:7.3}]      · {}: {}",
                        at.as_secs_f64(),
                        name(who),
                        explain(&action)
                    );
                    self.actions.push((at, name(who), action));
                }
            }
        }
    }

    fn packet(&mut self, at: Duration, from: NodeId, to: Option<NodeId>, bytes: Vec<u8>) {
        let number = self.packets.len() + 1;
        let to_name = to.map_or("nowhere", name);
        let v = View::of(&bytes);
        let label = format!(
            "{}→{} {}",
            name(from),
            to_name,
            v.as_ref().map_or("?".into(), View::label)
        );
        let (what, addressing) = v
            .as_ref()
            .map_or(("(unparsable)".into(), String::new()), |v| {
                (v.message(), v.addressing())
            });
        let intercepted = to == Some(NodeId::Ha(0))
            && v.as_ref()
                .is_some_and(|v| v.outer.is_none() && v.p.ip.dst == hoa());
        let _ = writeln!(
            self.text,
            "[{:7.3}] #{number:<3} {} → {:<3} {what}",
            at.as_secs_f64(),
            name(from),
            if intercepted { "HA*" } else { to_name },
        );
        let _ = writeln!(self.text, "{:15}{addressing}", "");
        if intercepted {
            let _ = writeln!(
                self.text,
                "{:15}(* for the home address: the HA takes it on the home link by proxy ND)",
                ""
            );
        }
        if let Some(v) = &v {
            self.keys_from(number, from, to, &bytes, v);
        }
        self.packets.push(Captured {
            number,
            at,
            from: name(from),
            to: to_name,
            label,
            bytes,
        });
    }

    /// Follows return routability on the wire: the tokens the CN hands out, and for each
    /// Binding Update to it and its Acknowledgement, the Kbm the MN must have used, checked
    /// with `mip6ctl decode`'s authenticator check.
    fn keys_from(
        &mut self,
        number: usize,
        from: NodeId,
        to: Option<NodeId>,
        bytes: &[u8],
        v: &View,
    ) {
        let Some(repr) = v.p.mobility() else {
            return;
        };
        // The CN's own copies only: the HA's tunnelled copy of a HoT is the same token.
        if from == NodeId::Cn(0) {
            match repr.message {
                Message::HomeTest {
                    nonce_index,
                    keygen_token,
                    ..
                } => {
                    self.home_tokens.insert(nonce_index, keygen_token);
                }
                Message::CareOfTest {
                    nonce_index,
                    keygen_token,
                    ..
                } => {
                    self.care_of_tokens.insert(nonce_index, keygen_token);
                }
                _ => {}
            }
        }
        let offset = v.p.headers.iter().find_map(|h| match h {
            Header::Mobility { offset, .. } => Some(*offset),
            _ => None,
        });
        let (Some(offset), true) = (offset, v.outer.is_none()) else {
            return;
        };
        match repr.message {
            Message::BindingUpdate {
                sequence,
                flags,
                lifetime_units,
            } if !flags.h && from == NodeId::Mn && to == Some(NodeId::Cn(0)) => {
                let Some((home, care_of)) = repr.options.iter().find_map(|o| match o {
                    MobilityOption::NonceIndices { home, care_of } => Some((*home, *care_of)),
                    _ => None,
                }) else {
                    return;
                };
                let deregistration = lifetime_units == 0;
                let Some(home_token) = self.home_tokens.get(&home) else {
                    let _ = writeln!(self.text, "{:15}!! no home keygen token {home} seen", "");
                    return;
                };
                let care_of_token = if deregistration {
                    None
                } else if let Some(c) = self.care_of_tokens.get(&care_of) {
                    Some(c)
                } else {
                    let _ = writeln!(
                        self.text,
                        "{:15}!! no care-of keygen token {care_of} seen",
                        ""
                    );
                    return;
                };
                let kbm = rr::kbm(home_token, care_of_token);
                let auth = check_authenticator(bytes, &v.p, offset, &kbm);
                let _ = writeln!(
                    self.text,
                    "{:15}Kbm = SHA1(home token {}{}) = {}: authenticator {}",
                    "",
                    hex::encode(home_token),
                    care_of_token.map_or(String::new(), |c| format!(
                        " | care-of token {}",
                        hex::encode(c)
                    )),
                    hex::encode(&kbm),
                    auth_word(auth)
                );
                self.keys.push(KeyUse {
                    kbm,
                    seq: sequence,
                    bu: number,
                    ba: None,
                    bu_auth: auth,
                    ba_auth: None,
                    deregistration,
                });
            }
            Message::BindingAck { sequence, .. } if from == NodeId::Cn(0) => {
                let Some(k) = self
                    .keys
                    .iter_mut()
                    .rev()
                    .find(|k| k.seq == sequence && k.ba.is_none())
                else {
                    return;
                };
                let auth = check_authenticator(bytes, &v.p, offset, &k.kbm);
                k.ba = Some(number);
                k.ba_auth = auth;
                let _ = writeln!(
                    self.text,
                    "{:15}same Kbm as BU #{}: authenticator {}",
                    "",
                    k.bu,
                    auth_word(auth)
                );
            }
            _ => {}
        }
    }

    fn snapshot(&mut self, chapter: &str) {
        let (cn, h, ha) = (cn_addr(0), hoa(), ha_addr(0));
        let mn = match self.sim.mn.location() {
            Location::Home => "home".to_string(),
            Location::Away(coa) => format!("away at {coa}"),
            Location::Detached => "detached".to_string(),
        };
        let ha_b = match self.sim.has[0].ha.binding(&ha, &h) {
            Some(b) => format!("{h} → {} (seq {})", b.coa, b.seq),
            None => "empty".to_string(),
        };
        let cn_b = match self.sim.cns[0].cn.binding(&cn, &h) {
            Some(b) => format!("{h} → {} (seq {})", b.coa, b.seq),
            None => "empty".to_string(),
        };
        self.snapshots
            .push((chapter.to_string(), self.sim.now, mn, ha_b, cn_b));
    }

    fn finish(mut self) -> Story {
        let sim = &self.sim;
        let end = EndState {
            location: sim.mn.location(),
            home_registered: sim.mn.home_binding().is_some(),
            mn_cn_binding: sim.mn.cn_binding(&cn_addr(0)).is_some(),
            mn_home_tunnel: sim.mn_tunnel.is_some(),
            mn_route_optimised: sim.mn_ro.len(),
            ha_bindings: sim.has[0].ha.bindings().count(),
            ha_routes: sim.has[0].routes.len(),
            cn_bindings: sim.cns[0].cn.bindings().count(),
        };
        let report = std::mem::take(&mut self.sim.report);
        let mut s = String::new();
        let _ = writeln!(s, "\nSummary\n-------");
        let _ = writeln!(s, "Binding caches at the end of each step:");
        for (chapter, at, mn, ha, cn) in &self.snapshots {
            let _ = writeln!(
                s,
                "  {chapter:<22} t={:<7} MN {mn}\n{:33}HA {ha}\n{:33}CN {cn}",
                format!("{:.1}s", at.as_secs_f64()),
                "",
                ""
            );
        }
        let data = self
            .packets
            .iter()
            .filter(|p| p.label.contains("data"))
            .count();
        let _ = writeln!(
            s,
            "Packets on the wire: {} ({} signalling, {data} data); delivered {}, lost {}, unroutable {}.",
            self.packets.len(),
            self.packets.len() - data,
            report.stats.delivered,
            report.stats.lost,
            report.stats.unroutable
        );
        let _ = writeln!(s, "Binding management keys (from the tokens on the wire):");
        for k in &self.keys {
            let _ = writeln!(
                s,
                "  {} BU #{}{}{}: authenticator {} / {}",
                hex::encode(&k.kbm),
                k.bu,
                k.ba.map_or(String::new(), |b| format!(", BA #{b}")),
                if k.deregistration {
                    " (deregistration, home token only)"
                } else {
                    ""
                },
                auth_word(k.bu_auth),
                auth_word(k.ba_auth)
            );
        }
        let _ = writeln!(
            s,
            "Checked while the story ran (the simulator's invariants):"
        );
        for line in [
            "every packet walked by wire::packet::parse at its receiver, Mobility Header checksums verified (MhRepr::parse_checked)".to_string(),
            format!("the HA accepted only increasing sequence numbers ({} acceptances)", report.stats.home_accepts),
            format!("the CN accepted only known, unexpired nonce indices and increasing sequence numbers ({} acceptances)", report.stats.cn_accepts),
            "no Binding Update to the CN asked for more lifetime than the home registration had left (§11.7.2)".to_string(),
            format!("the MN's Binding Update List agreed with the HA's binding cache whenever the network was quiet ({} checks)", report.stats.quiet_checks),
            "at the end: the MN is registered where it is, or home and deregistered".to_string(),
        ] {
            let _ = writeln!(s, "  - {line}");
        }
        if report.violations.is_empty() {
            let _ = writeln!(s, "Violations: none.");
        } else {
            let _ = writeln!(s, "VIOLATIONS:");
            for v in &report.violations {
                let _ = writeln!(s, "  {v}");
            }
        }
        self.text.push_str(&s);
        Story {
            text: self.text,
            packets: self.packets,
            actions: self.actions,
            keys: self.keys,
            report,
            end,
        }
    }
}

fn auth_word(a: Option<AuthCheck>) -> &'static str {
    match a {
        Some(AuthCheck::Valid) => "valid",
        Some(AuthCheck::Invalid) => "INVALID",
        None => "not checked",
    }
}

fn data_packet(bytes: Vec<u8>) -> Packet {
    Packet {
        bytes,
        esp: None,
        injected: false,
    }
}

/// A UDP datagram with its checksum over the addresses the final receiver sees (the home
/// address, whatever the care-of address in the IPv6 header: RFC 6275 §6.3, §6.4).
fn udp(src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut d = Vec::with_capacity(8 + payload.len());
    d.extend_from_slice(&sport.to_be_bytes());
    d.extend_from_slice(&dport.to_be_bytes());
    d.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    d.extend_from_slice(&[0, 0]);
    d.extend_from_slice(payload);
    let c = match checksum::compute(&src, &dst, proto::UDP, &d) {
        // RFC 8200 §8.1: a computed zero goes out as ffff (zero means "none").
        0 => 0xffff,
        c => c,
    };
    d[6..8].copy_from_slice(&c.to_be_bytes());
    d
}

/// A packet decoded for the timeline: the outer tunnel addresses, if any, and the
/// (inner) packet.
pub struct View {
    pub outer: Option<(Ipv6Addr, Ipv6Addr)>,
    pub p: packet::Packet,
    /// The bytes of `p`.
    pub inner: Vec<u8>,
}

impl View {
    pub fn of(bytes: &[u8]) -> Option<View> {
        let p = packet::parse(bytes).ok()?;
        if let Some(Header::Tunnel(_)) = p.headers.last() {
            let inner = bytes.get(IPV6_HEADER_LEN..)?.to_vec();
            return Some(View {
                outer: Some((p.ip.src, p.ip.dst)),
                p: packet::parse(&inner).ok()?,
                inner,
            });
        }
        Some(View {
            outer: None,
            p,
            inner: bytes.to_vec(),
        })
    }

    fn hao(&self) -> Option<Ipv6Addr> {
        self.p.headers.iter().find_map(|h| match h {
            Header::DestinationOptions(d) => d.home_address(),
            _ => None,
        })
    }

    fn rh2(&self) -> Option<Ipv6Addr> {
        self.p.headers.iter().find_map(|h| match h {
            Header::Type2Routing(r) => Some(r.home_address),
            _ => None,
        })
    }

    /// The UDP datagram, if that is what the packet carries.
    pub fn udp(&self) -> Option<&[u8]> {
        match self.p.headers.last() {
            Some(Header::Upper { protocol, len }) if *protocol == proto::UDP => {
                self.inner.get(self.inner.len() - len..)
            }
            _ => None,
        }
    }

    /// The message in one line, with the wire module's `Display`.
    fn message(&self) -> String {
        let m = if let Some(m) = self.p.mobility() {
            m.to_string()
        } else if let Some(u) = self.udp().filter(|u| u.len() >= 8) {
            format!(
                "UDP {} → {} \"{}\"",
                u16::from_be_bytes([u[0], u[1]]),
                u16::from_be_bytes([u[2], u[3]]),
                String::from_utf8_lossy(&u[8..])
            )
        } else if let Some(Header::Icmpv6 { repr, .. }) = self.p.headers.last() {
            repr.to_string()
        } else {
            "?".to_string()
        };
        match self.outer {
            Some(_) => format!("tunnelled: {m}"),
            None => m,
        }
    }

    fn addressing(&self) -> String {
        let mut s = format!("{} → {}", self.p.ip.src, self.p.ip.dst);
        if let Some(h) = self.rh2() {
            let _ = write!(s, " + RH2 {h}");
        }
        if let Some(h) = self.hao() {
            let _ = write!(s, " + HAO {h}");
        }
        match self.outer {
            Some((o, d)) => format!("ip6ip6 {o} → {d} carrying [{s}]"),
            None => s,
        }
    }

    /// A short name: `BU(H)+HAO`, `tunnel[HoTI]`, `data+RH2`, …
    pub fn label(&self) -> String {
        let mut what = match self.p.mobility().map(|m| &m.message) {
            Some(Message::BindingUpdate {
                flags,
                lifetime_units,
                ..
            }) => match (flags.h, *lifetime_units == 0) {
                (true, false) => "BU(H)",
                (true, true) => "BU(H,dereg)",
                (false, false) => "BU",
                (false, true) => "BU(dereg)",
            }
            .to_string(),
            Some(Message::BindingAck { status, .. }) if *status < 128 => "BA".to_string(),
            Some(Message::BindingAck { status, .. }) => format!("BA({status})"),
            Some(Message::HomeTestInit { .. }) => "HoTI".to_string(),
            Some(Message::CareOfTestInit { .. }) => "CoTI".to_string(),
            Some(Message::HomeTest { .. }) => "HoT".to_string(),
            Some(Message::CareOfTest { .. }) => "CoT".to_string(),
            Some(Message::BindingError { status, .. }) => format!("BE({status})"),
            Some(Message::BindingRefreshRequest) => "BRR".to_string(),
            Some(Message::Unknown { .. }) => "MH?".to_string(),
            None if self.udp().is_some() => "data".to_string(),
            None => "other".to_string(),
        };
        if self.rh2().is_some() {
            what.push_str("+RH2");
        }
        if self.hao().is_some() {
            what.push_str("+HAO");
        }
        match self.outer {
            Some(_) => format!("tunnel[{what}]"),
            None => what,
        }
    }
}

/// A machine's action in words.
fn explain(a: &Action) -> String {
    match a {
        Action::Send(t) => format!("send {}", t.repr),
        Action::BindingInstalled {
            hoa,
            coa,
            lifetime,
            home,
            ..
        } => format!(
            "binding cache: {hoa} is at {coa} for {}s{}",
            lifetime.as_secs(),
            if *home { " (home registration)" } else { "" }
        ),
        Action::BindingRemoved { hoa, .. } => format!("binding cache: {hoa} removed"),
        Action::StartDad { hoa, .. } => {
            format!("Duplicate Address Detection for {hoa} on the home link")
        }
        Action::TunnelAdd { local, remote } => format!("tunnel {local} ⇄ {remote} added"),
        Action::TunnelDel { local, remote } => format!("tunnel {local} ⇄ {remote} removed"),
        Action::RouteAdd {
            hoa, tunnel_remote, ..
        } => format!("route {hoa} into the tunnel to {tunnel_remote}"),
        Action::RouteDel { hoa } => format!("route to {hoa} removed"),
        Action::ProxyNdAdd { addr, .. } => {
            format!("proxy ND: answers Neighbour Solicitations for {addr}")
        }
        Action::ProxyNdDel { addr } => format!("proxy ND for {addr} stopped"),
        Action::BulUpdated {
            peer,
            coa,
            lifetime,
            ..
        } => format!(
            "Binding Update List: {peer} ← {coa}, {}s asked",
            lifetime.as_secs()
        ),
        Action::BulRemoved { peer, .. } => format!("Binding Update List: {peer} removed"),
        Action::HomeTunnelSet { ha, coa, .. } => {
            format!("home traffic through the tunnel {coa} ⇄ {ha}")
        }
        Action::HomeTunnelClear { .. } => "home tunnel cleared".to_string(),
        Action::BlockHoa { hoa } => {
            format!("holds traffic from {hoa} until a registration covers this link")
        }
        Action::UnblockHoa { hoa } => format!("traffic from {hoa} flows again"),
        Action::RoStart { cn, coa, .. } => {
            format!("route optimisation with {cn} on: direct from {coa}, HAO out, RH2 in")
        }
        Action::RoStop { cn, .. } => {
            format!("route optimisation with {cn} off: traffic via the HA")
        }
        Action::HomeRegistrationFailed { ha, status, .. } => {
            format!("home registration at {ha} failed (status {status:?})")
        }
    }
}
