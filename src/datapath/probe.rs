//! Does the running kernel support the `kernel` data path? (`--datapath auto` asks.)
//!
//! The question is answered by asking the kernel to do what the data path will do, not by
//! reading configuration files: `/proc/config.gz` is often absent (distributions ship
//! `/boot/config-*`, containers have neither), module lists miss built-in code, and
//! `/proc/net/xfrm_stat` exists on any kernel with XFRM, MIP6 or not. So the probe, in
//! the daemon's own network namespace:
//!
//! 1. opens an XFRM netlink socket — refused without `CONFIG_XFRM_USER`;
//! 2. adds and deletes a *sub*-policy — refused without `CONFIG_XFRM_SUB_POLICY`;
//! 3. adds and deletes a route-optimisation state (Type 2 Routing Header, then Home
//!    Address option) — without `CONFIG_IPV6_MIP6` the kernel has no XFRM type for
//!    those protocols and refuses with `EPROTONOSUPPORT` ("Requested type not found").
//!    This is the decisive check and the one this project's CI kernel fails.
//! 4. for the home agent and mobile node (which need ip6ip6 tunnels), looks for
//!    `ip6_tunnel`: loaded or built in (`/sys/module/ip6_tunnel`) or loadable on demand
//!    (listed in `/lib/modules/$(uname -r)/modules.dep` or `modules.builtin`).
//!
//! The probe objects use addresses from the documentation prefix (`2001:db8:6275::/48`)
//! and are deleted at once, so nothing of the host's is touched or left behind.

use crate::sys::xfrm::{
    self, Dir, Policy, PolicyType, Selector, State, Template, Xfrm, IPPROTO_DSTOPTS,
    IPPROTO_ROUTING,
};
use std::io;
use std::net::Ipv6Addr;

/// One kernel option the data path needs and did not find.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub option: &'static str,
    pub why: String,
}

/// The probe's answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Probe {
    pub missing: Vec<Missing>,
}

impl Probe {
    pub fn supported(&self) -> bool {
        self.missing.is_empty()
    }

    /// One line for the log: what is missing and how we know.
    pub fn reason(&self) -> String {
        if self.missing.is_empty() {
            return "the kernel accepted route-optimisation states and sub-policies".into();
        }
        self.missing
            .iter()
            .map(|m| format!("no {} ({})", m.option, m.why))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Whether an error from adding a route-optimisation state is the refusal of a kernel
/// built without `CONFIG_IPV6_MIP6`: no XFRM type registered for the protocol.
pub fn is_missing_mip6(e: &io::Error) -> bool {
    matches!(
        xfrm::errno(e),
        Some(libc::EPROTONOSUPPORT) | Some(libc::ENOPROTOOPT)
    )
}

const PROBE_SRC: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x6275, 0, 0, 0, 0, 1);
const PROBE_DST: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x6275, 0, 0, 0, 0, 2);
const PROBE_COA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x6275, 0, 0, 0, 0, 3);

fn probe_xfrm(x: &mut Xfrm, missing: &mut Vec<Missing>) {
    let pol = Policy::sub(
        Selector::hosts(PROBE_SRC, PROBE_DST),
        Dir::Out,
        u32::MAX,
        vec![Template::ro(IPPROTO_ROUTING, true)],
    );
    match x.add_policy(&pol) {
        Ok(()) => {
            let _ = x.del_policy(&pol.id());
        }
        // A leftover from a probe that was killed half-way still proves support.
        Err(e) if xfrm::errno(&e) == Some(libc::EEXIST) => {
            let _ = x.del_policy(&pol.id());
        }
        // Without the capability nothing can be learned; say that, not a missing option.
        Err(e) if xfrm::errno(&e) == Some(libc::EPERM) => {
            missing.push(Missing {
                option: "CAP_NET_ADMIN",
                why: format!("the probe may not change XFRM: {e}"),
            });
            return;
        }
        Err(e) => missing.push(Missing {
            option: "CONFIG_XFRM_SUB_POLICY",
            why: format!("the kernel refused an XFRM sub-policy: {e}"),
        }),
    }
    debug_assert_eq!(pol.ptype, PolicyType::Sub);
    for (proto, name) in [(IPPROTO_ROUTING, "route2"), (IPPROTO_DSTOPTS, "hao")] {
        let st = State::ro(PROBE_SRC, PROBE_DST, proto, PROBE_COA);
        match x.add_state(&st) {
            Ok(()) => {
                let _ = x.del_state(&st.id);
            }
            Err(e) if xfrm::errno(&e) == Some(libc::EEXIST) => {
                let _ = x.del_state(&st.id);
            }
            Err(e) => {
                let why = if is_missing_mip6(&e) {
                    format!("the kernel has no XFRM type for mode ro proto {name}: {e}")
                } else {
                    format!("a mode ro proto {name} state was refused: {e}")
                };
                missing.push(Missing {
                    option: "CONFIG_IPV6_MIP6",
                    why,
                });
                // The second protocol would only say the same.
                break;
            }
        }
    }
}

/// Whether ip6ip6 tunnels can be had, and how we know.
pub fn ip6_tunnel_available() -> Result<&'static str, String> {
    if std::path::Path::new("/sys/module/ip6_tunnel").exists() {
        return Ok("ip6_tunnel is loaded");
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let dir = std::path::Path::new("/lib/modules").join(&release);
    for list in ["modules.dep", "modules.builtin"] {
        if let Ok(body) = std::fs::read_to_string(dir.join(list)) {
            if body.lines().any(|l| {
                l.split(':')
                    .next()
                    .is_some_and(|m| m.ends_with("/ip6_tunnel.ko") || m.contains("/ip6_tunnel.ko."))
            }) {
                return Ok("ip6_tunnel is available as a module");
            }
        }
    }
    Err(format!(
        "ip6_tunnel is neither loaded nor listed in {}/modules.dep",
        dir.display()
    ))
}

/// Probes the running kernel (see the module documentation). `tunnels`: the role needs
/// ip6ip6 tunnels (home agent, mobile node).
pub fn probe_kernel(tunnels: bool) -> Probe {
    let mut missing = Vec::new();
    match Xfrm::open() {
        Ok(mut x) => probe_xfrm(&mut x, &mut missing),
        Err(e) => missing.push(Missing {
            option: "CONFIG_XFRM_USER",
            why: format!("cannot open an XFRM netlink socket: {e}"),
        }),
    }
    if tunnels {
        if let Err(why) = ip6_tunnel_available() {
            missing.push(Missing {
                option: "CONFIG_IPV6_TUNNEL",
                why,
            });
        }
    }
    Probe { missing }
}

/// `Some(true)` when the running kernel's configuration sets `option` (`=y` or `=m`),
/// `Some(false)` when it says "is not set" or does not list it, `None` when it cannot be
/// read. The configuration is `/proc/config.gz` or else Debian's
/// `/boot/config-$(uname -r)`. For tests and diagnostics only: the probe does not rely
/// on it (see the module documentation).
pub fn kernel_config_option(option: &str) -> Option<bool> {
    let text = proc_config().or_else(boot_config)?;
    let set = format!("{option}=");
    Some(
        text.lines()
            .any(|l| l.starts_with(&set) && !l.ends_with("=n")),
    )
}

fn proc_config() -> Option<String> {
    let out = std::process::Command::new("zcat")
        .arg("/proc/config.gz")
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn boot_config() -> Option<String> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    std::fs::read_to_string(format!("/boot/config-{}", release.trim())).ok()
}

/// The backend a start-up settles on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Kernel,
    User,
}

impl Backend {
    pub fn keyword(self) -> &'static str {
        match self {
            Backend::Kernel => "kernel",
            Backend::User => "user",
        }
    }
}

/// What `Datapath` / `--datapath` asked for, settled against the kernel, with the reason
/// for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub backend: Backend,
    pub reason: String,
}

/// Settles `requested`: `user` as asked; `kernel` only if `probe` finds support (the
/// error names the missing options); `auto` picks `kernel` where supported, `user`
/// otherwise. The probe runs only when the answer depends on it.
pub fn select(
    requested: crate::config::Datapath,
    probe: impl FnOnce() -> Probe,
) -> Result<Selection, String> {
    use crate::config::Datapath;
    match requested {
        Datapath::User => Ok(Selection {
            backend: Backend::User,
            reason: "as configured".into(),
        }),
        Datapath::Kernel => {
            let p = probe();
            if p.supported() {
                Ok(Selection {
                    backend: Backend::Kernel,
                    reason: p.reason(),
                })
            } else {
                Err(format!(
                    "Datapath kernel: this kernel cannot run the kernel data path: {}; \
                     use a kernel built with it (see mip6d(8), KERNEL REQUIREMENTS) or \
                     Datapath user",
                    p.reason()
                ))
            }
        }
        Datapath::Auto => {
            let p = probe();
            Ok(Selection {
                backend: if p.supported() {
                    Backend::Kernel
                } else {
                    Backend::User
                },
                reason: p.reason(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_names_every_missing_option() {
        let p = Probe {
            missing: vec![
                Missing {
                    option: "CONFIG_IPV6_MIP6",
                    why: "x".into(),
                },
                Missing {
                    option: "CONFIG_IPV6_TUNNEL",
                    why: "y".into(),
                },
            ],
        };
        assert!(!p.supported());
        assert_eq!(
            p.reason(),
            "no CONFIG_IPV6_MIP6 (x); no CONFIG_IPV6_TUNNEL (y)"
        );
        assert!(Probe::default().supported());
    }

    fn without_mip6() -> Probe {
        Probe {
            missing: vec![Missing {
                option: "CONFIG_IPV6_MIP6",
                why: "no XFRM type".into(),
            }],
        }
    }

    #[test]
    fn selection_follows_the_request_and_the_probe() {
        use crate::config::Datapath;
        let s = select(Datapath::User, || panic!("user needs no probe")).unwrap();
        assert_eq!(s.backend, Backend::User);
        let s = select(Datapath::Auto, without_mip6).unwrap();
        assert_eq!(s.backend, Backend::User);
        assert!(s.reason.contains("CONFIG_IPV6_MIP6"), "{}", s.reason);
        let s = select(Datapath::Auto, Probe::default).unwrap();
        assert_eq!(s.backend, Backend::Kernel);
        let e = select(Datapath::Kernel, without_mip6).unwrap_err();
        assert!(
            e.contains("Datapath kernel") && e.contains("CONFIG_IPV6_MIP6"),
            "{e}"
        );
        let s = select(Datapath::Kernel, Probe::default).unwrap();
        assert_eq!(s.backend, Backend::Kernel);
    }

    /// The probe on the running kernel agrees with its configuration, when the kernel
    /// publishes it (this machine's has no MIP6: the probe must say so, and why).
    #[test]
    fn live_probe_agrees_with_the_kernel_configuration() {
        let p = probe_kernel(true);
        match kernel_config_option("CONFIG_IPV6_MIP6") {
            Some(false) => {
                assert!(!p.supported());
                let m = p
                    .missing
                    .iter()
                    .find(|m| m.option == "CONFIG_IPV6_MIP6")
                    .unwrap_or_else(|| panic!("{p:?}"));
                assert!(m.why.contains("mode ro proto route2"), "{}", m.why);
            }
            Some(true) => assert!(
                p.missing.iter().all(|m| m.option != "CONFIG_IPV6_MIP6"),
                "{p:?}"
            ),
            None => {}
        }
        if kernel_config_option("CONFIG_XFRM_SUB_POLICY") == Some(true) {
            assert!(
                p.missing
                    .iter()
                    .all(|m| m.option != "CONFIG_XFRM_SUB_POLICY"),
                "{p:?}"
            );
        }
        if kernel_config_option("CONFIG_IPV6_TUNNEL") == Some(false) {
            assert!(
                p.missing.iter().any(|m| m.option == "CONFIG_IPV6_TUNNEL"),
                "{p:?}"
            );
        }
        eprintln!("probe: {}", p.reason());
    }

    #[test]
    fn missing_mip6_is_recognised_by_errno() {
        let e: io::Error = xfrm::XfrmError {
            op: "XFRM_MSG_NEWSA",
            errno: libc::EPROTONOSUPPORT,
            reason: Some("Requested type not found".into()),
        }
        .into();
        assert!(is_missing_mip6(&e));
        assert!(!is_missing_mip6(&io::Error::from_raw_os_error(libc::EPERM)));
    }
}
