//! Just enough of glob(3) for `include`: `*`, `?` and `[...]` within one path component,
//! matches sorted, hidden names only matched by a pattern that starts with `.`.
//! Written here rather than pulling in a crate for twenty lines.

use std::path::{Component, Path, PathBuf};

pub fn has_magic(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Every existing path that `pattern` matches, sorted component by component.
pub fn expand(pattern: &Path) -> Vec<PathBuf> {
    let mut current: Vec<PathBuf> = vec![PathBuf::new()];
    for comp in pattern.components() {
        let part = match comp {
            Component::Normal(p) => p.to_string_lossy().into_owned(),
            other => {
                for c in &mut current {
                    c.push(other.as_os_str());
                }
                continue;
            }
        };
        if !has_magic(&part) {
            for c in &mut current {
                c.push(&part);
            }
            continue;
        }
        let pat: Vec<char> = part.chars().collect();
        let mut next = Vec::new();
        for dir in &current {
            let read_from = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir.as_path()
            };
            let Ok(entries) = std::fs::read_dir(read_from) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.') || part.starts_with('.'))
                .filter(|n| matches(&pat, &n.chars().collect::<Vec<_>>()))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| dir.join(n)));
        }
        current = next;
    }
    current.retain(|p| !p.as_os_str().is_empty() && p.exists());
    current
}

/// Parses a `[...]` class at `pat[start]`; `None` when it is not closed (then `[` is literal).
fn class(pat: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(pat.get(i), Some('!' | '^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while let Some(&p) = pat.get(i) {
        if p == ']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if pat.get(i + 1) == Some(&'-') && pat.get(i + 2).is_some_and(|&e| e != ']') {
            let hi = pat[i + 2];
            matched |= p <= c && c <= hi;
            i += 3;
        } else {
            matched |= p == c;
            i += 1;
        }
    }
    None
}

/// Glob match of one name; backtracks only to the last `*`, which is enough without `**`.
pub fn matches(pat: &[char], name: &[char]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        let step = match pat.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
                continue;
            }
            Some('?') => Some(p + 1),
            Some('[') => match class(pat, p, name[n]) {
                Some((true, next)) => Some(next),
                Some((false, _)) => None,
                None => (name[n] == '[').then_some(p + 1),
            },
            Some(&c) if c == name[n] => Some(p + 1),
            _ => None,
        };
        match (step, star) {
            (Some(next), _) => {
                p = next;
                n += 1;
            }
            (None, Some((sp, sn))) => {
                p = sp + 1;
                n = sn + 1;
                star = Some((sp, sn + 1));
            }
            (None, None) => return false,
        }
    }
    pat[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, n: &str) -> bool {
        matches(
            &p.chars().collect::<Vec<_>>(),
            &n.chars().collect::<Vec<_>>(),
        )
    }

    #[test]
    fn glob_matching() {
        assert!(m("*.conf", "a.conf"));
        assert!(m("*.conf", ".conf"));
        assert!(!m("*.conf", "a.conf~"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("[0-9]*-x", "10-x"));
        assert!(!m("[!0-9]*", "1a"));
        assert!(m("[]]", "]"));
        assert!(m("[ab", "[ab"));
        assert!(m("*a*b*c", "xxaxxbxxbxc"));
        assert!(!m("*a*b*c", "xxaxxbxxbx"));
        assert!(m("**", ""));
    }
}
