//! `mip6ctl handoffs` (recent handoffs with their seven phases and state size) and
//! `mip6ctl handoff --conn CLIENT:PORT --to NODE` (start one and wait for its end).

use super::client::{self, table};
use crate::daemon::control::Command;
use crate::ds::phases::Phase;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long `mip6ctl handoff` waits for the handoff to end.
const WAIT: Duration = Duration::from_secs(20);

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn ms(v: &Value) -> String {
    v.as_u64()
        .map_or("-".to_string(), |us| format!("{:.3}", us as f64 / 1e3))
}

pub fn render(d: &Value) -> String {
    let list = d["handoffs"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if list.is_empty() {
        return "no handoffs yet\n".to_string();
    }
    let mut headers = vec!["ID", "DIR", "CONNECTION", "NODE", "STATE", "BYTES"];
    let phase_heads: Vec<String> = (1..=Phase::ALL.len()).map(|i| format!("P{i} ms")).collect();
    headers.extend(phase_heads.iter().map(String::as_str));
    headers.push("TOTAL ms");
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|h| {
            let mut r = vec![
                cell(&h["id"]),
                cell(&h["direction"]),
                cell(&h["peer"]),
                cell(&h["node"]),
                cell(&h["state"]),
                cell(&h["state_bytes"]),
            ];
            for i in 0..Phase::ALL.len() {
                r.push(ms(&h["phases_us"][i]));
            }
            r.push(ms(&h["total_us"]));
            r
        })
        .collect();
    let mut out = table(&headers, &rows);
    out.push_str("phases: ");
    let names: Vec<String> = Phase::ALL
        .iter()
        .enumerate()
        .map(|(i, p)| format!("P{} {}", i + 1, p.name()))
        .collect();
    out.push_str(&names.join(", "));
    out.push('\n');
    out
}

/// One handoff's record, as `mip6ctl handoff` prints it when it is over.
pub fn render_one(h: &Value) -> String {
    let mut out = format!(
        "handoff {} of {} to node {}: {}\n",
        cell(&h["id"]),
        cell(&h["peer"]),
        cell(&h["node"]),
        cell(&h["state"])
    );
    if h["state_bytes"].is_u64() {
        out.push_str(&format!("state bytes: {}\n", cell(&h["state_bytes"])));
    }
    for (i, p) in Phase::ALL.iter().enumerate() {
        out.push_str(&format!(
            "{} {:<20} {:>10} ms\n",
            i + 1,
            p.name(),
            ms(&h["phases_us"][i])
        ));
    }
    out
}

/// Starts the handoff, then follows `handoffs` until it is over. Returns the final
/// record and whether it completed.
pub fn hand_off(
    socket: &Path,
    conn: &str,
    to: &str,
    ds: Option<&str>,
    wait: bool,
) -> Result<(Value, bool), String> {
    let mut args = json!({"conn": conn, "to": to});
    if let Some(ds) = ds {
        args["ds"] = json!(ds);
    }
    let started = client::query_with(socket, Command::Handoff, args)?;
    let id = started["id"]
        .as_u64()
        .ok_or("mip6d answered without a handoff id")?;
    if !wait {
        return Ok((started, true));
    }
    let end = Instant::now() + WAIT;
    loop {
        let list = client::query(socket, Command::Handoffs)?;
        let rec = list["handoffs"].as_array().and_then(|l| {
            l.iter()
                .rev()
                .find(|h| h["id"].as_u64() == Some(id) && h["direction"] == "out")
                .cloned()
        });
        if let Some(h) = rec {
            let state = h["state"].as_str().unwrap_or("");
            if state != "running" {
                let ok = state == "completed";
                return Ok((h, ok));
            }
        }
        if Instant::now() >= end {
            return Err(format!(
                "handoff {id} still running after {} s",
                WAIT.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_shows_each_phase_and_the_state_size() {
        let d = json!({"handoffs": [{
            "id": 3, "direction": "out", "peer": "[2001:db8::5]:4000", "node": 2,
            "state": "completed", "state_bytes": 112,
            "phases_us": [120, 80, null, 300, 5, 900, 40], "total_us": 1445
        }]});
        let out = render(&d);
        assert!(out.contains("P7 ms"), "{out}");
        let row = out.lines().nth(1).unwrap();
        for want in [
            "3",
            "out",
            "[2001:db8::5]:4000",
            "completed",
            "112",
            "0.120",
            "-",
            "0.900",
            "1.445",
        ] {
            assert!(row.contains(want), "{want} in {row}");
        }
        assert!(out.contains("P4 return routability"), "{out}");
        assert_eq!(render(&json!({"handoffs": []})), "no handoffs yet\n");
        let one = render_one(&d["handoffs"][0]);
        assert!(one.contains("state bytes: 112"), "{one}");
        assert!(one.contains("6 binding management"), "{one}");
    }
}
