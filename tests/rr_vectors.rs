//! Return routability crypto checked against an independent implementation: Python's
//! `hmac`/`hashlib`/`ipaddress`, run at test time on inputs from a seeded generator.
//!
//! Python is required, not optional: a missing interpreter fails the test (with a message
//! saying what to install) rather than skipping it, so a green run always means the
//! cross-check happened.

use mip6d::crypto::rr::{
    authenticator, kbm, keygen_token, verify_authenticator, Kcn, NonceTable, TokenKind,
};
use std::io::Write;
use std::net::Ipv6Addr;
use std::process::{Command, Stdio};
use std::time::Instant;

/// The RFC 6275 formulas, written straight from §5.2.5 and §6.2.7. Input, one case per
/// line: kcn hoa coa cn home_nonce careof_nonce mh_data (hex, addresses in text form).
/// Output, one line per case: home_token careof_token kbm kbm_dereg auth auth_dereg.
const PYTHON: &str = r#"
import sys, hmac, hashlib, ipaddress
def a(s): return ipaddress.IPv6Address(s).packed
for line in sys.stdin:
    kcn, hoa, coa, cn, hn, cn_nonce, mh = line.split()
    kcn, hn, cn_nonce = bytes.fromhex(kcn), bytes.fromhex(hn), bytes.fromhex(cn_nonce)
    mh = bytes.fromhex(mh) if mh != "-" else b""
    home = hmac.new(kcn, a(hoa) + hn + b"\x00", hashlib.sha1).digest()[:8]
    careof = hmac.new(kcn, a(coa) + cn_nonce + b"\x01", hashlib.sha1).digest()[:8]
    kbm = hashlib.sha1(home + careof).digest()
    kbm_dereg = hashlib.sha1(home).digest()
    auth = hmac.new(kbm, a(coa) + a(cn) + mh, hashlib.sha1).digest()[:12]
    # De-registration: the BU comes from home, care-of address = home address.
    auth_dereg = hmac.new(kbm_dereg, a(hoa) + a(cn) + mh, hashlib.sha1).digest()[:12]
    print(home.hex(), careof.hex(), kbm.hex(), kbm_dereg.hex(), auth.hex(), auth_dereg.hex())
"#;

/// SplitMix64: a fixed, dependency-free generator so every run checks the same cases.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for b in &mut out {
            *b = self.next() as u8;
        }
        out
    }

    fn vec(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

struct Case {
    kcn: [u8; 20],
    hoa: Ipv6Addr,
    coa: Ipv6Addr,
    cn: Ipv6Addr,
    home_nonce: [u8; 8],
    careof_nonce: [u8; 8],
    mh_data: Vec<u8>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn cases() -> Vec<Case> {
    // Case 0 is the umip vector (reference/umip/README.md §4), which also proves the
    // Python side computes what umip computes.
    let mut cases = vec![Case {
        kcn: unhex("a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3")
            .try_into()
            .unwrap(),
        hoa: "2001:db8:1::1234".parse().unwrap(),
        coa: "2001:db8:2::abcd".parse().unwrap(),
        cn: "2001:db8:3::1".parse().unwrap(),
        home_nonce: unhex("0102030405060708").try_into().unwrap(),
        careof_nonce: unhex("1112131415161718").try_into().unwrap(),
        mh_data: unhex("3b0305000000123480000069040400010002050c"),
    }];
    let mut rng = SplitMix64(0x6d69_7036_6472_7276);
    // Lengths cover the empty input, around one SHA-1 block (64 bytes, where HMAC
    // implementations most often slip) and beyond.
    let lens = [
        0usize, 1, 8, 20, 55, 56, 63, 64, 65, 100, 127, 128, 129, 500,
    ];
    for i in 0..48 {
        let len = if i < lens.len() {
            lens[i]
        } else {
            (rng.next() % 300) as usize
        };
        cases.push(Case {
            kcn: rng.bytes(),
            hoa: Ipv6Addr::from(rng.bytes::<16>()),
            coa: Ipv6Addr::from(rng.bytes::<16>()),
            cn: Ipv6Addr::from(rng.bytes::<16>()),
            home_nonce: rng.bytes(),
            careof_nonce: rng.bytes(),
            mh_data: rng.vec(len),
        });
    }
    cases
}

fn run_python(input: &str) -> String {
    let mut child = None;
    for exe in ["python3", "/usr/bin/python3"] {
        if let Ok(c) = Command::new(exe)
            .args(["-c", PYTHON])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
        {
            child = Some(c);
            break;
        }
    }
    let mut child = child.unwrap_or_else(|| {
        panic!(
            "python3 is needed to cross-check the RR vectors and was not found: \
             install python3 (e.g. `apt-get install python3`)"
        )
    });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python3 failed: {:?}", out.status);
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn rr_computations_match_python() {
    let cases = cases();
    let input: String = cases
        .iter()
        .map(|c| {
            let mh = if c.mh_data.is_empty() {
                "-".to_string()
            } else {
                hex(&c.mh_data)
            };
            format!(
                "{} {} {} {} {} {} {}\n",
                hex(&c.kcn),
                c.hoa,
                c.coa,
                c.cn,
                hex(&c.home_nonce),
                hex(&c.careof_nonce),
                mh
            )
        })
        .collect();
    let output = run_python(&input);
    let lines: Vec<_> = output.lines().collect();
    assert_eq!(lines.len(), cases.len(), "python output:\n{output}");

    for (n, (c, line)) in cases.iter().zip(&lines).enumerate() {
        let want: Vec<Vec<u8>> = line.split_whitespace().map(unhex).collect();
        assert_eq!(want.len(), 6, "case {n}: {line}");
        let kcn = Kcn::from_bytes(c.kcn);
        let home = keygen_token(&kcn, &c.hoa, &c.home_nonce, TokenKind::Home);
        let careof = keygen_token(&kcn, &c.coa, &c.careof_nonce, TokenKind::CareOf);
        let k = kbm(&home, Some(&careof));
        let k_dereg = kbm(&home, None);
        let auth = authenticator(&k, &c.coa, &c.cn, &c.mh_data);
        let auth_dereg = authenticator(&k_dereg, &c.hoa, &c.cn, &c.mh_data);
        assert_eq!(home.as_slice(), want[0], "case {n}: home token");
        assert_eq!(careof.as_slice(), want[1], "case {n}: care-of token");
        assert_eq!(k.as_slice(), want[2], "case {n}: Kbm");
        assert_eq!(k_dereg.as_slice(), want[3], "case {n}: de-registration Kbm");
        assert_eq!(auth.as_slice(), want[4], "case {n}: authenticator");
        assert_eq!(
            auth_dereg.as_slice(),
            want[5],
            "case {n}: de-registration authenticator"
        );
        assert!(verify_authenticator(
            &k, &c.coa, &c.cn, &c.mh_data, &want[4]
        ));
        let mut flipped = want[4].clone();
        flipped[n % 12] ^= 1 << (n % 8);
        assert!(!verify_authenticator(
            &k, &c.coa, &c.cn, &c.mh_data, &flipped
        ));

        // The CN's table hands out and recomputes the same tokens.
        let t0 = Instant::now();
        let mut table =
            NonceTable::with_initial(Kcn::from_bytes(c.kcn), n as u16, c.home_nonce, t0);
        assert_eq!(
            table.issue_token(&c.hoa, TokenKind::Home, t0),
            (n as u16, home)
        );
        assert_eq!(
            table.token(n as u16, &c.hoa, TokenKind::Home, t0),
            Some(home)
        );
    }

    // Case 0 is the published umip vector (its de-registration authenticator is not
    // published, only cross-checked above).
    let fields: Vec<_> = lines[0].split_whitespace().collect();
    assert_eq!(
        fields[..5],
        [
            "5dbdab0c8779b6ae",
            "ff660007f1168468",
            "d670ae8e346905be46eb3235b3e3aa6a805e78b1",
            "94cf3ccfa97cd374abb10f50732ab810fafc1f29",
            "f3e88882171e7571638b3a9e",
        ]
    );
}
