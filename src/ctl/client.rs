//! `mip6ctl status | bc | bul | stats | members`: ask a running mip6d over its control socket and
//! print the answer as a table, or as the daemon's JSON with `--json`.
//!
//! The tables are drawn from the JSON alone, so mip6ctl shows exactly what the daemon
//! said: an empty binding cache is a header and no rows.

use crate::daemon::control::{self, Command};
use serde_json::Value;
use std::io::{self, ErrorKind};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const DEFAULT_SOCKET: &str = "/run/mip6d.sock";
const TIMEOUT: Duration = Duration::from_secs(5);
/// Largest answer we read: a binding cache of many thousands of entries still fits.
const MAX_ANSWER: u64 = 64 << 20;

/// Sends `cmd` and returns the daemon's `data`, or a message for the operator.
pub fn query(socket: &Path, cmd: Command) -> Result<Value, String> {
    query_with(socket, cmd, serde_json::json!({}))
}

/// As [`query`], with the request's arguments (an object).
pub fn query_with(socket: &Path, cmd: Command, args: Value) -> Result<Value, String> {
    let shown = socket.display();
    let stream = UnixStream::connect(socket).map_err(|e| match e.kind() {
        ErrorKind::NotFound => format!("mip6d is not running (no socket at {shown})"),
        ErrorKind::ConnectionRefused => {
            format!("mip6d is not running ({shown} is left over from an earlier run)")
        }
        ErrorKind::PermissionDenied => format!(
            "cannot connect to {shown}: permission denied (the control socket is for its \
             owner only, normally root)"
        ),
        _ => format!("cannot connect to {shown}: {e}"),
    })?;
    let set = |r: io::Result<()>| r.map_err(|e| format!("{shown}: {e}"));
    set(stream.set_read_timeout(Some(TIMEOUT)))?;
    set(stream.set_write_timeout(Some(TIMEOUT)))?;
    let answer = control::request_blocking_with(&stream, cmd, args, MAX_ANSWER).map_err(|e| {
        if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) {
            format!(
                "mip6d did not answer on {shown} within {} s",
                TIMEOUT.as_secs()
            )
        } else {
            format!("{shown}: {e}")
        }
    })?;
    if answer["ok"].as_bool() == Some(true) {
        Ok(answer["data"].clone())
    } else {
        Err(format!(
            "mip6d refused the request: {}",
            answer["error"].as_str().unwrap_or("no reason given")
        ))
    }
}

/// A JSON value as a table cell: strings without quotes, null as "-".
fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Left-aligned columns separated by two spaces; no trailing blanks.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, c) in cells.enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            l.push_str(c);
            l.extend(std::iter::repeat(' ').take(widths[i].saturating_sub(c.chars().count())));
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied());
    for r in rows {
        line(&mut r.iter().map(String::as_str));
    }
    out
}

const BC_COLUMNS: [(&str, &str); 6] = [
    ("HOME ADDRESS", "home_address"),
    ("CARE-OF ADDRESS", "care_of_address"),
    ("LIFETIME", "lifetime"),
    ("SEQ", "sequence"),
    ("FLAGS", "flags"),
    ("KIND", "kind"),
];

const BUL_COLUMNS: [(&str, &str); 7] = [
    ("PEER", "peer"),
    ("HOME ADDRESS", "home_address"),
    ("CARE-OF ADDRESS", "care_of_address"),
    ("LIFETIME", "lifetime"),
    ("SEQ", "sequence"),
    ("FLAGS", "flags"),
    ("STATE", "state"),
];

fn entries_table(data: &Value, columns: &[(&str, &str)]) -> String {
    let headers: Vec<&str> = columns.iter().map(|(h, _)| *h).collect();
    let rows: Vec<Vec<String>> = data["entries"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|e| columns.iter().map(|(_, k)| cell(&e[*k])).collect())
        .collect();
    table(&headers, &rows)
}

fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m {s}s"),
        _ => format!("{d}d {h}h {m}m {s}s"),
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(cell).collect())
        .unwrap_or_default()
}

fn render_status(d: &Value) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut rows: Vec<(&str, String)> = vec![
        ("version", cell(&d["version"])),
        ("pid", cell(&d["pid"])),
        ("role", cell(&d["role"])),
        ("uptime", duration(d["uptime"].as_u64().unwrap_or(0))),
        ("config file", {
            let mut s = cell(&d["config_file"]);
            if d["config_file_found"] == Value::Bool(false) {
                s.push_str(" (not found: built-in defaults)");
            }
            s
        }),
        ("datapath", format!("{} (configured)", cell(&d["datapath"]))),
        ("debug level", cell(&d["debug_level"])),
        ("control socket", cell(&d["control_socket"])),
        ("pid file", cell(&d["pid_file"])),
        ("reloads", cell(&d["reloads"])),
    ];
    let last = &d["last_reload"];
    if last.is_object() {
        let ago = now.saturating_sub(last["at"].as_u64().unwrap_or(now));
        let what = if last["ok"] == Value::Bool(true) {
            let applied = strings(&last["applied"]);
            if applied.is_empty() {
                "ok, nothing changed".to_string()
            } else {
                format!("ok, applied {}", applied.join(", "))
            }
        } else {
            "FAILED, running the previous configuration".to_string()
        };
        rows.push(("last reload", format!("{} ago: {what}", duration(ago))));
        if let Some(e) = last["error"].as_str() {
            for l in e.lines() {
                rows.push(("  error", l.to_string()));
            }
        }
        for w in strings(&last["warnings"]) {
            rows.push(("  warning", w));
        }
    }
    for r in strings(&d["restart_needed"]) {
        rows.push(("restart needed", r));
    }
    let machines = strings(&d["machines"]);
    rows.push((
        "protocols",
        if machines.is_empty() {
            "none running".to_string()
        } else {
            machines.join(", ")
        },
    ));
    let mn = &d["roles"]["mn"];
    if mn.is_object() {
        let loc = &mn["location"];
        let mut at = cell(&loc["state"]);
        if let Some(c) = loc["care_of_address"].as_str() {
            at.push_str(&format!(" (care-of address {c})"));
        }
        rows.push(("home address", cell(&mn["home_address"])));
        rows.push(("location", at));
        rows.push((
            "home tunnel",
            match mn["tunnel"]["home_agent"].as_str() {
                Some(ha) => format!("to {ha}"),
                None if mn["blocked"] == Value::Bool(true) => {
                    "none; home-address traffic held until the home agent accepts".into()
                }
                None => "none".into(),
            },
        ));
        let ro = strings(&mn["route_optimised"]);
        if !ro.is_empty() {
            rows.push(("route optimised", ro.join(", ")));
        }
    }
    for i in strings(&d["installed"]) {
        rows.push(("installed", i));
    }
    let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{k:<w$}  {v}\n"))
        .collect()
}

fn render_stats(d: &Value) -> String {
    let rows: Vec<Vec<String>> = d["mobility_header"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|m| {
            vec![
                format!("{} ({})", cell(&m["name"]), cell(&m["type"])),
                cell(&m["received"]),
                cell(&m["sent"]),
            ]
        })
        .collect();
    let mut out = table(&["MOBILITY HEADER", "RECEIVED", "SENT"], &rows);
    out.push('\n');
    out.push_str(&format!(
        "control requests  {} ({} malformed)\ncontrol clients   {}\nreloads           {} ({} failed)\n",
        cell(&d["control_requests"]),
        cell(&d["control_bad_requests"]),
        cell(&d["control_clients"]),
        cell(&d["reloads"]),
        cell(&d["reloads_failed"]),
    ));
    out
}

/// The human form of a command's answer.
pub fn render(cmd: Command, data: &Value) -> String {
    match cmd {
        Command::Status => render_status(data),
        Command::Bc => entries_table(data, &BC_COLUMNS),
        Command::Bul => entries_table(data, &BUL_COLUMNS),
        Command::Stats => render_stats(data),
        Command::Members => super::members::render(data),
        Command::Handoffs => super::handoffs::render(data),
        Command::Handoff => super::handoffs::render_one(data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_binding_cache_is_a_header_only() {
        let out = render(Command::Bc, &json!({"entries": []}));
        assert_eq!(
            out,
            "HOME ADDRESS  CARE-OF ADDRESS  LIFETIME  SEQ  FLAGS  KIND\n"
        );
        let out = render(Command::Bul, &json!({"entries": []}));
        assert!(out.starts_with("PEER  HOME ADDRESS"), "{out}");
        assert_eq!(out.lines().count(), 1);
    }

    #[test]
    fn rows_line_up() {
        let data = json!({"entries": [{
            "home_address": "2001:db8::1", "care_of_address": "2001:db8:1::2",
            "lifetime": 420, "sequence": 7, "flags": "AH", "kind": "home"
        }]});
        let out = render(Command::Bc, &data);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[1],
            "2001:db8::1   2001:db8:1::2    420       7    AH     home"
        );
        assert_eq!(lines[0].find("CARE-OF"), lines[1].find("2001:db8:1::2"));
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(5), "5s");
        assert_eq!(duration(65), "1m 5s");
        assert_eq!(duration(3_725), "1h 2m 5s");
        assert_eq!(duration(90_061), "1d 1h 1m 1s");
    }

    #[test]
    fn status_shows_a_failed_reload_with_its_location() {
        let d = json!({"version": "0.1.0", "pid": 42, "role": "CN", "uptime": 3,
            "config_file": "/etc/mip6d.conf", "datapath": "auto", "reloads": 1,
            "last_reload": {"ok": false, "at": 0, "error": "/etc/mip6d.conf:3:1: expected x",
                            "warnings": [], "applied": []},
            "restart_needed": [], "machines": [], "installed": ["control socket /run/mip6d.sock"]});
        let out = render(Command::Status, &d);
        assert!(out.contains("role            CN\n"), "{out}");
        assert!(out.contains("FAILED"), "{out}");
        assert!(
            out.contains("  error         /etc/mip6d.conf:3:1: expected x"),
            "{out}"
        );
        assert!(out.contains("protocols       none running"), "{out}");
    }

    #[test]
    fn a_missing_daemon_is_named() {
        let e = query(Path::new("/nonexistent/mip6d.sock"), Command::Status).unwrap_err();
        assert_eq!(
            e,
            "mip6d is not running (no socket at /nonexistent/mip6d.sock)"
        );
    }
}
