//! `testbed/run experiment all --quick`: the seed's evaluation (§3.2) on its reduced grid,
//! so the command cannot rot. Beyond the exit status it reads what the run wrote: every
//! grid point has its CSV row, the fitted X and Y are finite and positive, every download
//! was handed off and arrived intact, the emulated delay shows up in the round trips, the
//! report puts our numbers beside the seed's, and the plots are SVG.
//!
//! Needs root, iproute2, ip6tables, ipset, nftables, python3 and gnuplot (gnuplot-nox).

#[path = "support/testbed.rs"]
mod testbed;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use testbed::{run_scenario, text, Tool};

/// A CSV file as rows of column → value.
fn csv(path: &Path) -> Vec<HashMap<String, String>> {
    let body = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = body.lines();
    let head: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split(',')
        .map(str::to_owned)
        .collect();
    lines
        .map(|l| {
            head.iter()
                .cloned()
                .zip(l.split(',').map(str::to_owned))
                .collect()
        })
        .collect()
}

fn num(row: &HashMap<String, String>, key: &str) -> f64 {
    row.get(key)
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("{key} not a number in {row:?}"))
}

#[test]
fn experiment_all_quick_measures_every_point() {
    testbed::require(
        "experiment_quick",
        &[Tool::Ip, Tool::Ip6tables, Tool::Ping, Tool::Ipset],
    );
    testbed::require_commands(
        "experiment_quick",
        &[
            ("python3", "python3"),
            ("gnuplot", "gnuplot-nox"),
            ("nft", "nftables"),
        ],
    );
    let prefix = format!("exq{}", std::process::id() % 100_000);
    let results: PathBuf = std::env::temp_dir().join(format!("mip6d-experiment-{prefix}"));
    let _ = std::fs::remove_dir_all(&results);
    let started = std::time::Instant::now();
    let run = run_scenario(
        &prefix,
        &["experiment", "all", "--quick"],
        &[
            ("M6_MIP6D", env!("CARGO_BIN_EXE_mip6d").to_string()),
            ("M6_MIP6CTL", env!("CARGO_BIN_EXE_mip6ctl").to_string()),
            ("M6_NETBENCH", env!("CARGO_BIN_EXE_m6-netbench").to_string()),
            (
                "M6_DS_SERVER",
                env!("CARGO_BIN_EXE_m6-ds-server").to_string(),
            ),
            ("M6_LINKEMU", env!("CARGO_BIN_EXE_m6-linkemu").to_string()),
            ("M6_RESULTS_DIR", results.display().to_string()),
        ],
        &format!("{prefix}-mipv6"),
    );
    let took = started.elapsed();
    assert!(
        run.out.status.success(),
        "experiment all --quick:\n{}\n{}",
        text(&run.out),
        run.logs
    );
    assert!(
        run.left.is_empty(),
        "namespaces left behind: {:?}",
        run.left
    );
    let dirs: Vec<PathBuf> = std::fs::read_dir(&results)
        .expect("no results directory")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(dirs.len(), 1, "one timestamped directory: {dirs:?}");
    let out = &dirs[0];
    assert!(
        run.stdout.contains(&out.display().to_string()),
        "the run names its results directory:\n{}",
        run.stdout
    );

    // Latency: 2 configurations x LatSS {0, 20} x LatCS1 {0, 20}, every point answered.
    let lat = csv(&out.join("latency.csv"));
    assert_eq!(lat.len(), 8, "latency rows: {lat:?}");
    for r in &lat {
        assert_eq!(num(r, "lost"), 0.0, "echoes lost: {r:?}");
        assert!(num(r, "samples") >= 20.0, "{r:?}");
        // The emulated delay is really on the path: the round trip is at least the model.
        let model = 2.0 * num(r, "lat_cs1_ms")
            + if r["config"] == "2" {
                2.0 * num(r, "lat_ss_ms")
            } else {
                0.0
            };
        let min_ms = num(r, "min_us") / 1000.0;
        assert!(
            min_ms >= model && min_ms < model + 20.0,
            "round trip {min_ms} ms against {model} ms emulated: {r:?}"
        );
    }
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("summary.json")).expect("summary.json"),
    )
    .expect("summary.json is JSON");
    for k in ["X", "Y"] {
        let v = summary["latency"][k].as_f64();
        assert!(
            v.is_some_and(|v| v.is_finite() && v > 0.0 && v < 50.0),
            "fitted {k}: {v:?}"
        );
    }

    // Table 1: one download per bandwidth, handed off, intact, seven phases measured.
    let t1 = csv(&out.join("table1.csv"));
    let rates: Vec<&str> = t1.iter().map(|r| r["rate_kbit"].as_str()).collect();
    assert_eq!(
        rates,
        ["100000", "2000", "1500", "1000"],
        "table1 rows: {t1:?}"
    );
    for r in &t1 {
        assert_eq!(r["intact"], "1", "download not intact: {r:?}");
        assert_eq!(r["outcome"], "Completed", "{r:?}");
        for p in 1..=7 {
            assert!(num(r, &format!("p{p}_us")) >= 0.0, "phase {p}: {r:?}");
        }
        assert!(num(r, "state_bytes") > 0.0, "{r:?}");
    }
    // The state crosses the shaped link: at 1 Mbit/s its transfer takes longer than at
    // 100 Mbit/s.
    let p2 = |rate: &str| num(t1.iter().find(|r| r["rate_kbit"] == rate).unwrap(), "p2_us");
    assert!(
        p2("1000") > p2("100000"),
        "state transfer at 1 Mbit/s {} us, at 100 Mbit/s {} us",
        p2("1000"),
        p2("100000")
    );

    // Figure 2: three bandwidths x waits {0, 500, 1000} ms, all intact, pause measured.
    let f2 = csv(&out.join("fig2.csv"));
    assert_eq!(f2.len(), 9, "fig2 rows: {f2:?}");
    for r in &f2 {
        assert_eq!(r["intact"], "1", "download not intact: {r:?}");
        assert!(num(r, "stall_us") > 0.0, "{r:?}");
    }
    let mut points: Vec<(String, String)> = f2
        .iter()
        .map(|r| (r["rate_kbit"].clone(), r["wait_ms"].clone()))
        .collect();
    points.dedup();
    assert_eq!(
        points.len(),
        9,
        "distinct (bandwidth, wait) points: {points:?}"
    );

    let report = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    for needle in [
        "## Server access latency",
        "2.13 ms",
        "3.61 ms",
        "## Handoff time decomposition",
        "648.2",
        "## State transfer optimisation",
        "![fig2](fig2.svg)",
    ] {
        assert!(
            report.contains(needle),
            "report.md lacks '{needle}':\n{report}"
        );
    }
    for svg in ["latency.svg", "table1.svg", "fig2.svg"] {
        let body = std::fs::read_to_string(out.join(svg)).unwrap_or_default();
        assert!(
            body.contains("<svg") && body.contains("</svg>"),
            "{svg} is not an SVG"
        );
    }
    eprintln!("experiment all --quick took {took:?}");
    let _ = std::fs::remove_dir_all(&results);
    run.remove_state();
}
