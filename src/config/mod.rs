//! `mip6d.conf`: umip 1.0's configuration language, plus our Distributed Servers block.
//!
//! [`parse_file`] and [`parse_str`] turn text into a typed [`Config`] with umip's defaults
//! filled in; [`Config::check`] adds the cross-checks that depend on the role (which the
//! command line may still change after parsing); `Display` for [`Config`] prints the
//! effective configuration in the same language (`mip6d --show-config`).
//! The language is documented in mip6d.conf(5).

mod glob;
pub mod keywords;
mod lexer;
pub mod model;
mod parser;
mod show;
mod validate;

pub use validate::CheckReport;

use std::fmt;
use std::path::Path;

pub use model::*;

/// A problem with a configuration, located at `file:line:column` when it has a place.
///
/// The same type carries warnings (see [`Parsed::warnings`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub location: Option<Location>,
    /// "expected …, found …", without the location.
    pub message: String,
    /// The `include` statements that led to the file, innermost first.
    pub included_from: Vec<Location>,
}

impl ConfigError {
    pub(crate) fn new(location: Option<Location>, message: impl Into<String>) -> Self {
        ConfigError {
            location,
            message: message.into(),
            included_from: Vec::new(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(l) = &self.location {
            write!(f, "{l}: ")?;
        }
        f.write_str(&self.message)?;
        for l in &self.included_from {
            write!(f, "\n{l}: note: included from here")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// How to parse.
#[derive(Debug, Clone)]
pub struct ParseOptions {
    /// Follow `include` directives. Fuzzing turns this off so that input cannot reach the
    /// file system.
    pub includes: bool,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions { includes: true }
    }
}

/// A configuration and the warnings met while parsing it.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub config: Config,
    pub warnings: Vec<ConfigError>,
}

/// Parses the file at `path` (and whatever it includes).
pub fn parse_file(path: &Path) -> Result<Config, ConfigError> {
    parse_file_with(path, &ParseOptions::default()).map(|p| p.config)
}

/// Parses `text` as if it were a file called `name`. Relative `include`s resolve against
/// the current directory, as umip's do.
pub fn parse_str(text: &str, name: &str) -> Result<Config, ConfigError> {
    parse_str_with(text, name, &ParseOptions::default()).map(|p| p.config)
}

pub fn parse_file_with(path: &Path, opts: &ParseOptions) -> Result<Parsed, ConfigError> {
    parser::parse_file(path, opts)
}

pub fn parse_str_with(text: &str, name: &str, opts: &ParseOptions) -> Result<Parsed, ConfigError> {
    parser::parse_str(text, name, opts)
}

/// Entry point for fuzzers: any bytes must either fail cleanly or give a configuration
/// whose `--show-config` output parses back to the same configuration. Panics only when
/// that property is broken, which is what a fuzzer should report.
pub fn fuzz_one(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let opts = ParseOptions { includes: false };
    let Ok(first) = parse_str_with(&text, "fuzz.conf", &opts) else {
        return;
    };
    let _ = first.config.check();
    let shown = first.config.to_string();
    match parse_str_with(&shown, "shown.conf", &opts) {
        Ok(again) => assert_eq!(first.config, again.config, "show/parse changed:\n{shown}"),
        Err(e) => panic!("--show-config output does not parse: {e}\n{shown}"),
    }
}
