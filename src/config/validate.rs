//! Cross-checks that depend on the role. They run after parsing because `-C`/`-H`/`-M`
//! may still change the role, and umip ignores options of other roles rather than
//! refusing them, so the parser cannot decide these on its own.

use super::model::*;
use super::ConfigError;

/// The outcome of [`Config::check`].
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigError>,
}

impl CheckReport {
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

impl Config {
    fn role_location(&self) -> (Option<Location>, &'static str) {
        if self.origins.role_from_command_line {
            (None, " (role set on the command line)")
        } else {
            match self.origins.statements.get("NodeConfig") {
                Some(l) => (Some(l.clone()), ""),
                None => (None, " (the default role)"),
            }
        }
    }

    fn at(&self, keyword: &str) -> Option<Location> {
        self.origins.statements.get(keyword).cloned()
    }

    /// Role-dependent checks; `mip6d -t` fails when `errors` is not empty.
    pub fn check(&self) -> CheckReport {
        let mut r = CheckReport::default();
        let role = self.node_config;
        let (role_at, role_note) = self.role_location();
        let role_kw = role.keyword();

        if self.min_mob_pfx_adv_interval > self.max_mob_pfx_adv_interval {
            r.errors.push(ConfigError::new(
                self.at("MinMobPfxAdvInterval"),
                format!(
                    "expected MinMobPfxAdvInterval no greater than MaxMobPfxAdvInterval ({}), found {}",
                    self.max_mob_pfx_adv_interval, self.min_mob_pfx_adv_interval
                ),
            ));
        }

        match role {
            NodeRole::Ha => {
                let served = self
                    .interfaces
                    .iter()
                    .filter(|i| i.effective_type(role) == NodeRole::Ha)
                    .count();
                if served == 0 {
                    r.errors.push(ConfigError::new(
                        role_at.clone(),
                        format!(
                            "expected at least one `Interface \"<name>\";` to serve as home agent \
                             on with NodeConfig HA{role_note}, found none"
                        ),
                    ));
                }
                for (i, at) in self
                    .interfaces
                    .iter()
                    .zip(self.origin_iter(&self.origins.interfaces))
                {
                    if i.tunnel && i.effective_type(role) == NodeRole::Ha {
                        r.errors.push(ConfigError::new(
                            at,
                            format!(
                                "expected a home agent interface that is not a tunnel, found \
                                 \"{}\" with `Tunnel enabled` (not supported for a home agent, as in umip)",
                                i.name
                            ),
                        ));
                    }
                }
                if !self.distributed_servers.is_empty() {
                    r.errors.push(ConfigError::new(
                        self.origins.distributed_servers.first().cloned(),
                        format!(
                            "expected DistributedServer blocks only on server nodes (NodeConfig CN \
                             or MN), found one with NodeConfig HA{role_note}"
                        ),
                    ));
                }
            }
            NodeRole::Mn => {
                if self.home_links.is_empty() {
                    r.errors.push(ConfigError::new(
                        role_at.clone(),
                        format!(
                            "expected at least one MnHomeLink block with a HomeAddress \
                             with NodeConfig MN{role_note}, found none"
                        ),
                    ));
                }
            }
            NodeRole::Cn => {}
        }

        if role != NodeRole::Mn {
            if let Some(at) = self.origins.home_links.first() {
                r.warnings.push(ConfigError::new(
                    Some(at.clone()),
                    format!("MnHomeLink blocks are ignored with NodeConfig {role_kw}{role_note}"),
                ));
            }
        }
        if role == NodeRole::Cn && !self.ipsec_policy_sets.is_empty() {
            r.warnings.push(ConfigError::new(
                self.origins.ipsec_policy_sets.first().cloned(),
                format!("IPsecPolicySet blocks are ignored with NodeConfig CN{role_note}"),
            ));
        }
        if !self.use_mn_ha_ipsec {
            if let Some(at) = self.origins.ipsec_policy_sets.first() {
                r.warnings.push(ConfigError::new(
                    Some(at.clone()),
                    "IPsecPolicySet blocks are ignored because UseMnHaIPsec is disabled",
                ));
            }
            if self.key_mng_mob_capability {
                r.warnings.push(ConfigError::new(
                    self.at("KeyMngMobCapability"),
                    "KeyMngMobCapability has no effect because UseMnHaIPsec is disabled",
                ));
            }
        }
        r
    }

    /// Locations of a block list, padded with `None` when the config was built in code.
    fn origin_iter<'a>(&self, locs: &'a [Location]) -> impl Iterator<Item = Option<Location>> + 'a {
        locs.iter()
            .cloned()
            .map(Some)
            .chain(std::iter::repeat(None))
    }
}
