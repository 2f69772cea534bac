//! Recursive descent over the token stream, one function per statement shape.

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::glob;
use super::keywords::{self as kw, Kind, Scope, Special, StatementDef};
use super::lexer::{tokenize, Pos, TokKind, Token};
use super::model::*;
use super::{ConfigError, ParseOptions, Parsed};

/// umip stops at 5 nested includes; loops are caught separately, so this only bounds
/// legitimate nesting and we can afford to be more generous.
const MAX_INCLUDE_DEPTH: usize = 16;

type Result<T> = std::result::Result<T, ConfigError>;

static EOF_TOKEN: Token = Token {
    kind: TokKind::Eof,
    text: String::new(),
    start: Pos { line: 1, col: 1 },
    end: Pos { line: 1, col: 1 },
};

/// State shared by a file and everything it includes.
struct Ctx {
    cfg: Config,
    warnings: Vec<ConfigError>,
    opts: ParseOptions,
    /// Canonical paths of the files being parsed, outermost first.
    open_files: Vec<PathBuf>,
    /// The `include` statements that led to the current file, outermost first.
    chain: Vec<Location>,
    ipsec_seen: Vec<(Ipv6Addr, Ipv6Addr, IpsecPolicyType, Location)>,
    acl_seen: HashMap<Ipv6Addr, Location>,
    cn_seen: HashMap<(Ipv6Addr, Option<Ipv6Addr>), Location>,
    iface_seen: HashMap<String, Location>,
    hoa_seen: HashMap<Ipv6Addr, Location>,
    ds_names: HashMap<String, Location>,
    ds_addresses: HashMap<Ipv6Addr, Location>,
}

impl Ctx {
    fn new(opts: &ParseOptions) -> Self {
        Ctx {
            cfg: Config::default(),
            warnings: Vec::new(),
            opts: opts.clone(),
            open_files: Vec::new(),
            chain: Vec::new(),
            ipsec_seen: Vec::new(),
            acl_seen: HashMap::new(),
            cn_seen: HashMap::new(),
            iface_seen: HashMap::new(),
            hoa_seen: HashMap::new(),
            ds_names: HashMap::new(),
            ds_addresses: HashMap::new(),
        }
    }

    fn located(&self, location: Option<Location>, message: String) -> ConfigError {
        let mut e = ConfigError::new(location, message);
        e.included_from = self.chain.iter().rev().cloned().collect();
        e
    }

    fn finish(self) -> Parsed {
        Parsed {
            config: self.cfg,
            warnings: self.warnings,
        }
    }
}

pub fn parse_str(text: &str, name: &str, opts: &ParseOptions) -> Result<Parsed> {
    let mut ctx = Ctx::new(opts);
    parse_text(&mut ctx, text, name, None)?;
    Ok(ctx.finish())
}

pub fn parse_file(path: &Path, opts: &ParseOptions) -> Result<Parsed> {
    let mut ctx = Ctx::new(opts);
    parse_one_file(&mut ctx, path)?;
    Ok(ctx.finish())
}

fn read_text(ctx: &Ctx, path: &Path) -> Result<String> {
    let name = path.display();
    let bytes = std::fs::read(path)
        .map_err(|e| ctx.located(None, format!("{name}: cannot read the file: {e}")))?;
    String::from_utf8(bytes).map_err(|e| {
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
        let col = String::from_utf8_lossy(good)
            .rsplit('\n')
            .next()
            .map_or(0, |l| l.chars().count())
            + 1;
        ctx.located(
            Some(Location {
                file: name.to_string(),
                line: u32::try_from(line).unwrap_or(u32::MAX),
                column: u32::try_from(col).unwrap_or(u32::MAX),
            }),
            "expected UTF-8 text, found a byte sequence that is not UTF-8".to_string(),
        )
    })
}

fn parse_one_file(ctx: &mut Ctx, path: &Path) -> Result<()> {
    let text = read_text(ctx, path)?;
    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    ctx.open_files.push(canonical);
    let dir = path.parent().map(Path::to_path_buf);
    let r = parse_text(ctx, &text, &path.display().to_string(), dir);
    ctx.open_files.pop();
    r
}

fn parse_text(ctx: &mut Ctx, text: &str, name: &str, dir: Option<PathBuf>) -> Result<()> {
    let toks = tokenize(text).map_err(|e| {
        ctx.located(
            Some(Location {
                file: name.to_string(),
                line: e.pos.line,
                column: e.pos.col,
            }),
            e.message,
        )
    })?;
    let mut p = FileParser {
        toks,
        i: 0,
        file: name.to_string(),
        dir,
        ctx,
    };
    p.top_level()
}

struct FileParser<'c> {
    toks: Vec<Token>,
    i: usize,
    file: String,
    /// Directory of the file, for relative includes; `None` for in-memory text.
    dir: Option<PathBuf>,
    ctx: &'c mut Ctx,
}

fn is_bool_word(w: &str) -> bool {
    kw::BOOL_WORDS.iter().any(|(b, _)| *b == w)
}

fn is_digits(w: &str) -> bool {
    !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit())
}

fn fmt_secs(d: Duration) -> String {
    super::show::decimal(d)
}

/// Which statement scalar keys a block has already seen, for "given twice" messages.
#[derive(Default)]
struct Seen(HashMap<&'static str, Location>);

impl<'c> FileParser<'c> {
    // ----- token access -------------------------------------------------------------

    fn peek(&self) -> &Token {
        self.toks
            .get(self.i)
            .or(self.toks.last())
            .unwrap_or(&EOF_TOKEN)
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if self.i + 1 < self.toks.len() {
            self.i += 1;
        }
        t
    }

    fn prev_end(&self) -> Pos {
        match self.i.checked_sub(1).and_then(|j| self.toks.get(j)) {
            Some(t) => t.end,
            None => Pos { line: 1, col: 1 },
        }
    }

    /// Start of the token just consumed, e.g. a block's closing `}`.
    fn prev_start(&self) -> Pos {
        match self.i.checked_sub(1).and_then(|j| self.toks.get(j)) {
            Some(t) => t.start,
            None => Pos { line: 1, col: 1 },
        }
    }

    fn loc(&self, p: Pos) -> Location {
        Location {
            file: self.file.clone(),
            line: p.line,
            column: p.col,
        }
    }

    fn err(&self, p: Pos, msg: impl Into<String>) -> ConfigError {
        self.ctx.located(Some(self.loc(p)), msg.into())
    }

    fn warn(&mut self, p: Pos, msg: impl Into<String>) {
        let w = self.err(p, msg);
        self.ctx.warnings.push(w);
    }

    /// "expected {what}, found {next token}" at the next token.
    fn expected(&self, what: &str) -> ConfigError {
        let t = self.peek();
        self.err(t.start, format!("expected {what}, found {}", t.describe()))
    }

    fn semi(&mut self, after: &str) -> Result<()> {
        if self.peek().is_punct(';') {
            self.bump();
            return Ok(());
        }
        let t = self.peek();
        let at = self.prev_end();
        let mut msg = format!("expected `;` after {after}, found {}", t.describe());
        if t.kind != TokKind::Eof && t.start.line != at.line {
            msg.push_str(&format!(" at {}:{}", t.start.line, t.start.col));
        }
        Err(self.err(at, msg))
    }

    // ----- values -------------------------------------------------------------------

    fn word(&mut self, what: &str) -> Result<Token> {
        if self.peek().kind == TokKind::Word {
            Ok(self.bump())
        } else {
            Err(self.expected(what))
        }
    }

    fn pick<T: Copy>(&mut self, table: &'static [(&'static str, T)], what: &str) -> Result<T> {
        let what = format!(
            "{what} ({})",
            table.iter().map(|(w, _)| *w).collect::<Vec<_>>().join(", ")
        );
        let t = self.word(&what).map_err(|e| self.hint_missing_value(e))?;
        if let Some((_, v)) = table.iter().find(|(w, _)| *w == t.text) {
            return Ok(*v);
        }
        let mut msg = format!("expected {what}, found {}", t.describe());
        if let Some(s) = kw::suggest(&t.text, table.iter().map(|(w, _)| *w)) {
            msg.push_str(&format!("; did you mean `{s}`? (words are case-sensitive)"));
        }
        Err(self.err(t.start, msg))
    }

    /// A `;` where a value belongs usually means the value was left out; say so.
    fn hint_missing_value(&self, mut e: ConfigError) -> ConfigError {
        if self.peek().is_punct(';') {
            e.message.push_str(" (the value is missing)");
        }
        e
    }

    fn boolean(&mut self, what: &str) -> Result<bool> {
        let what =
            format!("{what}: a boolean (enabled, allow, true / disabled, deny, block, false)");
        let t = self.word(&what).map_err(|e| self.hint_missing_value(e))?;
        if let Some((_, v)) = kw::BOOL_WORDS.iter().find(|(w, _)| *w == t.text) {
            return Ok(*v);
        }
        let mut msg = format!("expected {what}, found {}", t.describe());
        let lower = t.text.to_ascii_lowercase();
        if matches!(lower.as_str(), "yes" | "on" | "1") {
            msg.push_str("; write `enabled`");
        } else if matches!(lower.as_str(), "no" | "off" | "0") {
            msg.push_str("; write `disabled`");
        } else if let Some(s) = kw::suggest(&t.text, kw::BOOL_WORDS.iter().map(|(w, _)| *w)) {
            msg.push_str(&format!("; did you mean `{s}`?"));
        }
        Err(self.err(t.start, msg))
    }

    fn number(&mut self, what: &str, min: u64, max: u64) -> Result<u64> {
        let range = format!("from {min} to {max}");
        let t = self
            .word(&format!("{what}: a whole number {range}"))
            .map_err(|e| self.hint_missing_value(e))?;
        if !is_digits(&t.text) {
            return Err(self.err(
                t.start,
                format!(
                    "expected {what}: a whole number {range}, found {}",
                    t.describe()
                ),
            ));
        }
        match t.text.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(self.err(
                t.start,
                format!("expected {what} {range}, found {}", t.text),
            )),
        }
    }

    /// Seconds with an optional fraction: `3`, `1.5`, `.5` (umip insists on `3.0`).
    fn decimal(&mut self, what: &str, min: Duration, max: Duration) -> Result<Duration> {
        let range = format!("from {} to {} seconds", fmt_secs(min), fmt_secs(max));
        let t = self
            .word(&format!("{what} in seconds (such as 1.5)"))
            .map_err(|e| self.hint_missing_value(e))?;
        let bad = || {
            self.err(
                t.start,
                format!(
                    "expected {what} in seconds (such as 1.5), found {}",
                    t.describe()
                ),
            )
        };
        let (int, frac) = match t.text.split_once('.') {
            Some((i, f)) => (i, f),
            None => (t.text.as_str(), ""),
        };
        let int_ok = int.is_empty() || is_digits(int);
        let frac_ok = frac.is_empty() || is_digits(frac);
        if !int_ok || !frac_ok || (int.is_empty() && frac.is_empty()) || t.text.ends_with('.') {
            return Err(bad());
        }
        let out_of_range = || {
            self.err(
                t.start,
                format!("expected {what} {range}, found {}", t.text),
            )
        };
        let secs: u64 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| out_of_range())?
        };
        if frac.len() > 9 {
            return Err(self.err(
                t.start,
                format!(
                    "expected {what} with at most 9 decimals (nanoseconds), found {}",
                    t.text
                ),
            ));
        }
        let nanos: u32 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<9}").parse().map_err(|_| bad())?
        };
        if secs > max.as_secs() {
            return Err(out_of_range());
        }
        let d = Duration::new(secs, nanos);
        if d < min || d > max {
            return Err(out_of_range());
        }
        Ok(d)
    }

    fn address(&mut self, what: &str) -> Result<Ipv6Addr> {
        let what = format!("{what} (an IPv6 address)");
        let t = self.word(&what).map_err(|e| self.hint_missing_value(e))?;
        if let Ok(a) = t.text.parse::<Ipv6Addr>() {
            return Ok(a);
        }
        let why = if t.text.contains('%') {
            ", but zone indexes (`%eth0`) are not allowed here"
        } else if !t.text.contains(':') && t.text.parse::<std::net::Ipv4Addr>().is_ok() {
            ", but mip6d.conf takes IPv6 addresses only"
        } else if t.text.contains(':') {
            ", which is not a valid IPv6 address"
        } else {
            ""
        };
        Err(self.err(
            t.start,
            format!("expected {what}, found {}{why}", t.describe()),
        ))
    }

    fn prefix(&mut self, what: &str) -> Result<Prefix> {
        let addr = self.address(what)?;
        if !self.peek().is_punct('/') {
            let t = self.peek();
            return Err(self.err(
                self.prev_end(),
                format!(
                    "expected `/` and a prefix length after {addr}, found {}",
                    t.describe()
                ),
            ));
        }
        self.bump();
        let len = self.number("a prefix length", 0, 128)?;
        Ok(Prefix {
            addr,
            len: u8::try_from(len).unwrap_or(128),
        })
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let t = self.peek().clone();
        match t.kind {
            TokKind::Str => {
                self.bump();
                Ok(t.text)
            }
            TokKind::Word => Err(self.err(
                t.start,
                format!(
                    "expected {what} in double quotes, found `{}`; write \"{}\"",
                    t.text, t.text
                ),
            )),
            _ => Err(self.hint_missing_value(self.expected(&format!("{what} in double quotes")))),
        }
    }

    /// `( prefix , prefix ... )`
    fn mnp_list(&mut self) -> Result<Vec<Prefix>> {
        self.bump(); // `(`
        let mut out = vec![self.prefix("a mobile network prefix")?];
        loop {
            let t = self.peek();
            if t.is_punct(',') {
                self.bump();
                out.push(self.prefix("a mobile network prefix")?);
            } else if t.is_punct(')') {
                self.bump();
                return Ok(out);
            } else {
                return Err(self.expected("`,` or `)` in the mobile network prefix list"));
            }
        }
    }

    /// `allow`/`deny`/… or a raw BA status.
    fn acl_value(&mut self) -> Result<u8> {
        let t = self.peek().clone();
        if t.kind == TokKind::Word && is_digits(&t.text) {
            let n = self.number("a Binding Acknowledgement status", 0, 255)?;
            return Ok(u8::try_from(n).unwrap_or(u8::MAX));
        }
        if t.kind == TokKind::Word && is_bool_word(&t.text) {
            let accept = self.boolean("an ACL verdict")?;
            return Ok(if accept { 0 } else { STATUS_PROHIBITED });
        }
        Err(self.hint_missing_value(self.expected(
            "an ACL verdict: allow/enabled/true, deny/block/disabled/false, \
             or a Binding Acknowledgement status from 0 to 255",
        )))
    }

    fn interface_name(&mut self) -> Result<(String, Pos)> {
        let at = self.peek().start;
        let name = self.string("an interface name")?;
        // The kernel's own rules (IFNAMSIZ and dev_valid_name), so typos fail here and not
        // at startup.
        if name.is_empty()
            || name.len() > 15
            || name == "."
            || name == ".."
            || name.contains(|c: char| c == '/' || c == ':' || c.is_whitespace())
        {
            return Err(self.err(
                at,
                format!(
                    "expected an interface name of 1 to 15 characters without `/`, `:` or \
                     spaces, found \"{name}\""
                ),
            ));
        }
        Ok((name, at))
    }

    fn once(&self, seen: &mut Seen, key: &'static str, at: Pos, block: &str) -> Result<()> {
        if let Some(first) = seen.0.get(key) {
            return Err(self.err(
                at,
                format!(
                    "expected one `{key}` in {block}, found a second one (the first is at {first})"
                ),
            ));
        }
        seen.0.insert(key, self.loc(at));
        Ok(())
    }

    // ----- statement dispatch -------------------------------------------------------

    /// Explains a word that is not a statement of `scope`: a keyword of another scope, a
    /// reserved word, or a likely typo.
    fn unknown(
        &self,
        scope: Scope,
        expecting: &str,
        t: &Token,
        block: Option<(&str, Pos)>,
    ) -> ConfigError {
        let mut msg = format!("expected {expecting}, found {}", t.describe());
        if t.kind == TokKind::Word {
            let elsewhere: Vec<Scope> = kw::STATEMENTS
                .iter()
                .filter(|d| d.name == t.text && d.scope != scope)
                .map(|d| d.scope)
                .collect();
            if let (Some((name, open)), true) = (block, elsewhere.contains(&Scope::Global)) {
                msg.push_str(&format!(
                    ", a top-level statement: is the `}}` closing the {name} block opened at \
                     {}:{} missing?",
                    open.line, open.col
                ));
            } else if !elsewhere.is_empty() {
                let places: Vec<&str> = elsewhere.iter().map(|s| s.place()).collect();
                msg.push_str(&format!(", which is only valid {}", places.join(" or ")));
            } else if let Some(s) = kw::suggest(&t.text, kw::names_in(scope)) {
                msg.push_str(&format!("; did you mean `{s}`?"));
            }
        }
        self.err(t.start, msg)
    }

    fn top_level(&mut self) -> Result<()> {
        loop {
            let t = self.peek().clone();
            match t.kind {
                TokKind::Eof => return Ok(()),
                TokKind::Word if t.text == kw::INCLUDE => self.include()?,
                TokKind::Word => match kw::lookup(Scope::Global, &t.text) {
                    Some(def) => {
                        self.bump();
                        let at = self.loc(t.start);
                        self.ctx.cfg.origins.statements.insert(def.name, at);
                        self.global(def, &t)?;
                    }
                    None => {
                        return Err(self.unknown(Scope::Global, "a top-level keyword", &t, None))
                    }
                },
                TokKind::Punct(';') if self.prev_is_close_brace() => {
                    return Err(self.err(
                        t.start,
                        "expected a top-level keyword, found `;`: blocks end with `}` and \
                         take no `;` after it",
                    ))
                }
                _ => return Err(self.expected("a top-level keyword")),
            }
        }
    }

    fn prev_is_close_brace(&self) -> bool {
        self.i
            .checked_sub(1)
            .and_then(|j| self.toks.get(j))
            .is_some_and(|t| t.is_punct('}'))
    }

    fn internal(&self, t: &Token) -> ConfigError {
        self.err(
            t.start,
            format!("internal error: `{}` has no handler in this scope", t.text),
        )
    }

    fn global(&mut self, def: &'static StatementDef, t: &Token) -> Result<()> {
        let name = def.name;
        match def.kind {
            Kind::Bool(field) => {
                let v = self.boolean(&format!("a value for {name}"))?;
                self.semi(&format!("`{name}`"))?;
                *field(&mut self.ctx.cfg) = v;
            }
            Kind::Num(field, max) => {
                let v = self.number(&format!("a value for {name}"), 0, u64::from(max))?;
                self.semi(&format!("`{name}`"))?;
                *field(&mut self.ctx.cfg) = u32::try_from(v).unwrap_or(max);
            }
            Kind::Dec(field, max) => {
                let v = self.decimal(&format!("a value for {name}"), Duration::ZERO, max)?;
                self.semi(&format!("`{name}`"))?;
                *field(&mut self.ctx.cfg) = v;
            }
            Kind::Reserved => {
                return Err(self.err(
                    t.start,
                    format!(
                        "expected a top-level keyword, found `{name}`, a word umip reserves \
                         but accepts in no statement"
                    ),
                ))
            }
            Kind::Special(s) => self.global_special(s, t)?,
        }
        Ok(())
    }

    fn global_special(&mut self, s: Special, t: &Token) -> Result<()> {
        match s {
            Special::NodeConfig => {
                let role = self.pick(kw::ROLE_WORDS, "a node role")?;
                self.semi("`NodeConfig`")?;
                self.ctx.cfg.node_config = role;
            }
            Special::DebugLogFile => {
                let f = self.string("a log file name")?;
                self.semi("`DebugLogFile`")?;
                self.ctx.cfg.debug_log_file = Some(f);
            }
            Special::Datapath => {
                let d = self.pick(kw::DATAPATH_WORDS, "a data path")?;
                self.semi("`Datapath`")?;
                self.ctx.cfg.datapath = d;
            }
            Special::UsePolicyModule => {
                self.string("a policy module file name")?;
                self.semi("`UsePolicyModule`")?;
                return Err(self.err(
                    t.start,
                    "expected no UsePolicyModule: mip6d cannot load umip's C policy \
                     modules; remove the statement (see mip6d.conf(5))",
                ));
            }
            Special::UseMovementModule => {
                if self.peek().is_word(kw::MOVEMENT_INTERNAL) {
                    self.bump();
                } else {
                    self.string("`internal` or a module file name")?;
                    self.warn(
                        t.start,
                        "UseMovementModule with a module name is ignored (as umip does); \
                         the built-in movement detection is used",
                    );
                }
                self.semi("`UseMovementModule`")?;
            }
            Special::HaServedPrefix => {
                let p = self.prefix("a served prefix")?;
                self.semi("`HaServedPrefix`")?;
                if !self.ctx.cfg.ha_served_prefixes.contains(&p) {
                    self.ctx.cfg.ha_served_prefixes.push(p);
                }
            }
            Special::BindingAclPolicy => {
                let at = self.peek().start;
                let hoa = self.address("a home address")?;
                let mnps = if self.peek().is_punct('(') {
                    self.mnp_list()?
                } else {
                    Vec::new()
                };
                let status = self.acl_value()?;
                self.semi("`BindingAclPolicy`")?;
                if let Some(first) = self.ctx.acl_seen.get(&hoa) {
                    return Err(self.err(
                        at,
                        format!(
                            "expected one BindingAclPolicy per home address, found a second \
                             one for {hoa} (the first is at {first})"
                        ),
                    ));
                }
                let l = self.loc(at);
                self.ctx.acl_seen.insert(hoa, l);
                self.ctx.cfg.binding_acl.push(BindingAcl {
                    home_address: hoa,
                    mobile_network_prefixes: mnps,
                    status,
                });
            }
            Special::DefaultBindingAclPolicy => {
                let v = self.acl_value()?;
                self.semi("`DefaultBindingAclPolicy`")?;
                self.ctx.cfg.default_binding_acl_status = v;
            }
            Special::Interface => self.interface(t)?,
            Special::MnHomeLink => self.home_link(t)?,
            Special::IpsecPolicySet => self.ipsec_policy_set(t)?,
            Special::CnBindingPolicySet => self.cn_binding_policy_set(t)?,
            Special::DistributedServer => self.distributed_server(t)?,
            _ => return Err(self.internal(t)),
        }
        Ok(())
    }

    /// Runs `entry` for each statement of a `{ … }` block until its `}`; `entry` gets the
    /// statement's definition and keyword token. Refuses `{ }`, as umip does.
    fn block(
        &mut self,
        scope: Scope,
        name: &str,
        expecting: &str,
        mut entry: impl FnMut(&mut Self, &'static StatementDef, &Token) -> Result<()>,
    ) -> Result<()> {
        let open = self.peek().start;
        if !self.peek().is_punct('{') {
            return Err(self.expected(&format!("`{{` to open the {name} block")));
        }
        self.bump();
        let mut count = 0usize;
        loop {
            let t = self.peek().clone();
            match t.kind {
                TokKind::Punct('}') if count == 0 => {
                    return Err(self.err(
                        t.start,
                        format!("expected at least one entry in the {name} block, found `}}`"),
                    ))
                }
                TokKind::Punct('}') => {
                    self.bump();
                    return Ok(());
                }
                TokKind::Eof => {
                    return Err(self.err(
                        open,
                        format!(
                            "expected `}}` to close the {name} block opened here, found end of file"
                        ),
                    ))
                }
                TokKind::Word if t.text == kw::INCLUDE => {
                    return Err(self.err(
                        t.start,
                        format!(
                        "expected {expecting}, found `include`, which is only allowed at top level"
                    ),
                    ))
                }
                TokKind::Word => match kw::lookup(scope, &t.text) {
                    Some(def) => {
                        self.bump();
                        entry(self, def, &t)?;
                        count += 1;
                    }
                    None => return Err(self.unknown(scope, expecting, &t, Some((name, open)))),
                },
                _ => return Err(self.expected(expecting)),
            }
        }
    }

    fn expecting(scope: Scope) -> String {
        let names: Vec<String> = kw::names_in(scope).map(|n| format!("`{n}`")).collect();
        format!("{} or `}}`", names.join(", "))
    }

    // ----- Interface ----------------------------------------------------------------

    fn interface(&mut self, kw_tok: &Token) -> Result<()> {
        let (name, at) = self.interface_name()?;
        let mut iface = InterfaceConfig::new(name.clone());
        if self.peek().is_punct(';') {
            self.bump();
        } else if self.peek().is_punct('{') {
            let title = format!("Interface \"{name}\"");
            let expecting = Self::expecting(Scope::Interface);
            self.block(Scope::Interface, &title, &expecting, |p, def, t| {
                match def.kind {
                    Kind::Special(Special::IfType) => {
                        iface.if_type = Some(p.pick(kw::ROLE_WORDS, "an interface role")?);
                    }
                    Kind::Special(Special::MnIfPreference) => {
                        let v = p.number("an interface preference", 0, 10)?;
                        iface.preference = u8::try_from(v).unwrap_or(10);
                    }
                    Kind::Special(Special::Tunnel) => {
                        iface.tunnel = p.boolean("a value for Tunnel")?;
                    }
                    _ => return Err(p.internal(t)),
                }
                p.semi(&format!("`{}`", def.name))
            })?;
        } else {
            return Err(self.expected(&format!("`;` or `{{` after Interface \"{name}\"")));
        }
        if let Some(first) = self.ctx.iface_seen.get(&name) {
            return Err(self.err(
                at,
                format!("expected each interface once, found \"{name}\" again (first at {first})"),
            ));
        }
        let l = self.loc(kw_tok.start);
        self.ctx.iface_seen.insert(name, l.clone());
        self.ctx.cfg.origins.interfaces.push(l);
        self.ctx.cfg.interfaces.push(iface);
        Ok(())
    }

    // ----- MnHomeLink ---------------------------------------------------------------

    fn home_link(&mut self, kw_tok: &Token) -> Result<()> {
        let (name, _) = self.interface_name()?;
        let title = format!("MnHomeLink \"{name}\"");
        let expecting = Self::expecting(Scope::MnHomeLink);
        let mut hoa: Option<(Prefix, Pos)> = None;
        let mut mnps = Vec::new();
        let mut ha: Option<Ipv6Addr> = None;
        let mut is_mob_rtr = false;
        let mut ro = Vec::new();
        let mut home_prefix: Option<(Prefix, Pos)> = None;
        self.block(Scope::MnHomeLink, &title, &expecting, |p, def, t| {
            match def.kind {
                Kind::Special(Special::LinkHomeAgentAddress) => {
                    ha = Some(p.address("a home agent address")?);
                }
                Kind::Special(Special::LinkHomeAddress) => {
                    let at = p.peek().start;
                    // umip: the last address wins and prefix lists add up.
                    hoa = Some((p.prefix("a home address")?, at));
                    if p.peek().is_punct('(') {
                        mnps.extend(p.mnp_list()?);
                    }
                }
                Kind::Special(Special::IsMobRtr) => {
                    is_mob_rtr = p.boolean("a value for IsMobRtr")?;
                }
                Kind::Special(Special::MnRoPolicy) => {
                    let t2 = p.peek();
                    let correspondent = if t2.kind == TokKind::Word && is_bool_word(&t2.text) {
                        None
                    } else {
                        Some(p.address("a correspondent address or a boolean")?)
                    };
                    let enabled = p.boolean("a value for MnRoPolicy")?;
                    ro.push(RoPolicy {
                        correspondent,
                        enabled,
                    });
                }
                Kind::Special(Special::HomePrefix) => {
                    let at = p.peek().start;
                    home_prefix = Some((p.prefix("a home prefix")?, at));
                }
                Kind::Special(Special::UseAltCoa) => {
                    p.boolean("a value for UseAltCoa")?;
                    p.warn(
                        t.start,
                        "UseAltCoa is ignored (as umip does): home registrations always carry \
                         an Alternate Care-of Address option",
                    );
                }
                _ => return Err(p.internal(t)),
            }
            p.semi(&format!("`{}`", def.name))
        })?;
        let close = self.prev_start();
        let Some((home_address, hoa_at)) = hoa else {
            return Err(self.err(
                close,
                format!("expected `HomeAddress <address>/<length>;` in {title}, found its closing `}}` without one"),
            ));
        };
        // Absent, as `::`: the home agent is found with DHAAD (as in umip).
        let home_agent_address = ha.unwrap_or(Ipv6Addr::UNSPECIFIED);
        if let Some((hp, at)) = home_prefix {
            if !hp.contains(home_address.addr) {
                return Err(self.err(
                    at,
                    format!(
                        "expected a HomePrefix that contains the home address {}, found {hp}",
                        home_address.addr
                    ),
                ));
            }
        }
        if let Some(first) = self.ctx.hoa_seen.get(&home_address.addr) {
            return Err(self.err(
                hoa_at,
                format!(
                    "expected each home address in one MnHomeLink, found {} again (first at {first})",
                    home_address.addr
                ),
            ));
        }
        let l = self.loc(kw_tok.start);
        self.ctx
            .hoa_seen
            .insert(home_address.addr, self.loc(hoa_at));
        self.ctx.cfg.origins.home_links.push(l);
        self.ctx.cfg.home_links.push(HomeLink {
            interface: name,
            home_address,
            mobile_network_prefixes: mnps,
            home_agent_address,
            is_mob_rtr,
            ro_policies: ro,
            home_prefix: home_prefix.map(|(p, _)| p),
        });
        Ok(())
    }

    // ----- IPsecPolicySet -----------------------------------------------------------

    fn ipsec_policy_set(&mut self, kw_tok: &Token) -> Result<()> {
        // umip's grammar fixes the order: one HomeAgentAddress, then HomeAddress lines, then
        // IPsecPolicy lines. `stage` counts how far we are.
        let mut stage = 0u8;
        let mut ha = Ipv6Addr::UNSPECIFIED;
        let mut hoas: Vec<Prefix> = Vec::new();
        let mut policies = Vec::new();
        let title = "IPsecPolicySet";
        let order = |stage: u8| match stage {
            0 => "`HomeAgentAddress` (the first entry of an IPsecPolicySet)",
            1 => "`HomeAddress` (at least one, after HomeAgentAddress)",
            2 => "`HomeAddress` or `IPsecPolicy`",
            _ => "`IPsecPolicy` or `}`",
        };
        let expecting =
            "an IPsecPolicySet entry (`HomeAgentAddress`, `HomeAddress`, `IPsecPolicy`) or `}`";
        let open = self.peek().start;
        self.block(Scope::IpsecPolicySet, title, expecting, |p, def, t| {
            let allowed = match def.kind {
                Kind::Special(Special::SetHomeAgentAddress) => stage == 0,
                Kind::Special(Special::SetHomeAddress) => stage == 1 || stage == 2,
                Kind::Special(Special::IpsecPolicy) => stage >= 2,
                _ => return Err(p.internal(t)),
            };
            if !allowed {
                return Err(p.err(
                    t.start,
                    format!("expected {}, found `{}`", order(stage), t.text),
                ));
            }
            match def.kind {
                Kind::Special(Special::SetHomeAgentAddress) => {
                    ha = p.address("a home agent address")?;
                    stage = 1;
                }
                Kind::Special(Special::SetHomeAddress) => {
                    hoas.push(p.prefix("a home address")?);
                    stage = 2;
                }
                _ => {
                    let pol = p.ipsec_policy()?;
                    let at = p.loc(t.start);
                    for hoa in &hoas {
                        p.check_overlap(ha, hoa.addr, pol.policy_type, &at)?;
                        p.ctx
                            .ipsec_seen
                            .push((ha, hoa.addr, pol.policy_type, at.clone()));
                    }
                    policies.push(pol);
                    stage = 3;
                }
            }
            p.semi(&format!("`{}`", def.name))
        })?;
        if stage < 3 {
            let close = self.prev_start();
            return Err(self.err(
                close,
                format!(
                    "expected {} before the `}}` of the IPsecPolicySet opened at {}:{}",
                    order(stage),
                    open.line,
                    open.col
                ),
            ));
        }
        self.ctx
            .cfg
            .origins
            .ipsec_policy_sets
            .push(self.loc(kw_tok.start));
        self.ctx.cfg.ipsec_policy_sets.push(IpsecPolicySet {
            home_agent_address: ha,
            home_addresses: hoas,
            policies,
        });
        Ok(())
    }

    fn ipsec_policy(&mut self) -> Result<IpsecPolicy> {
        let policy_type = self.pick(kw::IPSEC_TYPE_WORDS, "an IPsec policy type")?;
        let mut protocols = 0;
        while let Some((w, supported)) = kw::IPSEC_PROTO_WORDS
            .iter()
            .find(|(w, _)| self.peek().is_word(w))
        {
            let t = self.bump();
            if !supported {
                return Err(self.err(
                    t.start,
                    format!("expected `UseESP`, found `{w}`: only ESP is supported, as in umip"),
                ));
            }
            protocols += 1;
        }
        if protocols == 0 {
            return Err(self.expected("an IPsec protocol (`UseESP`)"));
        }
        let mut reqids = Vec::new();
        while reqids.len() < 2 && self.peek().kind == TokKind::Word && is_digits(&self.peek().text)
        {
            let r = self.number("a request id", 0, u64::from(u32::MAX))?;
            reqids.push(u32::try_from(r).unwrap_or(u32::MAX));
        }
        let (reqid_to_ha, reqid_to_mn) = match reqids.as_slice() {
            [] => (0, 0),
            [both] => (*both, *both),
            [to_ha, to_mn, ..] => (*to_ha, *to_mn),
        };
        let action = if self.peek().kind == TokKind::Word && is_bool_word(&self.peek().text) {
            if self.boolean("an IPsec action")? {
                PolicyAction::Allow
            } else {
                PolicyAction::Block
            }
        } else {
            PolicyAction::Allow
        };
        Ok(IpsecPolicy {
            policy_type,
            reqid_to_ha,
            reqid_to_mn,
            action,
        })
    }

    fn check_overlap(
        &self,
        ha: Ipv6Addr,
        hoa: Ipv6Addr,
        ty: IpsecPolicyType,
        at: &Location,
    ) -> Result<()> {
        use IpsecPolicyType as T;
        let contains = |a: T, b: T| {
            a == b
                || matches!(
                    (a, b),
                    (T::Mh, T::HomeRegBinding)
                        | (T::Icmp, T::MobPfxDisc)
                        | (T::TunnelMh, T::TunnelHomeTesting)
                )
        };
        for (h, m, other, first) in &self.ctx.ipsec_seen {
            if *h == ha && *m == hoa && (contains(ty, *other) || contains(*other, ty)) {
                let name = |t: T| kw::word_for(kw::IPSEC_TYPE_WORDS, t);
                return Err(self.ctx.located(
                    Some(at.clone()),
                    format!(
                        "expected IPsec policies that do not overlap for home agent {ha} and \
                         home address {hoa}, found `{}` overlapping `{}` at {first}",
                        name(ty),
                        name(*other)
                    ),
                ));
            }
        }
        Ok(())
    }

    // ----- CnBindingPolicySet -------------------------------------------------------

    fn cn_binding_policy_set(&mut self, _kw_tok: &Token) -> Result<()> {
        let open = self.peek().start;
        if !self.peek().is_punct('{') {
            return Err(self.expected("`{` to open the CnBindingPolicySet block"));
        }
        self.bump();
        let mut count = 0;
        loop {
            let t = self.peek().clone();
            match t.kind {
                TokKind::Punct('}') if count > 0 => {
                    self.bump();
                    return Ok(());
                }
                TokKind::Eof => {
                    return Err(self.err(
                        open,
                        "expected `}` to close the CnBindingPolicySet block opened here, found end of file",
                    ))
                }
                TokKind::Word if t.text.contains(':') || t.text.contains('.') => {
                    let peer = self.address("a peer home address")?;
                    let next = self.peek();
                    let local = if next.kind == TokKind::Word && next.text.contains(':') {
                        Some(self.address("a local address")?)
                    } else {
                        None
                    };
                    let accept = self.boolean("a binding policy")?;
                    self.semi("a CnBindingPolicySet entry")?;
                    if let Some(first) = self.ctx.cn_seen.get(&(peer, local)) {
                        return Err(self.err(
                            t.start,
                            format!(
                                "expected one CnBindingPolicySet entry per peer (and local \
                                 address), found a second one for {peer} (the first is at {first})"
                            ),
                        ));
                    }
                    let l = self.loc(t.start);
                    self.ctx.cn_seen.insert((peer, local), l);
                    self.ctx.cfg.cn_binding_policies.push(CnBindingPolicy { peer, local, accept });
                    count += 1;
                }
                TokKind::Word if kw::lookup(Scope::Global, &t.text).is_some() => {
                    return Err(self.unknown(
                        Scope::Global,
                        "a CnBindingPolicySet entry `<peer address> [<local address>] <boolean>;`",
                        &t,
                        Some(("CnBindingPolicySet", open)),
                    ))
                }
                _ if count == 0 && t.is_punct('}') => {
                    return Err(self.err(
                        t.start,
                        "expected at least one entry in the CnBindingPolicySet block, found `}`",
                    ))
                }
                _ => {
                    return Err(self.expected(
                        "a CnBindingPolicySet entry `<peer address> [<local address>] <boolean>;` or `}`",
                    ))
                }
            }
        }
    }

    // ----- DistributedServer --------------------------------------------------------

    fn distributed_server(&mut self, kw_tok: &Token) -> Result<()> {
        let name_at = self.peek().start;
        let name = self.string("a distributed server name")?;
        if name.is_empty() {
            return Err(self.err(
                name_at,
                "expected a non-empty distributed server name, found \"\"",
            ));
        }
        let title = format!("DistributedServer \"{name}\"");
        let expecting = Self::expecting(Scope::DistributedServer);
        let mut seen = Seen::default();
        let mut address = None;
        let mut ha = None;
        let mut role = None;
        let mut node_id = None;
        let mut local_address = None;
        let mut peers: Vec<(DsPeer, Pos)> = Vec::new();
        let mut key_file = None;
        let mut heartbeat = DistributedServer::DEFAULT_HEARTBEAT;
        let mut failure = DistributedServer::DEFAULT_FAILURE_TIMEOUT;
        let mut failure_at = None;
        let mut drain = HandoffDrain::default();
        let mut port = DistributedServer::DEFAULT_CONTROL_PORT;
        let mut state_file = None;
        let mut contact_interface = None;
        self.block(Scope::DistributedServer, &title, &expecting, |p, def, t| {
            let Kind::Special(s) = def.kind else {
                return Err(p.internal(t));
            };
            if s != Special::DsPeers {
                p.once(&mut seen, def.name, t.start, &title)?;
            }
            match s {
                Special::DsAddress => address = Some(p.address("the distributed server address")?),
                Special::DsHomeAgentAddress => ha = Some(p.address("a home agent address")?),
                Special::DsRole => role = Some(p.pick(kw::DS_ROLE_WORDS, "a server role")?),
                Special::DsNodeId => {
                    let v = p.number("a node id", 0, u64::from(u32::MAX))?;
                    node_id = Some((u32::try_from(v).unwrap_or(u32::MAX), t.start));
                }
                Special::DsLocalAddress => local_address = Some(p.address("a local address")?),
                Special::DsSharedKeyFile => key_file = Some(p.string("a key file name")?),
                Special::DsStateFile => {
                    let at = p.peek().start;
                    let f = p.string("a state file name")?;
                    if f.is_empty() {
                        return Err(p.err(at, "expected a state file name, found \"\""));
                    }
                    state_file = Some(f);
                }
                Special::DsContactInterface => {
                    let at = p.peek().start;
                    let f = p.string("an interface name")?;
                    if f.is_empty() {
                        return Err(p.err(at, "expected an interface name, found \"\""));
                    }
                    contact_interface = Some(f);
                }
                Special::DsHeartbeatInterval => {
                    heartbeat = p.decimal(
                        "a heartbeat interval",
                        Duration::from_millis(1),
                        Duration::from_secs(60),
                    )?;
                }
                Special::DsFailureTimeout => {
                    failure_at = Some(p.peek().start);
                    failure = p.decimal(
                        "a failure timeout",
                        Duration::from_millis(1),
                        Duration::from_secs(3600),
                    )?;
                }
                Special::DsHandoffDrain => drain = p.pick(kw::DRAIN_WORDS, "a drain mode")?,
                Special::DsControlPort => {
                    let v = p.number("a control port", 1, 65535)?;
                    port = u16::try_from(v).unwrap_or(u16::MAX);
                }
                Special::DsPeers => {
                    let expecting = Self::expecting(Scope::Peers);
                    return p.block(Scope::Peers, "Peers", &expecting, |p, def, t| {
                        if !matches!(def.kind, Kind::Special(Special::Peer)) {
                            return Err(p.internal(t));
                        }
                        let v = p.number("a peer node id", 0, u64::from(u32::MAX))?;
                        let address = p.address("the peer's address")?;
                        let role = p.pick(kw::DS_ROLE_WORDS, "the peer's role")?;
                        peers.push((
                            DsPeer {
                                node_id: u32::try_from(v).unwrap_or(u32::MAX),
                                address,
                                role,
                            },
                            t.start,
                        ));
                        p.semi("`Peer`")
                    });
                }
                _ => return Err(p.internal(t)),
            }
            p.semi(&format!("`{}`", def.name))
        })?;
        let close = self.prev_start();
        let missing = |what: &str| {
            self.err(
                close,
                format!("expected `{what}` in {title}, found its closing `}}` without one"),
            )
        };
        let address = address.ok_or_else(|| missing("Address <distributed server address>;"))?;
        let ha = ha.ok_or_else(|| missing("HomeAgentAddress <address>;"))?;
        let role = role.ok_or_else(|| missing("Role contact|backup|snode;"))?;
        let (node_id, id_at) = node_id.ok_or_else(|| missing("NodeId <number>;"))?;
        let key_file = key_file.ok_or_else(|| missing("SharedKeyFile \"<path>\";"))?;
        let ds = DistributedServer {
            name: name.clone(),
            address,
            home_agent_address: ha,
            role,
            node_id,
            local_address,
            peers: peers.iter().map(|(p, _)| *p).collect(),
            shared_key_file: key_file,
            heartbeat_interval: heartbeat,
            failure_timeout: failure,
            handoff_drain: drain,
            control_port: port,
            state_file,
            contact_interface,
        };
        self.ds_sanity(&ds, &title, &peers, id_at, failure_at.unwrap_or(close))?;
        if let Some(first) = self.ctx.ds_names.get(&name) {
            return Err(self.err(
                name_at,
                format!("expected each DistributedServer name once, found \"{name}\" again (first at {first})"),
            ));
        }
        if let Some(first) = self.ctx.ds_addresses.get(&address) {
            return Err(self.err(
                name_at,
                format!("expected each distributed server address once, found {address} again (first at {first})"),
            ));
        }
        let l = self.loc(kw_tok.start);
        self.ctx.ds_names.insert(name, l.clone());
        self.ctx.ds_addresses.insert(address, l.clone());
        self.ctx.cfg.origins.distributed_servers.push(l);
        self.ctx.cfg.distributed_servers.push(ds);
        Ok(())
    }

    fn ds_sanity(
        &self,
        ds: &DistributedServer,
        title: &str,
        peers: &[(DsPeer, Pos)],
        id_at: Pos,
        failure_at: Pos,
    ) -> Result<()> {
        if ds.failure_timeout <= ds.heartbeat_interval {
            return Err(self.err(
                failure_at,
                format!(
                    "expected a FailureTimeout longer than the HeartbeatInterval ({} s) in {title}, found {} s",
                    fmt_secs(ds.heartbeat_interval),
                    fmt_secs(ds.failure_timeout)
                ),
            ));
        }
        for (what, a) in [
            ("distributed server address", ds.address),
            ("home agent address", ds.home_agent_address),
        ] {
            if a.is_unspecified() || a.is_multicast() || a.is_loopback() {
                return Err(self.err(
                    id_at,
                    format!("expected a unicast {what} in {title}, found {a}"),
                ));
            }
        }
        if ds.role == DsRole::Snode && ds.contact_interface.is_some() {
            return Err(self.err(
                id_at,
                format!("expected no ContactInterface for Role snode in {title}: an snode never becomes the contact"),
            ));
        }
        if ds.address == ds.home_agent_address {
            return Err(self.err(
                id_at,
                format!(
                    "expected different Address and HomeAgentAddress in {title}, found {} for both",
                    ds.address
                ),
            ));
        }
        let mut ids: Vec<(u32, Pos)> = vec![(ds.node_id, id_at)];
        let mut addrs: Vec<(Ipv6Addr, Pos)> =
            ds.local_address.map(|a| (a, id_at)).into_iter().collect();
        for (peer, at) in peers {
            if let Some((_, first)) = ids.iter().find(|(id, _)| *id == peer.node_id) {
                return Err(self.err(
                    *at,
                    format!(
                        "expected node ids that are unique in {title}, found {} again (first at {}:{})",
                        peer.node_id, first.line, first.col
                    ),
                ));
            }
            ids.push((peer.node_id, *at));
            if peer.address == ds.address || peer.address == ds.home_agent_address {
                return Err(self.err(
                    *at,
                    format!(
                        "expected a peer's own unicast address in {title}, found {}, which is the \
                         distributed server or home agent address",
                        peer.address
                    ),
                ));
            }
            if let Some((_, first)) = addrs.iter().find(|(a, _)| *a == peer.address) {
                return Err(self.err(
                    *at,
                    format!(
                        "expected peer addresses that are unique in {title}, found {} again (first at {}:{})",
                        peer.address, first.line, first.col
                    ),
                ));
            }
            addrs.push((peer.address, *at));
        }
        let members = std::iter::once((ds.node_id, ds.role, id_at))
            .chain(peers.iter().map(|(p, at)| (p.node_id, p.role, *at)));
        let contacts: Vec<(u32, Pos)> = members
            .clone()
            .filter(|(_, r, _)| *r == DsRole::Contact)
            .map(|(id, _, at)| (id, at))
            .collect();
        match contacts.as_slice() {
            [] => {
                return Err(self.err(
                    id_at,
                    format!("expected exactly one contact node (this node or a Peer) in {title}, found none"),
                ))
            }
            [(contact_id, contact_at)] => {
                // Backups take over in node id order, so a contact that does not have the
                // lowest id would be deposed by the first election.
                if let Some((id, _, _)) = members
                    .filter(|(_, r, _)| *r == DsRole::Backup)
                    .find(|(id, _, _)| id < contact_id)
                {
                    return Err(self.err(
                        *contact_at,
                        format!(
                            "expected the contact node to have the lowest node id among contact \
                             and backup nodes in {title}, found backup {id} below contact {contact_id}"
                        ),
                    ));
                }
            }
            [_, (_, second), ..] => {
                return Err(self.err(
                    *second,
                    format!("expected exactly one contact node in {title}, found a second one"),
                ))
            }
        }
        Ok(())
    }

    // ----- include ------------------------------------------------------------------

    fn include(&mut self) -> Result<()> {
        let t = self.bump();
        let pattern = self.string("a file name or glob pattern after `include`")?;
        // umip forbids the `;`; accepting it costs nothing and matches every other statement.
        if self.peek().is_punct(';') {
            self.bump();
        }
        if !self.ctx.opts.includes {
            return Err(self.err(t.start, "expected no `include` here: includes are disabled"));
        }
        if self.ctx.chain.len() >= MAX_INCLUDE_DEPTH {
            return Err(self.err(
                t.start,
                format!("expected includes nested at most {MAX_INCLUDE_DEPTH} deep, found deeper nesting"),
            ));
        }
        let pat = Path::new(&pattern);
        let mut bases: Vec<PathBuf> = Vec::new();
        if pat.is_absolute() {
            bases.push(pat.to_path_buf());
        } else {
            if let Some(d) = &self.dir {
                bases.push(d.join(pat));
            }
            bases.push(pat.to_path_buf());
        }
        bases.dedup();
        let magic = glob::has_magic(&pattern);
        let matches = bases
            .iter()
            .map(|b| glob::expand(b))
            .find(|m| !m.is_empty())
            .unwrap_or_default();
        if matches.is_empty() {
            let looked: Vec<String> = bases.iter().map(|b| b.display().to_string()).collect();
            let msg = format!(
                "include \"{pattern}\" matched no file (looked for {})",
                looked.join(" and ")
            );
            if magic {
                self.warn(t.start, msg);
                return Ok(());
            }
            return Err(self.err(
                t.start,
                format!("expected an existing file after `include`, found \"{pattern}\": no such file (looked for {})", looked.join(" and ")),
            ));
        }
        for m in matches {
            let canonical = std::fs::canonicalize(&m).unwrap_or_else(|_| m.clone());
            if let Some(i) = self.ctx.open_files.iter().position(|f| *f == canonical) {
                let cycle: Vec<String> = self.ctx.open_files[i..]
                    .iter()
                    .chain(std::iter::once(&canonical))
                    .map(|p| p.display().to_string())
                    .collect();
                return Err(self.err(
                    t.start,
                    format!(
                        "expected includes without loops, found an include loop: {}",
                        cycle.join(" -> ")
                    ),
                ));
            }
            let at = self.loc(t.start);
            self.ctx.chain.push(at);
            let r = parse_one_file(self.ctx, &m);
            self.ctx.chain.pop();
            r?;
        }
        Ok(())
    }
}
