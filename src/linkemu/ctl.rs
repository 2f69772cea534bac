//! The control socket's line protocol: one request line in, reply lines out, the last of
//! which is `ok` or `error: …`.
//!
//! ```text
//! show                       one line per direction: parameters, counters, backlog
//! set up|down|both WORDS...  change the named keys (see params), keep the others
//! clear up|down|both         back to a transparent link
//! ```
//!
//! `up` is the direction from the node to the router, `down` from the router to the node.

use super::link::Link;
use super::params::Params;

/// A link's two directions.
pub struct Duplex<F> {
    /// Node → router.
    pub up: Link<F>,
    /// Router → node.
    pub down: Link<F>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    Up,
    Down,
    Both,
}

impl Which {
    fn parse(s: &str) -> Result<Which, String> {
        match s {
            "up" => Ok(Which::Up),
            "down" => Ok(Which::Down),
            "both" => Ok(Which::Both),
            _ => Err(format!("direction '{s}': one of up, down, both")),
        }
    }

    fn has_up(self) -> bool {
        self != Which::Down
    }

    fn has_down(self) -> bool {
        self != Which::Up
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    Show,
    Set(Which, Vec<String>),
    Clear(Which),
}

impl Request {
    pub fn parse(line: &str) -> Result<Request, String> {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("show") if words.next().is_none() => Ok(Request::Show),
            Some("set") => {
                let which = Which::parse(words.next().unwrap_or(""))?;
                let rest: Vec<String> = words.map(str::to_string).collect();
                if rest.is_empty() {
                    return Err("set: nothing to set".into());
                }
                Ok(Request::Set(which, rest))
            }
            Some("clear") => {
                let which = Which::parse(words.next().unwrap_or(""))?;
                match words.next() {
                    None => Ok(Request::Clear(which)),
                    Some(w) => Err(format!("clear: unexpected '{w}'")),
                }
            }
            _ => Err(format!(
                "unknown request '{}' (show, set DIR WORDS, clear DIR)",
                line.trim()
            )),
        }
    }
}

impl<F: AsRef<[u8]>> Duplex<F> {
    pub fn new(up: Params, down: Params, seed: u64) -> Duplex<F> {
        Duplex {
            up: Link::new(up, seed),
            // Different streams, so a symmetric setting does not lose matching packets.
            down: Link::new(down, seed ^ 0x5eed_d0e5),
        }
    }

    /// Answers one request line at time `now`; the reply ends in `ok\n` or `error: …\n`.
    pub fn handle(&mut self, line: &str, now: u64) -> String {
        match self.try_handle(line, now) {
            Ok(mut body) => {
                body.push_str("ok\n");
                body
            }
            Err(e) => format!("error: {e}\n"),
        }
    }

    fn try_handle(&mut self, line: &str, now: u64) -> Result<String, String> {
        match Request::parse(line)? {
            Request::Show => {
                let mut out = String::new();
                for (name, l) in [("up", &self.up), ("down", &self.down)] {
                    let (q, d) = l.backlog();
                    out.push_str(&format!(
                        "{name} {} {} queued={q} in_flight={d}\n",
                        l.params(),
                        l.stats()
                    ));
                }
                Ok(out)
            }
            Request::Set(which, words) => {
                // Both directions are checked before either changes.
                let mut up = *self.up.params();
                let mut down = *self.down.params();
                let words: Vec<&str> = words.iter().map(String::as_str).collect();
                if which.has_up() {
                    up.apply(words.iter().copied())?;
                }
                if which.has_down() {
                    down.apply(words.iter().copied())?;
                }
                self.up.set_params(up, now);
                self.down.set_params(down, now);
                Ok(String::new())
            }
            Request::Clear(which) => {
                if which.has_up() {
                    self.up.set_params(Params::default(), now);
                }
                if which.has_down() {
                    self.down.set_params(Params::default(), now);
                }
                Ok(String::new())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests() {
        assert_eq!(Request::parse("show\n"), Ok(Request::Show));
        assert_eq!(
            Request::parse("set both delay=5 loss=1%"),
            Ok(Request::Set(
                Which::Both,
                vec!["delay=5".into(), "loss=1%".into()]
            ))
        );
        assert_eq!(Request::parse("clear up"), Ok(Request::Clear(Which::Up)));
        for bad in [
            "",
            "show x",
            "set",
            "set sideways delay=1",
            "set up",
            "clear",
            "drop",
        ] {
            assert!(Request::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn set_show_clear() {
        let mut d: Duplex<Vec<u8>> = Duplex::new(Params::default(), Params::default(), 1);
        assert_eq!(d.handle("set down delay=25ms rate=2000", 0), "ok\n");
        assert_eq!(d.handle("set both loss=1%", 0), "ok\n");
        let show = d.handle("show", 0);
        let lines: Vec<&str> = show.lines().collect();
        assert_eq!(lines.len(), 3, "{show}");
        assert!(lines[0].starts_with("up delay=0ms jitter=0ms rate=unlimited burst=0 loss=1% "));
        assert!(lines[1].starts_with("down delay=25ms jitter=0ms rate=2000kbit burst=0 loss=1% "));
        assert!(lines[1].contains(" rx=0 "));
        assert_eq!(lines[2], "ok");
        // A bad word changes neither direction.
        assert!(d
            .handle("set both delay=1 loss=200%", 0)
            .starts_with("error: "));
        assert_eq!(d.down.params().delay_ns, 25_000_000);
        assert_eq!(d.handle("clear down", 0), "ok\n");
        assert!(d.down.params().is_transparent());
        assert!(!d.up.params().is_transparent());
        assert!(d
            .handle("frobnicate", 0)
            .starts_with("error: unknown request"));
    }
}
