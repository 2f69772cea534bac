//! What one direction of a link emulates, as `key=value` words: the same words on the
//! command line, on the control socket and in `show` output.
//!
//! ```text
//! delay=25ms jitter=1ms rate=2000kbit burst=0 loss=1% queue=1000
//! ge=1,25,100,0        Gilbert–Elliott loss, netem's `loss gemodel p r 1-h 1-k` (percent)
//! ```
//!
//! Bare numbers take the testbed's units: milliseconds, kbit/s, percent.

use std::fmt;

use super::loss::Loss;

/// Frames the rate queue holds by default: a default Linux `txqueuelen`.
pub const DEFAULT_QUEUE: usize = 1000;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Params {
    /// One-way delay added to every frame, in nanoseconds.
    pub delay_ns: u64,
    /// Each frame's delay is drawn uniformly from `delay ± jitter` (never below zero);
    /// frames still leave in order.
    pub jitter_ns: u64,
    /// Token rate in bits per second over whole Ethernet frames (what tc counts); 0 is
    /// unlimited.
    pub rate_bit: u64,
    /// Bytes the token bucket holds beyond the frame in flight. 0: frames leave spaced by
    /// their own transmission time, like a link of that rate.
    pub burst: u64,
    pub loss: Loss,
    /// Frames that may wait for tokens; one more is dropped (tail drop).
    pub queue: usize,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            delay_ns: 0,
            jitter_ns: 0,
            rate_bit: 0,
            burst: 0,
            loss: Loss::None,
            queue: DEFAULT_QUEUE,
        }
    }
}

/// Nanoseconds from `25ms`, `500us`, `1.5s`, `250000ns` or a bare number of milliseconds.
pub fn parse_duration_ns(s: &str) -> Result<u64, String> {
    let (num, scale) = split_unit(s, &[("ns", 1.0), ("us", 1e3), ("ms", 1e6), ("s", 1e9)], 1e6)?;
    to_u64(num * scale, s)
}

/// Bits per second from `2mbit`, `2000kbit`, `64000bit`, `1gbit`, `unlimited` or a bare
/// number of kbit/s.
pub fn parse_rate_bit(s: &str) -> Result<u64, String> {
    if s == "unlimited" {
        return Ok(0);
    }
    let (num, scale) = split_unit(
        s,
        &[("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3), ("bit", 1.0)],
        1e3,
    )?;
    to_u64(num * scale, s)
}

/// A probability from `1%`, `0.5%` or a bare percentage.
pub fn parse_percent(s: &str) -> Result<f64, String> {
    let (num, _) = split_unit(s, &[("%", 1.0)], 1.0)?;
    if num > 100.0 {
        return Err(format!("'{s}': a percentage is at most 100"));
    }
    Ok(num / 100.0)
}

fn split_unit(s: &str, units: &[(&str, f64)], bare: f64) -> Result<(f64, f64), String> {
    let (num, scale) = units
        .iter()
        .find_map(|(u, f)| s.strip_suffix(u).map(|n| (n, *f)))
        .unwrap_or((s, bare));
    let v: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a number with a known unit"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("'{s}' must be a finite, non-negative number"));
    }
    Ok((v, scale))
}

fn to_u64(v: f64, s: &str) -> Result<u64, String> {
    // u64::MAX as f64 rounds up, so `<` keeps the cast in range.
    if v < u64::MAX as f64 {
        Ok(v.round() as u64)
    } else {
        Err(format!("'{s}' is too large"))
    }
}

fn parse_ge(s: &str) -> Result<Loss, String> {
    let v = s
        .split(',')
        .map(parse_percent)
        .collect::<Result<Vec<f64>, String>>()?;
    // netem's defaults for the omitted ones: r = 1-p, 1-h = 100 %, 1-k = 0 %.
    let p = *v.first().ok_or("ge needs at least p")?;
    match v.len() {
        1..=4 => Ok(Loss::GilbertElliott {
            p,
            r: v.get(1).copied().unwrap_or(1.0 - p),
            loss_bad: v.get(2).copied().unwrap_or(1.0),
            loss_good: v.get(3).copied().unwrap_or(0.0),
        }),
        _ => Err(format!("ge='{s}': at most four values (p,r,1-h,1-k)")),
    }
}

impl Params {
    /// Applies `key=value` words on top of the current values; keys not named keep theirs.
    /// On error nothing changes.
    pub fn apply<'a>(&mut self, words: impl IntoIterator<Item = &'a str>) -> Result<(), String> {
        let mut next = *self;
        for w in words {
            let (k, v) = w
                .split_once('=')
                .ok_or_else(|| format!("'{w}': expected key=value"))?;
            match k {
                "delay" => next.delay_ns = parse_duration_ns(v)?,
                "jitter" => next.jitter_ns = parse_duration_ns(v)?,
                "rate" => next.rate_bit = parse_rate_bit(v)?,
                "burst" => {
                    next.burst = v
                        .parse()
                        .map_err(|_| format!("burst='{v}': a number of bytes"))?
                }
                "loss" => {
                    let p = parse_percent(v)?;
                    next.loss = if p == 0.0 {
                        Loss::None
                    } else {
                        Loss::Random(p)
                    };
                }
                "ge" => next.loss = parse_ge(v)?,
                "queue" => {
                    next.queue = v
                        .parse()
                        .ok()
                        .filter(|&q| q >= 1)
                        .ok_or_else(|| format!("queue='{v}': a number of frames, at least 1"))?
                }
                _ => {
                    return Err(format!(
                        "unknown key '{k}' (delay, jitter, rate, burst, loss, ge, queue)"
                    ))
                }
            }
        }
        *self = next;
        Ok(())
    }

    /// Whether frames pass untouched (no delay, rate, or loss).
    pub fn is_transparent(&self) -> bool {
        self.delay_ns == 0 && self.jitter_ns == 0 && self.rate_bit == 0 && self.loss == Loss::None
    }
}

/// Milliseconds with no trailing zeros: 25ms, 0.5ms, 0.000001ms.
struct Ms(u64);

impl fmt::Display for Ms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, frac) = (self.0 / 1_000_000, self.0 % 1_000_000);
        if frac == 0 {
            write!(f, "{whole}ms")
        } else {
            let digits = format!("{frac:06}");
            write!(f, "{whole}.{}ms", digits.trim_end_matches('0'))
        }
    }
}

/// A percentage with no trailing zeros.
struct Pct(f64);

impl fmt::Display for Pct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = format!("{:.6}", self.0 * 100.0);
        write!(f, "{}", s.trim_end_matches('0').trim_end_matches('.'))
    }
}

impl fmt::Display for Params {
    /// The words [`Params::apply`] reads back to the same value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "delay={} jitter={} ",
            Ms(self.delay_ns),
            Ms(self.jitter_ns)
        )?;
        match self.rate_bit {
            0 => write!(f, "rate=unlimited")?,
            r if r % 1000 == 0 => write!(f, "rate={}kbit", r / 1000)?,
            r => write!(f, "rate={r}bit")?,
        }
        write!(f, " burst={} ", self.burst)?;
        match self.loss {
            Loss::None => write!(f, "loss=0%")?,
            Loss::Random(p) => write!(f, "loss={}%", Pct(p))?,
            Loss::GilbertElliott {
                p,
                r,
                loss_bad,
                loss_good,
            } => write!(
                f,
                "ge={},{},{},{}",
                Pct(p),
                Pct(r),
                Pct(loss_bad),
                Pct(loss_good)
            )?,
        }
        write!(f, " queue={}", self.queue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_duration_ns("25ms"), Ok(25_000_000));
        assert_eq!(parse_duration_ns("25"), Ok(25_000_000));
        assert_eq!(parse_duration_ns("0.5"), Ok(500_000));
        assert_eq!(parse_duration_ns("500us"), Ok(500_000));
        assert_eq!(parse_duration_ns("2s"), Ok(2_000_000_000));
        assert_eq!(parse_duration_ns("7ns"), Ok(7));
        assert_eq!(parse_rate_bit("2mbit"), Ok(2_000_000));
        assert_eq!(parse_rate_bit("2000"), Ok(2_000_000));
        assert_eq!(parse_rate_bit("1.5mbit"), Ok(1_500_000));
        assert_eq!(parse_rate_bit("64000bit"), Ok(64_000));
        assert_eq!(parse_rate_bit("unlimited"), Ok(0));
        assert_eq!(parse_percent("1%"), Ok(0.01));
        assert_eq!(parse_percent("50"), Ok(0.5));
        for bad in ["", "-1ms", "nan", "inf", "1e400", "ms", "3 ms", "1furlong"] {
            assert!(parse_duration_ns(bad).is_err(), "{bad}");
        }
        assert!(parse_percent("101%").is_err());
        assert!(parse_rate_bit("99999999999999999999999gbit").is_err());
    }

    #[test]
    fn apply_merges_and_is_atomic() {
        let mut p = Params::default();
        p.apply(["delay=25", "rate=2mbit"]).unwrap();
        p.apply(["loss=1%"]).unwrap();
        assert_eq!(p.delay_ns, 25_000_000);
        assert_eq!(p.rate_bit, 2_000_000);
        assert_eq!(p.loss, Loss::Random(0.01));
        let before = p;
        assert!(p.apply(["delay=5", "queue=0"]).is_err());
        assert!(p.apply(["bogus=1"]).is_err());
        assert!(p.apply(["delay"]).is_err());
        assert_eq!(p, before, "a rejected change leaves everything as it was");
        p.apply(["loss=0"]).unwrap();
        assert_eq!(p.loss, Loss::None);
        p.apply(["ge=1"]).unwrap();
        assert_eq!(
            p.loss,
            Loss::GilbertElliott {
                p: 0.01,
                r: 0.99,
                loss_bad: 1.0,
                loss_good: 0.0
            }
        );
        assert!(p.apply(["ge=1,2,3,4,5"]).is_err());
    }

    #[test]
    fn display_round_trips() {
        let mut p = Params::default();
        assert_eq!(
            p.to_string(),
            "delay=0ms jitter=0ms rate=unlimited burst=0 loss=0% queue=1000"
        );
        assert!(p.is_transparent());
        for words in [
            "delay=25ms jitter=1.5ms rate=2000kbit burst=3000 loss=1% queue=20",
            "delay=0.0005ms jitter=0ms rate=1500bit burst=0 loss=0.25% queue=1",
            "delay=1ms jitter=0ms rate=unlimited burst=0 ge=1,25,100,0.5 queue=1000",
        ] {
            p.apply(words.split(' ')).unwrap();
            assert_eq!(p.to_string(), words);
            assert!(!p.is_transparent());
        }
    }
}
