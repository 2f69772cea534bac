//! Turns mip6d.conf text into tokens that know where they came from.
//!
//! The lexer is deliberately looser than umip's: every run of "word" characters becomes one
//! [`TokKind::Word`] and the parser decides, from what it expects at that point, whether the
//! word is a keyword, a number, a decimal or an address. That is what lets us accept `::1`
//! (umip splits it into `::` and `1`) and `3` where a decimal is expected, and it lets error
//! messages say "expected an IPv6 address, found `2001:db8::g`" instead of "syntax error".

use nom::bytes::complete::{take_till, take_while1};
use nom::character::complete::{char, multispace1};
use nom::sequence::{delimited, preceded};
use nom::IResult;

/// A 1-based line and column; columns count Unicode scalar values, a tab counts as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl Pos {
    const START: Pos = Pos { line: 1, col: 1 };

    fn advance_over(&mut self, consumed: &str) {
        for c in consumed.chars() {
            if c == '\n' {
                self.line = self.line.saturating_add(1);
                self.col = 1;
            } else {
                self.col = self.col.saturating_add(1);
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokKind {
    /// A bare run of letters, digits and `_ : . - %`: keyword, number, decimal or address.
    Word,
    /// A double-quoted string; `text` holds the contents without the quotes.
    Str,
    /// One of `{ } ; / ( ) , =`.
    Punct(char),
    Eof,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub kind: TokKind,
    pub text: String,
    pub start: Pos,
    /// Just past the last character, so "missing `;`" can point where the `;` belongs.
    pub end: Pos,
}

impl Token {
    /// How the token reads in an error message.
    pub fn describe(&self) -> String {
        match self.kind {
            TokKind::Word => format!("`{}`", self.text),
            TokKind::Str => format!("string \"{}\"", self.text),
            TokKind::Punct(c) => format!("`{c}`"),
            TokKind::Eof => "end of file".to_string(),
        }
    }

    pub fn is_punct(&self, c: char) -> bool {
        self.kind == TokKind::Punct(c)
    }

    pub fn is_word(&self, w: &str) -> bool {
        self.kind == TokKind::Word && self.text == w
    }
}

/// A lexical error: where, and what went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexError {
    pub pos: Pos,
    pub message: String,
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '.' | '-' | '%')
}

fn word(i: &str) -> IResult<&str, &str> {
    take_while1(is_word_char)(i)
}

fn comment(i: &str) -> IResult<&str, &str> {
    preceded(char('#'), take_till(|c| c == '\n'))(i)
}

/// umip strings have no escapes and cannot span lines; we keep that.
fn quoted(i: &str) -> IResult<&str, &str> {
    delimited(char('"'), take_till(|c| c == '"' || c == '\n'), char('"'))(i)
}

fn punct(i: &str) -> IResult<&str, char> {
    nom::character::complete::one_of("{};/(),=")(i)
}

/// Splits `src` into tokens, ending with one [`TokKind::Eof`] token.
pub fn tokenize(src: &str) -> Result<Vec<Token>, LexError> {
    let mut toks = Vec::new();
    let mut rest = src;
    let mut pos = Pos::START;
    loop {
        // Skip any mix of whitespace and comments.
        loop {
            if let Ok((r, skipped)) = multispace1::<_, nom::error::Error<&str>>(rest) {
                pos.advance_over(skipped);
                rest = r;
            } else if let Ok((r, _)) = comment(rest) {
                pos.advance_over(&rest[..rest.len() - r.len()]);
                rest = r;
            } else {
                break;
            }
        }
        let start = pos;
        if rest.is_empty() {
            toks.push(Token {
                kind: TokKind::Eof,
                text: String::new(),
                start,
                end: start,
            });
            return Ok(toks);
        }
        let (kind, text, r) = if let Ok((r, w)) = word(rest) {
            (TokKind::Word, w, r)
        } else if let Ok((r, s)) = quoted(rest) {
            (TokKind::Str, s, r)
        } else if rest.starts_with('"') {
            return Err(LexError {
                pos: start,
                message: "unterminated string: expected a closing `\"` on the same line, \
                          found the end of the line"
                    .to_string(),
            });
        } else if let Ok((r, c)) = punct(rest) {
            (TokKind::Punct(c), &rest[..c.len_utf8()], r)
        } else {
            let c = rest.chars().next().unwrap_or('\0');
            return Err(LexError {
                pos: start,
                message: format!(
                    "expected a keyword, value, string or one of `{{ }} ; / ( ) ,`, \
                     found unexpected character {c:?}"
                ),
            });
        };
        pos.advance_over(&rest[..rest.len() - r.len()]);
        toks.push(Token {
            kind,
            text: text.to_string(),
            start,
            end: pos,
        });
        rest = r;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<(TokKind, String, u32, u32)> {
        tokenize(src)
            .unwrap()
            .into_iter()
            .map(|t| (t.kind, t.text, t.start.line, t.start.col))
            .collect()
    }

    #[test]
    fn words_strings_punct_and_positions() {
        let k = kinds("NodeConfig HA; # c\n\tInterface \"eth0\" {\nHomeAddress ::1/64;}");
        assert_eq!(
            k,
            vec![
                (TokKind::Word, "NodeConfig".into(), 1, 1),
                (TokKind::Word, "HA".into(), 1, 12),
                (TokKind::Punct(';'), ";".into(), 1, 14),
                (TokKind::Word, "Interface".into(), 2, 2),
                (TokKind::Str, "eth0".into(), 2, 12),
                (TokKind::Punct('{'), "{".into(), 2, 19),
                (TokKind::Word, "HomeAddress".into(), 3, 1),
                (TokKind::Word, "::1".into(), 3, 13),
                (TokKind::Punct('/'), "/".into(), 3, 16),
                (TokKind::Word, "64".into(), 3, 17),
                (TokKind::Punct(';'), ";".into(), 3, 19),
                (TokKind::Punct('}'), "}".into(), 3, 20),
                (TokKind::Eof, "".into(), 3, 21),
            ]
        );
    }

    #[test]
    fn unterminated_string_is_reported_at_its_quote() {
        let e = tokenize("DebugLogFile \"/tmp/x;\nNodeConfig HA;").unwrap_err();
        assert_eq!(e.pos, Pos { line: 1, col: 14 });
        assert!(
            e.message.starts_with("unterminated string"),
            "{}",
            e.message
        );
    }

    #[test]
    fn stray_character() {
        let e = tokenize("NodeConfig @HA;").unwrap_err();
        assert_eq!(e.pos, Pos { line: 1, col: 12 });
        assert!(e.message.ends_with("found unexpected character '@'"));
    }

    #[test]
    fn end_position_of_token_before_newline() {
        let t = tokenize("DebugLevel 3\nNodeConfig HA;").unwrap();
        assert_eq!(t[1].end, Pos { line: 1, col: 13 });
    }
}
