//! `mip6ctl members`: the Distributed Servers membership view of the node asked, one
//! block per `DistributedServer`, drawn from the daemon's JSON alone.

use super::client::table;
use serde_json::Value;

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn heard(m: &Value) -> String {
    if m["self"] == Value::Bool(true) {
        return "(this node)".to_string();
    }
    match m["last_heard_ms"].as_u64() {
        Some(ms) => format!("{ms} ms ago"),
        None => "never".to_string(),
    }
}

fn one(s: &Value) -> String {
    let mut out = format!(
        "DistributedServer {} (DSA {}, home agent {})\n",
        cell(&s["name"]),
        cell(&s["dsa"]),
        cell(&s["home_agent"])
    );
    let rows: Vec<(&str, String)> = vec![
        (
            "this node",
            format!(
                "{}: {} (configured {}), rank {}",
                cell(&s["node_id"]),
                cell(&s["state"]),
                cell(&s["configured_role"]),
                cell(&s["rank"])
            ),
        ),
        ("epoch", cell(&s["epoch"])),
        ("contact", cell(&s["contact"])),
        ("DSA sequence", cell(&s["dsa_seq"])),
        (
            "DSA registration",
            match s["dsa_registration"].as_object() {
                Some(r) => format!(
                    "sequence {} asked in epoch {}",
                    cell(&r["seq"]),
                    cell(&r["epoch"])
                ),
                None => "none asked by this node".to_string(),
            },
        ),
    ];
    let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in rows {
        out.push_str(&format!("{k:<w$}  {v}\n"));
    }
    out.push('\n');
    let members: Vec<Vec<String>> = s["members"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|m| {
            vec![
                cell(&m["node_id"]),
                cell(&m["role"]),
                cell(&m["rank"]),
                cell(&m["address"]),
                heard(m),
            ]
        })
        .collect();
    out.push_str(&table(
        &["NODE", "ROLE", "RANK", "ADDRESS", "LAST HEARD"],
        &members,
    ));
    out
}

pub fn render(d: &Value) -> String {
    let servers = d["servers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if servers.is_empty() {
        return "no DistributedServer block is running on this node\n".to_string();
    }
    servers.iter().map(one).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shows_the_view_and_each_members_liveness() {
        let d = json!({"servers": [{
            "name": "web", "dsa": "2001:db8::80", "home_agent": "2001:db8::1",
            "node_id": 2, "configured_role": "backup", "state": "backup", "rank": 1,
            "epoch": "3.1", "contact": 1, "dsa_seq": 4, "dsa_registration": null,
            "members": [
                {"node_id": 1, "role": "contact", "rank": 0, "address": "fd00::1",
                 "last_heard_ms": 40, "self": false},
                {"node_id": 2, "role": "backup", "rank": 1, "address": "fd00::2",
                 "last_heard_ms": null, "self": true},
                {"node_id": 3, "role": "out", "rank": null, "address": "fd00::3",
                 "last_heard_ms": null, "self": false}
            ]
        }]});
        let out = render(&d);
        assert!(
            out.contains("this node         2: backup (configured backup), rank 1\n"),
            "{out}"
        );
        assert!(out.contains("epoch             3.1\n"), "{out}");
        assert!(
            out.contains("1     contact  0     fd00::1  40 ms ago\n"),
            "{out}"
        );
        assert!(
            out.contains("2     backup   1     fd00::2  (this node)\n"),
            "{out}"
        );
        assert!(
            out.contains("3     out      -     fd00::3  never\n"),
            "{out}"
        );
        assert_eq!(
            render(&json!({"servers": []})),
            "no DistributedServer block is running on this node\n"
        );
    }
}
