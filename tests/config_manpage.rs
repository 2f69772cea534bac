//! mip6d.conf(5) documents every word the parser gives a meaning to, and renders cleanly.

use std::path::Path;
use std::process::Command;

fn man_source() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("man/mip6d.conf.5");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn mentions(text: &str, word: &str) -> bool {
    let word_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(word_char) && !after.is_some_and(word_char)
    })
}

#[test]
fn every_keyword_is_documented() {
    let man = man_source();
    let keywords = mip6d::config::keywords::all_keywords();
    assert!(keywords.len() > 71, "the table lost keywords: {keywords:?}");
    let missing: Vec<&str> = keywords
        .iter()
        .copied()
        .filter(|k| !mentions(&man, k))
        .collect();
    assert!(missing.is_empty(), "not in man/mip6d.conf.5: {missing:?}");
}

#[test]
fn every_man_page_renders_without_warnings() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let mut pages = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let out = Command::new("groff")
            .args(["-man", "-ww", "-z"])
            .arg(&path)
            .output()
            .expect("groff is needed for this test (package groff-base, see scripts/setup)");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.is_empty(),
            "groff on {}: {stderr}",
            path.display()
        );
        pages += 1;
    }
    assert!(
        pages >= 3,
        "expected mip6d.8, mip6ctl.8 and mip6d.conf.5, found {pages}"
    );
}
