//! SIGHUP: read the configuration again and decide what of it can take effect now.
//!
//! What umip applies on reload is the SIGHUP column of the grammar notes; the statements it
//! cannot apply without a restart (the role, the log file, the home links, …) keep their
//! running value here, and the reload reports them, in the log and in `mip6ctl status`,
//! until the file and the running daemon agree again. A file that does not parse or does
//! not pass the role checks changes nothing at all.

use crate::config::keywords;
use crate::config::{self, Config, ConfigError, Datapath, NodeRole, ParseOptions};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Command-line settings that override the file. Unlike umip, they are applied again after
/// every reload: a daemon started with `-H` stays a home agent when its file says CN, and
/// a reload does not report a role change that nobody asked for.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub role: Option<NodeRole>,
    pub debug_level: Option<u32>,
    pub log_file: Option<String>,
    pub datapath: Option<Datapath>,
}

impl Overrides {
    pub fn apply(&self, cfg: &mut Config) {
        if let Some(r) = self.role {
            cfg.override_role(r);
        }
        if let Some(d) = self.debug_level {
            cfg.debug_level = d;
        }
        if let Some(l) = &self.log_file {
            cfg.debug_log_file = Some(l.clone());
        }
        if let Some(d) = self.datapath {
            cfg.datapath = d;
        }
    }
}

/// Where the configuration comes from.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    /// Named with `-c`: it must exist. The default file may be missing (built-in defaults).
    pub explicit: bool,
}

/// A configuration that passed parsing and the role checks, with its warnings.
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

fn located(e: &ConfigError, path: &Path) -> String {
    if e.location.is_some() {
        e.to_string()
    } else {
        format!("{}: {e}", path.display())
    }
}

/// Parses, applies the overrides and checks. Errors come as `file:line:column: message`
/// lines, as `mip6d -t` prints them.
pub fn load(src: &Source, overrides: &Overrides) -> Result<Loaded, String> {
    let mut warnings = Vec::new();
    let mut cfg = if !src.explicit && !src.path.exists() {
        Config::default()
    } else {
        let parsed = config::parse_file_with(&src.path, &ParseOptions::default())
            .map_err(|e| located(&e, &src.path))?;
        warnings.extend(parsed.warnings.iter().map(|w| located(w, &src.path)));
        parsed.config
    };
    overrides.apply(&mut cfg);
    let report = cfg.check();
    warnings.extend(report.warnings.iter().map(|w| located(w, &src.path)));
    if !report.errors.is_empty() {
        return Err(report
            .errors
            .iter()
            .map(|e| located(e, &src.path))
            .collect::<Vec<_>>()
            .join("\n"));
    }
    Ok(Loaded {
        config: cfg,
        warnings,
    })
}

/// The outcome of merging a freshly read configuration into the running one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merge {
    /// Statements whose new value took effect.
    pub applied: Vec<String>,
    /// Statements that changed in the file but keep their running value until a restart,
    /// as "Keyword (running X, file says Y)".
    pub restart_needed: Vec<String>,
}

pub fn role_name(r: NodeRole) -> &'static str {
    r.keyword()
}

pub fn datapath_name(d: Datapath) -> &'static str {
    keywords::word_for(keywords::DATAPATH_WORDS, d)
}

/// Keeps the running value of every statement umip cannot change without a restart
/// (SIGHUP column "N"), and reports the rest of the changes as applied.
pub fn merge(running: &Config, mut new: Config) -> (Config, Merge) {
    let mut restart = Vec::new();
    macro_rules! keep {
        ($field:ident, $kw:literal, $show:expr) => {
            if new.$field != running.$field {
                let show = $show;
                restart.push(format!(
                    "{} (running {}, file says {})",
                    $kw,
                    show(&running.$field),
                    show(&new.$field)
                ));
                new.$field = running.$field.clone();
            }
        };
        ($field:ident, $kw:literal) => {
            if new.$field != running.$field {
                restart.push(format!("{} (changed)", $kw));
                new.$field = running.$field.clone();
            }
        };
    }
    keep!(node_config, "NodeConfig", |r: &NodeRole| role_name(*r)
        .to_string());
    keep!(
        debug_log_file,
        "DebugLogFile",
        |f: &Option<String>| match f {
            Some(f) => format!("{f:?}"),
            None => "none".to_string(),
        }
    );
    keep!(datapath, "Datapath", |d: &Datapath| datapath_name(*d)
        .to_string());
    keep!(use_mn_ha_ipsec, "UseMnHaIPsec", |b: &bool| b.to_string());
    keep!(
        interface_initial_init_delay,
        "InterfaceInitialInitDelay",
        |d: &std::time::Duration| format!("{:?}", d)
    );
    keep!(
        initial_solicit_timer,
        "InitialSolicitTimer",
        |d: &std::time::Duration| format!("{:?}", d)
    );
    keep!(cn_binding_policies, "CnBindingPolicySet");
    keep!(home_links, "MnHomeLink");
    // Membership of a Distributed Servers group changes through the membership protocol,
    // not by editing a file under a running group.
    keep!(distributed_servers, "DistributedServer");
    let applied = changed_statements(running, &new);
    (
        new,
        Merge {
            applied,
            restart_needed: restart,
        },
    )
}

/// Top-level statements whose `--show-config` text differs. The printed form is the
/// canonical form of a configuration, so comparing it catches every field, including ones
/// added to the model later, without a hand-kept list.
pub fn changed_statements(old: &Config, new: &Config) -> Vec<String> {
    fn by_statement(c: &Config) -> BTreeMap<String, Vec<String>> {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut block: Option<String> = None;
        for line in c.to_string().lines() {
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            if line.starts_with(char::is_whitespace) || t == "}" {
                if let Some(b) = &block {
                    map.entry(b.clone()).or_default().push(t.to_string());
                }
                if t == "}" {
                    block = None;
                }
                continue;
            }
            let kw = t
                .split_whitespace()
                .next()
                .unwrap_or(t)
                .trim_end_matches(';');
            if t.ends_with('{') {
                block = Some(kw.to_string());
            }
            map.entry(kw.to_string()).or_default().push(t.to_string());
        }
        map
    }
    let (a, b) = (by_statement(old), by_statement(new));
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Config {
        config::parse_str(text, "t.conf").unwrap()
    }

    #[test]
    fn role_change_waits_for_a_restart_and_the_rest_applies() {
        let running = parse("NodeConfig CN;\nDoRouteOptimizationCN enabled;\n");
        let new = parse("NodeConfig MN;\nDoRouteOptimizationCN disabled;\nDebugLevel 1;\n");
        let (merged, m) = merge(&running, new);
        assert_eq!(merged.node_config, NodeRole::Cn);
        assert!(!merged.do_route_optimization_cn);
        assert_eq!(merged.debug_level, 1);
        assert_eq!(m.restart_needed, ["NodeConfig (running CN, file says MN)"]);
        assert_eq!(m.applied, ["DebugLevel", "DoRouteOptimizationCN"]);
    }

    #[test]
    fn an_unchanged_file_changes_nothing() {
        let c = parse("NodeConfig CN;\n");
        let (merged, m) = merge(&c, c.clone());
        assert_eq!(merged, c);
        assert!(m.applied.is_empty() && m.restart_needed.is_empty());
    }

    #[test]
    fn block_changes_are_seen() {
        let a = parse("Interface \"eth0\";\n");
        let b = parse("Interface \"eth1\";\n");
        assert_eq!(changed_statements(&a, &b), ["Interface"]);
    }

    #[test]
    fn overrides_apply_again_after_loading() {
        let dir = std::env::temp_dir().join(format!("mip6d-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.conf");
        std::fs::write(&path, "NodeConfig CN;\nDebugLevel 0;\n").unwrap();
        let src = Source {
            path: path.clone(),
            explicit: true,
        };
        let o = Overrides {
            debug_level: Some(3),
            ..Overrides::default()
        };
        assert_eq!(load(&src, &o).unwrap().config.debug_level, 3);
        std::fs::write(&path, "NodeConfig CN;\nDebugLevel x;\n").unwrap();
        let e = load(&src, &o).err().unwrap();
        assert!(e.starts_with(&format!("{}:2:", path.display())), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
