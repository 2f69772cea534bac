//! Prints a [`Config`] back as mip6d.conf, every setting spelled out (`--show-config`).
//! The output parses back to an equal `Config`; the tests hold us to that.

use std::fmt::{self, Write as _};
use std::time::Duration;

use super::keywords::{self as kw, Kind, Scope};
use super::model::*;

/// Seconds as umip's DECIMAL: always with a dot, as few decimals as needed.
pub fn decimal(d: Duration) -> String {
    let frac = format!("{:09}", d.subsec_nanos());
    let frac = frac.trim_end_matches('0');
    format!(
        "{}.{}",
        d.as_secs(),
        if frac.is_empty() { "0" } else { frac }
    )
}

fn on_off(b: bool) -> &'static str {
    if b {
        "enabled"
    } else {
        "disabled"
    }
}

fn acl(status: u8) -> String {
    match status {
        0 => "allow".to_string(),
        STATUS_PROHIBITED => "deny".to_string(),
        n => n.to_string(),
    }
}

fn mnps(list: &[Prefix]) -> String {
    if list.is_empty() {
        return String::new();
    }
    let v: Vec<String> = list.iter().map(Prefix::to_string).collect();
    format!(" ({})", v.join(", "))
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        self.write_to(&mut out)?;
        f.write_str(&out)
    }
}

impl Config {
    fn write_to(&self, o: &mut String) -> fmt::Result {
        writeln!(o, "# Effective mip6d configuration, defaults included.")?;
        // Scalars come from the keyword table so that a new keyword cannot be forgotten here.
        let mut scratch = self.clone();
        for def in kw::STATEMENTS.iter().filter(|d| d.scope == Scope::Global) {
            let name = def.name;
            match def.kind {
                Kind::Bool(field) => writeln!(o, "{name} {};", on_off(*field(&mut scratch)))?,
                Kind::Num(field, _) => writeln!(o, "{name} {};", *field(&mut scratch))?,
                Kind::Dec(field, _) => writeln!(o, "{name} {};", decimal(*field(&mut scratch)))?,
                Kind::Reserved | Kind::Special(_) => self.write_special(o, name)?,
            }
        }
        Ok(())
    }

    fn write_special(&self, o: &mut String, name: &str) -> fmt::Result {
        match name {
            "NodeConfig" => writeln!(o, "NodeConfig {};", self.node_config.keyword()),
            "DebugLogFile" => match &self.debug_log_file {
                Some(file) => writeln!(o, "DebugLogFile \"{file}\";"),
                None => writeln!(
                    o,
                    "# DebugLogFile not set: debug output goes to standard error."
                ),
            },
            "Datapath" => writeln!(
                o,
                "Datapath {};",
                kw::word_for(kw::DATAPATH_WORDS, self.datapath)
            ),
            "UsePolicyModule" => writeln!(
                o,
                "# UsePolicyModule: not supported; the built-in policy is used."
            ),
            "UseMovementModule" => writeln!(o, "UseMovementModule internal;"),
            "DefaultBindingAclPolicy" => writeln!(
                o,
                "DefaultBindingAclPolicy {};",
                acl(self.default_binding_acl_status)
            ),
            "HaServedPrefix" => {
                for p in &self.ha_served_prefixes {
                    writeln!(o, "HaServedPrefix {p};")?;
                }
                Ok(())
            }
            "BindingAclPolicy" => {
                for a in &self.binding_acl {
                    writeln!(
                        o,
                        "BindingAclPolicy {}{} {};",
                        a.home_address,
                        mnps(&a.mobile_network_prefixes),
                        acl(a.status)
                    )?;
                }
                Ok(())
            }
            "Interface" => {
                for i in &self.interfaces {
                    writeln!(o, "\nInterface \"{}\" {{", i.name)?;
                    if let Some(t) = i.if_type {
                        writeln!(o, "\tIfType {};", t.keyword())?;
                    }
                    writeln!(o, "\tMnIfPreference {};", i.preference)?;
                    writeln!(o, "\tTunnel {};", on_off(i.tunnel))?;
                    writeln!(o, "}}")?;
                }
                Ok(())
            }
            "MnHomeLink" => {
                for l in &self.home_links {
                    writeln!(o, "\nMnHomeLink \"{}\" {{", l.interface)?;
                    writeln!(o, "\tHomeAgentAddress {};", l.home_agent_address)?;
                    writeln!(
                        o,
                        "\tHomeAddress {}{};",
                        l.home_address,
                        mnps(&l.mobile_network_prefixes)
                    )?;
                    match l.home_prefix {
                        Some(p) => writeln!(o, "\tHomePrefix {p};")?,
                        None => writeln!(
                            o,
                            "\t# HomePrefix not set: {} (from HomeAddress).",
                            l.effective_home_prefix()
                        )?,
                    }
                    writeln!(o, "\tIsMobRtr {};", on_off(l.is_mob_rtr))?;
                    for r in &l.ro_policies {
                        match r.correspondent {
                            Some(a) => writeln!(o, "\tMnRoPolicy {a} {};", on_off(r.enabled))?,
                            None => writeln!(o, "\tMnRoPolicy {};", on_off(r.enabled))?,
                        }
                    }
                    writeln!(o, "}}")?;
                }
                Ok(())
            }
            "IPsecPolicySet" => {
                for s in &self.ipsec_policy_sets {
                    writeln!(o, "\nIPsecPolicySet {{")?;
                    writeln!(o, "\tHomeAgentAddress {};", s.home_agent_address)?;
                    for h in &s.home_addresses {
                        writeln!(o, "\tHomeAddress {h};")?;
                    }
                    for p in &s.policies {
                        let action = match p.action {
                            PolicyAction::Allow => "allow",
                            PolicyAction::Block => "block",
                        };
                        writeln!(
                            o,
                            "\tIPsecPolicy {} UseESP {} {} {action};",
                            kw::word_for(kw::IPSEC_TYPE_WORDS, p.policy_type),
                            p.reqid_to_ha,
                            p.reqid_to_mn
                        )?;
                    }
                    writeln!(o, "}}")?;
                }
                Ok(())
            }
            "CnBindingPolicySet" => {
                if self.cn_binding_policies.is_empty() {
                    return Ok(());
                }
                writeln!(o, "\nCnBindingPolicySet {{")?;
                for p in &self.cn_binding_policies {
                    let verdict = if p.accept { "allow" } else { "deny" };
                    match p.local {
                        Some(l) => writeln!(o, "\t{} {l} {verdict};", p.peer)?,
                        None => writeln!(o, "\t{} {verdict};", p.peer)?,
                    }
                }
                writeln!(o, "}}")
            }
            "DistributedServer" => {
                for d in &self.distributed_servers {
                    writeln!(o, "\nDistributedServer \"{}\" {{", d.name)?;
                    writeln!(o, "\tAddress {};", d.address)?;
                    writeln!(o, "\tHomeAgentAddress {};", d.home_agent_address)?;
                    writeln!(o, "\tRole {};", kw::word_for(kw::DS_ROLE_WORDS, d.role))?;
                    writeln!(o, "\tNodeId {};", d.node_id)?;
                    if let Some(a) = d.local_address {
                        writeln!(o, "\tLocalAddress {a};")?;
                    }
                    if !d.peers.is_empty() {
                        writeln!(o, "\tPeers {{")?;
                        for p in &d.peers {
                            writeln!(
                                o,
                                "\t\tPeer {} {} {};",
                                p.node_id,
                                p.address,
                                kw::word_for(kw::DS_ROLE_WORDS, p.role)
                            )?;
                        }
                        writeln!(o, "\t}}")?;
                    }
                    writeln!(o, "\tSharedKeyFile \"{}\";", d.shared_key_file)?;
                    writeln!(o, "\tHeartbeatInterval {};", decimal(d.heartbeat_interval))?;
                    writeln!(o, "\tFailureTimeout {};", decimal(d.failure_timeout))?;
                    writeln!(
                        o,
                        "\tHandoffDrain {};",
                        kw::word_for(kw::DRAIN_WORDS, d.handoff_drain)
                    )?;
                    writeln!(o, "\tControlPort {};", d.control_port)?;
                    if let Some(f) = &d.state_file {
                        writeln!(o, "\tStateFile \"{f}\";")?;
                    }
                    if let Some(i) = &d.contact_interface {
                        writeln!(o, "\tContactInterface \"{i}\";")?;
                    }
                    writeln!(o, "}}")?;
                }
                Ok(())
            }
            // Reserved words print nothing: they cannot appear in a valid file.
            _ => Ok(()),
        }
    }
}
