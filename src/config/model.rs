//! The typed configuration: what a mip6d.conf means once parsed, with umip's defaults.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv6Addr;
use std::time::Duration;

/// umip's protocol ceiling for any binding lifetime: 0xffff units of 4 s (RFC 6275 §6.1.7).
pub const MAX_BINDING_LIFETIME: u32 = 262_140;
/// Ceiling for bindings made through return routability (RFC 6275 §5.2.5, MAX_RR_BINDING_LIFETIME).
pub const MAX_RR_BINDING_LIFETIME: u32 = 420;

/// Where something was written: `file:line:column`, 1-based.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    pub file: String,
    pub line: u32,
    pub column: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// The `NodeConfig` role (and an `Interface`'s `IfType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeRole {
    /// Correspondent node; every node also runs the CN part.
    Cn,
    /// Mobile node (or NEMO mobile router).
    Mn,
    /// Home agent.
    Ha,
}

impl NodeRole {
    pub fn keyword(self) -> &'static str {
        match self {
            NodeRole::Cn => "CN",
            NodeRole::Mn => "MN",
            NodeRole::Ha => "HA",
        }
    }
}

/// An IPv6 address with a prefix length (`2001:db8::1/64`); host bits are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix {
    pub addr: Ipv6Addr,
    pub len: u8,
}

impl Prefix {
    /// The address with the host bits cleared.
    pub fn network(&self) -> Prefix {
        Prefix {
            addr: Ipv6Addr::from(u128::from(self.addr) & self.mask()),
            len: self.len,
        }
    }

    pub fn contains(&self, addr: Ipv6Addr) -> bool {
        u128::from(addr) & self.mask() == u128::from(self.addr) & self.mask()
    }

    fn mask(&self) -> u128 {
        match self.len {
            0 => 0,
            l => u128::MAX << (128 - u32::from(l.min(128))),
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// One `Interface` statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceConfig {
    pub name: String,
    /// `IfType`; `None` means "whatever `NodeConfig` says", resolved late so that `-H` etc.
    /// apply to interfaces too.
    pub if_type: Option<NodeRole>,
    /// `MnIfPreference`, 0..=10; 1 is most preferred, 0 means never use.
    pub preference: u8,
    /// `Tunnel`: an externally managed tunnel interface.
    pub tunnel: bool,
}

impl InterfaceConfig {
    pub const DEFAULT_PREFERENCE: u8 = 10;

    pub fn new(name: impl Into<String>) -> Self {
        InterfaceConfig {
            name: name.into(),
            if_type: None,
            preference: Self::DEFAULT_PREFERENCE,
            tunnel: false,
        }
    }

    pub fn effective_type(&self, node: NodeRole) -> NodeRole {
        self.if_type.unwrap_or(node)
    }
}

/// One `MnRoPolicy` line: route optimisation on or off towards one CN, or all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoPolicy {
    /// `None` is the wildcard entry.
    pub correspondent: Option<Ipv6Addr>,
    pub enabled: bool,
}

/// One `MnHomeLink` block: a home address and how to register it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HomeLink {
    /// The home link's interface name (the quoted string after `MnHomeLink`).
    pub interface: String,
    pub home_address: Prefix,
    /// NEMO mobile network prefixes given in parentheses after `HomeAddress`.
    pub mobile_network_prefixes: Vec<Prefix>,
    /// `::` means: find the home agent with DHAAD.
    pub home_agent_address: Ipv6Addr,
    pub is_mob_rtr: bool,
    pub ro_policies: Vec<RoPolicy>,
    /// `HomePrefix`; `None` means derived from `home_address`.
    pub home_prefix: Option<Prefix>,
}

impl HomeLink {
    pub fn uses_dhaad(&self) -> bool {
        self.home_agent_address.is_unspecified()
    }

    pub fn effective_home_prefix(&self) -> Prefix {
        self.home_prefix
            .unwrap_or_else(|| self.home_address.network())
    }
}

/// `IPsecPolicy` traffic types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpsecPolicyType {
    HomeRegBinding,
    Mh,
    MobPfxDisc,
    Icmp,
    Any,
    TunnelHomeTesting,
    TunnelMh,
    TunnelPayload,
}

impl IpsecPolicyType {
    pub fn is_tunnel(self) -> bool {
        matches!(
            self,
            Self::TunnelHomeTesting | Self::TunnelMh | Self::TunnelPayload
        )
    }
}

/// What an `IPsecPolicy` does with matching traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyAction {
    /// Protect it with IPsec (the default).
    Allow,
    /// Drop it.
    Block,
}

/// One `IPsecPolicy` line. The protocol is always ESP: umip accepts no other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpsecPolicy {
    pub policy_type: IpsecPolicyType,
    /// Request id for MN→HA traffic; 0 = none.
    pub reqid_to_ha: u32,
    /// Request id for HA→MN traffic; 0 = none.
    pub reqid_to_mn: u32,
    pub action: PolicyAction,
}

/// One `IPsecPolicySet` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpsecPolicySet {
    pub home_agent_address: Ipv6Addr,
    pub home_addresses: Vec<Prefix>,
    pub policies: Vec<IpsecPolicy>,
}

/// One line of a `CnBindingPolicySet`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CnBindingPolicy {
    pub peer: Ipv6Addr,
    pub local: Option<Ipv6Addr>,
    pub accept: bool,
}

/// One `BindingAclPolicy` statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingAcl {
    pub home_address: Ipv6Addr,
    pub mobile_network_prefixes: Vec<Prefix>,
    /// Binding Acknowledgement status: 0 accepts, 129 ("administratively prohibited") is
    /// what `deny` means; any other number is sent as is.
    pub status: u8,
}

/// BA status sent for a denied binding (RFC 6275 §6.1.8: administratively prohibited).
pub const STATUS_PROHIBITED: u8 = 129;

/// Which packet path to use (our extension `Datapath`, also `--datapath`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Datapath {
    /// `kernel` when the running kernel has MIPv6 support, `user` otherwise.
    #[default]
    Auto,
    Kernel,
    User,
}

/// A Distributed Servers role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DsRole {
    Contact,
    Backup,
    Snode,
}

/// Whether a donor drains its send queue before handing a connection off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HandoffDrain {
    Off,
    On,
    /// Drain when the queue is small enough to beat shipping it (decided at run time).
    #[default]
    Auto,
}

/// One `Peer` line inside `Peers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DsPeer {
    pub node_id: u32,
    pub address: Ipv6Addr,
    pub role: DsRole,
}

/// One `DistributedServer` block (our extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistributedServer {
    pub name: String,
    /// The distributed server address (DSA), registered at the HA as a home address.
    pub address: Ipv6Addr,
    pub home_agent_address: Ipv6Addr,
    /// This node's configured role.
    pub role: DsRole,
    pub node_id: u32,
    /// Our own unicast address for membership and handoff traffic; `None` = any.
    pub local_address: Option<Ipv6Addr>,
    pub peers: Vec<DsPeer>,
    pub shared_key_file: String,
    pub heartbeat_interval: Duration,
    pub failure_timeout: Duration,
    pub handoff_drain: HandoffDrain,
    pub control_port: u16,
    /// Where the membership protocol keeps its promises across restarts (`StateFile`);
    /// `None` = [`DistributedServer::state_path`]'s default.
    pub state_file: Option<String>,
    /// `ContactInterface`: this member may become the contact, and then registers the DSA
    /// as a home address with its care-of address on this interface (a mobile node role
    /// the membership starts and stops); `None` = the registration is only logged.
    pub contact_interface: Option<String>,
}

impl DistributedServer {
    pub const DEFAULT_HEARTBEAT: Duration = Duration::from_millis(100);
    pub const DEFAULT_FAILURE_TIMEOUT: Duration = Duration::from_millis(300);
    pub const DEFAULT_CONTROL_PORT: u16 = 7780;
    /// Where state files go when `StateFile` is not given.
    pub const DEFAULT_STATE_DIR: &'static str = "/run/mip6d";

    /// The membership state file: `StateFile`, or one per block and node id under
    /// [`DistributedServer::DEFAULT_STATE_DIR`], so daemons sharing a host never share one.
    pub fn state_path(&self) -> std::path::PathBuf {
        match &self.state_file {
            Some(f) => std::path::PathBuf::from(f),
            None => std::path::Path::new(Self::DEFAULT_STATE_DIR)
                .join(format!("membership-{}-{}.state", self.name, self.node_id)),
        }
    }
}

/// Where statements came from, for messages from [`Config::check`].
///
/// Not part of a configuration's meaning: two configs that say the same thing from
/// different files are equal, which is what the `--show-config` round trip relies on.
#[derive(Debug, Clone, Default)]
pub struct Origins {
    /// Last occurrence of each top-level statement keyword.
    pub statements: BTreeMap<&'static str, Location>,
    pub interfaces: Vec<Location>,
    pub home_links: Vec<Location>,
    pub ipsec_policy_sets: Vec<Location>,
    pub distributed_servers: Vec<Location>,
    /// Set when `-C`/`-H`/`-M` replaced the file's `NodeConfig`.
    pub role_from_command_line: bool,
}

impl PartialEq for Origins {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for Origins {}

/// A whole mip6d.conf with defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub node_config: NodeRole,
    pub debug_level: u32,
    pub debug_log_file: Option<String>,
    pub do_route_optimization_cn: bool,
    pub cn_binding_policies: Vec<CnBindingPolicy>,
    pub non_volatile_binding_cache: bool,
    pub interfaces: Vec<InterfaceConfig>,
    pub use_mn_ha_ipsec: bool,
    pub key_mng_mob_capability: bool,
    pub ipsec_policy_sets: Vec<IpsecPolicySet>,
    pub ha_max_binding_life: u32,
    pub send_mob_pfx_advs: bool,
    pub send_unsol_mob_pfx_advs: bool,
    pub min_mob_pfx_adv_interval: u32,
    pub max_mob_pfx_adv_interval: u32,
    pub ha_accept_mob_rtr: bool,
    pub ha_served_prefixes: Vec<Prefix>,
    pub binding_acl: Vec<BindingAcl>,
    /// BA status when no `BindingAclPolicy` matches (0 = accept).
    pub default_binding_acl_status: u8,
    pub mn_max_ha_binding_life: u32,
    pub mn_max_cn_binding_life: u32,
    pub mn_discard_ha_param_prob: bool,
    pub mn_reset_dhaad_at_home: bool,
    pub mn_flush_all_at_home: bool,
    pub mn_max_ha_consecutive_resends: u32,
    pub mn_max_cn_consecutive_resends: u32,
    pub send_mob_pfx_sols: bool,
    pub do_route_optimization_mn: bool,
    pub mn_use_all_interfaces: bool,
    pub mob_rtr_use_explicit_mode: bool,
    pub use_cn_bu_ack: bool,
    pub interface_initial_init_delay: Duration,
    pub mn_router_probes: u32,
    /// Zero means unset.
    pub mn_router_probe_timeout: Duration,
    pub initial_bindack_timeout_first_reg: Duration,
    pub initial_bindack_timeout_rereg: Duration,
    pub initial_solicit_timer: Duration,
    pub optimistic_handoff: bool,
    pub no_home_return: bool,
    pub home_links: Vec<HomeLink>,
    pub datapath: Datapath,
    pub distributed_servers: Vec<DistributedServer>,
    pub origins: Origins,
}

impl Default for Config {
    /// umip 1.0's built-in defaults (what an empty file means).
    fn default() -> Self {
        Config {
            node_config: NodeRole::Cn,
            debug_level: 0,
            debug_log_file: None,
            do_route_optimization_cn: true,
            cn_binding_policies: Vec::new(),
            non_volatile_binding_cache: false,
            interfaces: Vec::new(),
            use_mn_ha_ipsec: true,
            key_mng_mob_capability: false,
            ipsec_policy_sets: Vec::new(),
            ha_max_binding_life: MAX_BINDING_LIFETIME,
            send_mob_pfx_advs: true,
            send_unsol_mob_pfx_advs: true,
            min_mob_pfx_adv_interval: 600,
            max_mob_pfx_adv_interval: 86_400,
            ha_accept_mob_rtr: false,
            ha_served_prefixes: Vec::new(),
            binding_acl: Vec::new(),
            default_binding_acl_status: 0,
            mn_max_ha_binding_life: MAX_BINDING_LIFETIME,
            mn_max_cn_binding_life: MAX_RR_BINDING_LIFETIME,
            mn_discard_ha_param_prob: false,
            mn_reset_dhaad_at_home: false,
            mn_flush_all_at_home: false,
            mn_max_ha_consecutive_resends: 5,
            mn_max_cn_consecutive_resends: 0,
            send_mob_pfx_sols: true,
            do_route_optimization_mn: true,
            mn_use_all_interfaces: false,
            mob_rtr_use_explicit_mode: true,
            use_cn_bu_ack: false,
            interface_initial_init_delay: Duration::from_secs(2),
            mn_router_probes: 0,
            mn_router_probe_timeout: Duration::ZERO,
            initial_bindack_timeout_first_reg: Duration::from_millis(1500),
            initial_bindack_timeout_rereg: Duration::from_secs(1),
            initial_solicit_timer: Duration::from_secs(3),
            optimistic_handoff: false,
            no_home_return: false,
            home_links: Vec::new(),
            datapath: Datapath::Auto,
            distributed_servers: Vec::new(),
            origins: Origins::default(),
        }
    }
}

impl Config {
    /// Applies `-C`/`-H`/`-M`: replaces `NodeConfig`, and remembers that it did so that
    /// messages do not blame the file.
    pub fn override_role(&mut self, role: NodeRole) {
        self.node_config = role;
        self.origins.role_from_command_line = true;
    }
}
