//! The keyword tables. The parser dispatches through them, `--show-config` prints the
//! simple statements from them, and the man-page test reads them, so a keyword cannot be
//! accepted without also being printed and documented.

use std::time::Duration;

use super::model::{Config, Datapath, DsRole, HandoffDrain, IpsecPolicyType, NodeRole};

/// Where a statement may appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Global,
    Interface,
    MnHomeLink,
    IpsecPolicySet,
    DistributedServer,
    Peers,
}

impl Scope {
    /// How the scope is named in "belongs in …" messages.
    pub fn place(self) -> &'static str {
        match self {
            Scope::Global => "at top level",
            Scope::Interface => "in an Interface block",
            Scope::MnHomeLink => "in a MnHomeLink block",
            Scope::IpsecPolicySet => "in an IPsecPolicySet block",
            Scope::DistributedServer => "in a DistributedServer block",
            Scope::Peers => "in a Peers block",
        }
    }
}

/// Statements that need their own parsing code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    NodeConfig,
    DebugLogFile,
    CnBindingPolicySet,
    Interface,
    IpsecPolicySet,
    UsePolicyModule,
    UseMovementModule,
    HaServedPrefix,
    BindingAclPolicy,
    DefaultBindingAclPolicy,
    MnHomeLink,
    Datapath,
    DistributedServer,
    IfType,
    MnIfPreference,
    Tunnel,
    LinkHomeAgentAddress,
    LinkHomeAddress,
    IsMobRtr,
    MnRoPolicy,
    HomePrefix,
    UseAltCoa,
    SetHomeAgentAddress,
    SetHomeAddress,
    IpsecPolicy,
    DsAddress,
    DsHomeAgentAddress,
    DsRole,
    DsNodeId,
    DsLocalAddress,
    DsPeers,
    DsSharedKeyFile,
    DsHeartbeatInterval,
    DsFailureTimeout,
    DsHandoffDrain,
    DsControlPort,
    DsStateFile,
    DsContactInterface,
    Peer,
}

pub type BoolRef = fn(&mut Config) -> &mut bool;
pub type NumRef = fn(&mut Config) -> &mut u32;
pub type DecRef = fn(&mut Config) -> &mut Duration;

/// How a statement's argument is parsed.
#[derive(Clone, Copy)]
pub enum Kind {
    /// `Keyword BOOL ;`
    Bool(BoolRef),
    /// `Keyword NUMBER ;` with an inclusive maximum.
    Num(NumRef, u32),
    /// `Keyword DECIMAL ;` (seconds) with an inclusive maximum.
    Dec(DecRef, Duration),
    Special(Special),
    /// Lexed by umip as a keyword but accepted by none of its rules.
    Reserved,
}

/// One row of the statement table.
#[derive(Clone, Copy)]
pub struct StatementDef {
    pub name: &'static str,
    pub scope: Scope,
    pub kind: Kind,
    /// Part of umip 1.0 (as opposed to our extensions).
    pub umip: bool,
}

/// Upper bound for DECIMAL timers: umip has none; an hour is far beyond any sane value and
/// keeps the arithmetic on them trivially safe.
pub const MAX_TIMER: Duration = Duration::from_secs(3600);
const MAX_I32: u32 = i32::MAX as u32;

macro_rules! row {
    ($name:literal, $scope:ident, $kind:expr) => {
        StatementDef {
            name: $name,
            scope: Scope::$scope,
            kind: $kind,
            umip: true,
        }
    };
    (ext $name:literal, $scope:ident, $kind:expr) => {
        StatementDef {
            name: $name,
            scope: Scope::$scope,
            kind: $kind,
            umip: false,
        }
    };
}
macro_rules! boolean {
    ($name:literal, $field:ident) => {
        row!($name, Global, Kind::Bool(|c| &mut c.$field))
    };
}
macro_rules! number {
    ($name:literal, $field:ident, $max:expr) => {
        row!($name, Global, Kind::Num(|c| &mut c.$field, $max))
    };
}
macro_rules! decimal {
    ($name:literal, $field:ident) => {
        row!($name, Global, Kind::Dec(|c| &mut c.$field, MAX_TIMER))
    };
}
macro_rules! special {
    ($name:literal, $scope:ident, $s:ident) => {
        row!($name, $scope, Kind::Special(Special::$s))
    };
    (ext $name:literal, $scope:ident, $s:ident) => {
        row!(ext $name, $scope, Kind::Special(Special::$s))
    };
}

/// Every statement keyword, per scope, in the order `--show-config` prints them.
pub static STATEMENTS: &[StatementDef] = &[
    special!("NodeConfig", Global, NodeConfig),
    number!("DebugLevel", debug_level, MAX_I32),
    special!("DebugLogFile", Global, DebugLogFile),
    special!(ext "Datapath", Global, Datapath),
    boolean!("DoRouteOptimizationCN", do_route_optimization_cn),
    boolean!("NonVolatileBindingCache", non_volatile_binding_cache),
    boolean!("UseMnHaIPsec", use_mn_ha_ipsec),
    boolean!("KeyMngMobCapability", key_mng_mob_capability),
    special!("UsePolicyModule", Global, UsePolicyModule),
    special!("UseMovementModule", Global, UseMovementModule),
    // Home agent.
    number!(
        "HaMaxBindingLife",
        ha_max_binding_life,
        super::model::MAX_BINDING_LIFETIME
    ),
    boolean!("SendMobPfxAdvs", send_mob_pfx_advs),
    boolean!("SendUnsolMobPfxAdvs", send_unsol_mob_pfx_advs),
    number!("MinMobPfxAdvInterval", min_mob_pfx_adv_interval, MAX_I32),
    number!("MaxMobPfxAdvInterval", max_mob_pfx_adv_interval, MAX_I32),
    boolean!("HaAcceptMobRtr", ha_accept_mob_rtr),
    special!("DefaultBindingAclPolicy", Global, DefaultBindingAclPolicy),
    special!("HaServedPrefix", Global, HaServedPrefix),
    special!("BindingAclPolicy", Global, BindingAclPolicy),
    // Mobile node.
    number!(
        "MnMaxHaBindingLife",
        mn_max_ha_binding_life,
        super::model::MAX_BINDING_LIFETIME
    ),
    number!(
        "MnMaxCnBindingLife",
        mn_max_cn_binding_life,
        super::model::MAX_RR_BINDING_LIFETIME
    ),
    boolean!("MnDiscardHaParamProb", mn_discard_ha_param_prob),
    boolean!("MnResetDhaadAtHome", mn_reset_dhaad_at_home),
    boolean!("MnFlushAllAtHome", mn_flush_all_at_home),
    number!(
        "MnMaxHaConsecutiveResends",
        mn_max_ha_consecutive_resends,
        MAX_I32
    ),
    number!(
        "MnMaxCnConsecutiveResends",
        mn_max_cn_consecutive_resends,
        MAX_I32
    ),
    boolean!("SendMobPfxSols", send_mob_pfx_sols),
    boolean!("DoRouteOptimizationMN", do_route_optimization_mn),
    boolean!("MnUseAllInterfaces", mn_use_all_interfaces),
    boolean!("MobRtrUseExplicitMode", mob_rtr_use_explicit_mode),
    boolean!("UseCnBuAck", use_cn_bu_ack),
    decimal!("InterfaceInitialInitDelay", interface_initial_init_delay),
    number!("MnRouterProbes", mn_router_probes, MAX_I32),
    decimal!("MnRouterProbeTimeout", mn_router_probe_timeout),
    decimal!(
        "InitialBindackTimeoutFirstReg",
        initial_bindack_timeout_first_reg
    ),
    decimal!("InitialBindackTimeoutReReg", initial_bindack_timeout_rereg),
    decimal!("InitialSolicitTimer", initial_solicit_timer),
    boolean!("OptimisticHandoff", optimistic_handoff),
    boolean!("NoHomeReturn", no_home_return),
    // Blocks.
    special!("Interface", Global, Interface),
    special!("MnHomeLink", Global, MnHomeLink),
    special!("IPsecPolicySet", Global, IpsecPolicySet),
    special!("CnBindingPolicySet", Global, CnBindingPolicySet),
    special!(ext "DistributedServer", Global, DistributedServer),
    row!("LinkName", Global, Kind::Reserved),
    row!("IfName", Global, Kind::Reserved),
    row!("IPsecType", Global, Kind::Reserved),
    row!("DoRouteOptimization", Global, Kind::Reserved),
    // Interface block.
    special!("IfType", Interface, IfType),
    special!("MnIfPreference", Interface, MnIfPreference),
    special!("Tunnel", Interface, Tunnel),
    // MnHomeLink block.
    special!("HomeAgentAddress", MnHomeLink, LinkHomeAgentAddress),
    special!("HomeAddress", MnHomeLink, LinkHomeAddress),
    special!("IsMobRtr", MnHomeLink, IsMobRtr),
    special!("MnRoPolicy", MnHomeLink, MnRoPolicy),
    special!("HomePrefix", MnHomeLink, HomePrefix),
    special!("UseAltCoa", MnHomeLink, UseAltCoa),
    // IPsecPolicySet block.
    special!("HomeAgentAddress", IpsecPolicySet, SetHomeAgentAddress),
    special!("HomeAddress", IpsecPolicySet, SetHomeAddress),
    special!("IPsecPolicy", IpsecPolicySet, IpsecPolicy),
    // DistributedServer block.
    special!(ext "Address", DistributedServer, DsAddress),
    special!(ext "HomeAgentAddress", DistributedServer, DsHomeAgentAddress),
    special!(ext "Role", DistributedServer, DsRole),
    special!(ext "NodeId", DistributedServer, DsNodeId),
    special!(ext "LocalAddress", DistributedServer, DsLocalAddress),
    special!(ext "Peers", DistributedServer, DsPeers),
    special!(ext "SharedKeyFile", DistributedServer, DsSharedKeyFile),
    special!(ext "HeartbeatInterval", DistributedServer, DsHeartbeatInterval),
    special!(ext "FailureTimeout", DistributedServer, DsFailureTimeout),
    special!(ext "HandoffDrain", DistributedServer, DsHandoffDrain),
    special!(ext "ControlPort", DistributedServer, DsControlPort),
    special!(ext "StateFile", DistributedServer, DsStateFile),
    special!(ext "ContactInterface", DistributedServer, DsContactInterface),
    special!(ext "Peer", Peers, Peer),
];

/// The `include` directive, handled before statement lookup.
pub const INCLUDE: &str = "include";

pub static ROLE_WORDS: &[(&str, NodeRole)] = &[
    ("CN", NodeRole::Cn),
    ("MN", NodeRole::Mn),
    ("HA", NodeRole::Ha),
];

pub static BOOL_WORDS: &[(&str, bool)] = &[
    ("enabled", true),
    ("allow", true),
    ("true", true),
    ("disabled", false),
    ("deny", false),
    ("block", false),
    ("false", false),
];

pub static IPSEC_TYPE_WORDS: &[(&str, IpsecPolicyType)] = &[
    ("HomeRegBinding", IpsecPolicyType::HomeRegBinding),
    ("Mh", IpsecPolicyType::Mh),
    ("MobPfxDisc", IpsecPolicyType::MobPfxDisc),
    ("ICMP", IpsecPolicyType::Icmp),
    ("any", IpsecPolicyType::Any),
    ("TunnelHomeTesting", IpsecPolicyType::TunnelHomeTesting),
    ("TunnelMh", IpsecPolicyType::TunnelMh),
    ("TunnelPayload", IpsecPolicyType::TunnelPayload),
];

/// IPsec protocol words; `true` marks the ones we support (umip, too, takes only ESP).
pub static IPSEC_PROTO_WORDS: &[(&str, bool)] =
    &[("UseESP", true), ("UseAH", false), ("UseIPComp", false)];

/// `UseMovementModule internal;`
pub const MOVEMENT_INTERNAL: &str = "internal";

pub static DS_ROLE_WORDS: &[(&str, DsRole)] = &[
    ("contact", DsRole::Contact),
    ("backup", DsRole::Backup),
    ("snode", DsRole::Snode),
];

pub static DRAIN_WORDS: &[(&str, HandoffDrain)] = &[
    ("off", HandoffDrain::Off),
    ("on", HandoffDrain::On),
    ("auto", HandoffDrain::Auto),
];

pub static DATAPATH_WORDS: &[(&str, Datapath)] = &[
    ("auto", Datapath::Auto),
    ("kernel", Datapath::Kernel),
    ("user", Datapath::User),
];

/// The word a table uses for `value`.
pub fn word_for<T: PartialEq + Copy>(
    table: &'static [(&'static str, T)],
    value: T,
) -> &'static str {
    table
        .iter()
        .find(|(_, v)| *v == value)
        .map(|(w, _)| *w)
        .unwrap_or("?")
}

pub fn lookup(scope: Scope, word: &str) -> Option<&'static StatementDef> {
    STATEMENTS
        .iter()
        .find(|d| d.scope == scope && d.name == word)
}

pub fn names_in(scope: Scope) -> impl Iterator<Item = &'static str> {
    STATEMENTS
        .iter()
        .filter(move |d| d.scope == scope && !matches!(d.kind, Kind::Reserved))
        .map(|d| d.name)
}

fn words_of<T>(table: &'static [(&'static str, T)]) -> impl Iterator<Item = &'static str> {
    table.iter().map(|(w, _)| *w)
}

fn value_words() -> impl Iterator<Item = (&'static str, bool)> {
    words_of(ROLE_WORDS)
        .chain(words_of(IPSEC_TYPE_WORDS))
        .chain(IPSEC_PROTO_WORDS.iter().map(|(w, _)| *w))
        .chain(std::iter::once(MOVEMENT_INTERNAL))
        .map(|w| (w, true))
        .chain(BOOL_WORDS.iter().map(|(w, _)| (*w, false)))
        .chain(DS_ROLE_WORDS.iter().map(|(w, _)| (*w, false)))
        .chain(DRAIN_WORDS.iter().map(|(w, _)| (*w, false)))
        .chain(DATAPATH_WORDS.iter().map(|(w, _)| (*w, false)))
}

/// Every word the parser gives a meaning to: statement keywords, value words, booleans and
/// `include`, each once.
pub fn all_keywords() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    let words = std::iter::once(INCLUDE)
        .chain(STATEMENTS.iter().map(|d| d.name))
        .chain(value_words().map(|(w, _)| w));
    for w in words {
        if !out.contains(&w) {
            out.push(w);
        }
    }
    out
}

/// The keywords umip 1.0's lexer knows (statement and value keywords, not booleans).
pub fn umip_keywords() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    let words = STATEMENTS
        .iter()
        .filter(|d| d.umip)
        .map(|d| d.name)
        .chain(value_words().filter(|(_, umip)| *umip).map(|(w, _)| w));
    for w in words {
        if !out.contains(&w) {
            out.push(w);
        }
    }
    out
}

/// Edit distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().map(|c| c.to_ascii_lowercase()).collect();
    let b: Vec<char> = b.chars().map(|c| c.to_ascii_lowercase()).collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The candidate `word` was most likely meant to be: a case-insensitive match first, then
/// the closest one within a third of the word's length.
pub fn suggest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    if word.len() > 64 {
        return None;
    }
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        if c.eq_ignore_ascii_case(word) {
            return Some(c);
        }
        let d = distance(word, c);
        if best.map_or(true, |(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    let limit = (word.chars().count() / 3).max(1);
    best.filter(|(d, _)| *d <= limit).map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn umip_has_71_keywords() {
        let k = umip_keywords();
        assert_eq!(k.len(), 71, "{k:?}");
    }

    #[test]
    fn suggestions() {
        let g = || names_in(Scope::Global);
        assert_eq!(suggest("NodeConfg", g()), Some("NodeConfig"));
        assert_eq!(suggest("nodeconfig", g()), Some("NodeConfig"));
        assert_eq!(suggest("Frobnicate", g()), None);
        assert_eq!(suggest("ha", ROLE_WORDS.iter().map(|w| w.0)), Some("HA"));
    }
}
