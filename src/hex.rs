//! Hex encoding for logs, JSON and command-line input.

use std::fmt::Write;

pub fn encode(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Decodes hex, ignoring `:`, `-`, `_` and whitespace between digit pairs so that
/// copies from tshark, Wireshark and RFC figures paste as they are.
pub fn decode(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = text
        .bytes()
        .filter(|c| !matches!(c, b':' | b'-' | b'_') && !c.is_ascii_whitespace())
        .collect();
    if digits.len() % 2 != 0 {
        return Err(format!("odd number of hex digits ({})", digits.len()));
    }
    digits
        .chunks_exact(2)
        .map(|pair| {
            let s = std::str::from_utf8(pair).map_err(|_| "non-ASCII character".to_string())?;
            u8::from_str_radix(s, 16).map_err(|_| format!("'{s}' is not a hex byte"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip_and_separators() {
        assert_eq!(super::encode(&[0, 0xab, 0x10]), "00ab10");
        assert_eq!(super::decode("00:AB 10").unwrap(), vec![0, 0xab, 0x10]);
        assert!(super::decode("abc").unwrap_err().contains("odd"));
        assert!(super::decode("zz").unwrap_err().contains("zz"));
    }
}
