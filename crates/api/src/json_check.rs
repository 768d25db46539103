//! Whether an Invoke payload is one JSON value, read across the chunks it arrived in — so a 6 MB
//! payload is checked without first being gathered into one buffer, and handed to the runtime as
//! those same chunks.
//!
//! It accepts exactly what `serde_json::from_slice::<IgnoredAny>` accepts (the check Flint made
//! before): RFC 8259's grammar, no nesting limit, string contents not checked for UTF-8 (escapes
//! are: `\u` takes four hex digits). Only the verdict comes from here; a payload it refuses is
//! gathered and read by serde_json for the position and words of the error (`invoke.rs`), and
//! the differential test below holds the two to the same verdicts.

/// A check in progress: [`JsonCheck::feed`] each chunk in order, then [`JsonCheck::finish`].
#[derive(Debug)]
pub(crate) struct JsonCheck {
    /// The open arrays (`[`) and objects (`{`), innermost last.
    open: Vec<u8>,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// A value must come: at the start, after `:`, after `,` in an array.
    Value,
    /// Just after `[`: a value or `]`.
    ValueOrClose,
    /// Just after `{`: a key or `}`.
    KeyOrClose,
    /// After `,` in an object: a key.
    Key,
    /// Inside a string (`key`: an object's key, a `:` follows it).
    Str {
        key: bool,
    },
    /// After a `\` in a string.
    Escape {
        key: bool,
    },
    /// Inside `\uXXXX`, `left` hex digits to come.
    Hex {
        key: bool,
        left: u8,
    },
    /// After a key.
    Colon,
    /// After a value: `,` or the closer of the innermost container; at the top level, nothing
    /// but whitespace.
    After,
    Num(Num),
    /// Inside `true`, `false` or `null`: `rest` still to come.
    Literal {
        rest: &'static [u8],
    },
    Refused,
}

/// Where a number is: `-`? (`0` | [1-9][0-9]*) (`.` [0-9]+)? ([eE] [+-]? [0-9]+)?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Num {
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    E,
    ESign,
    Exp,
}

impl Num {
    /// Whether the number may end here.
    fn complete(self) -> bool {
        matches!(self, Num::Zero | Num::Int | Num::Frac | Num::Exp)
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\t' | b'\r')
}

/// How many bytes at the start of `s` are plain string content (not `"`, `\` or a control
/// character). Blocks of 32 are tested without branching per byte, which the compiler turns
/// into a few vector compares: long strings, the bulk of a large payload, go at memory speed.
fn plain_run(s: &[u8]) -> usize {
    const BLOCK: usize = 32;
    let special = |b: u8| b == b'"' || b == b'\\' || b < 0x20;
    let mut at = 0;
    for block in s.chunks_exact(BLOCK) {
        let hits = block.iter().fold(0u8, |acc, &b| {
            acc | u8::from(b == b'"') | u8::from(b == b'\\') | u8::from(b < 0x20)
        });
        if hits != 0 {
            break;
        }
        at += BLOCK;
    }
    s[at..]
        .iter()
        .position(|&b| special(b))
        .map_or(s.len(), |p| at + p)
}

impl JsonCheck {
    pub(crate) fn new() -> Self {
        JsonCheck {
            open: Vec::new(),
            state: State::Value,
        }
    }

    /// Reads the next chunk of the payload.
    pub(crate) fn feed(&mut self, chunk: &[u8]) {
        let mut i = 0;
        while i < chunk.len() {
            match self.state {
                State::Refused => return,
                State::Str { key } => {
                    i += plain_run(&chunk[i..]);
                    let Some(&b) = chunk.get(i) else {
                        return;
                    };
                    i += 1;
                    self.state = match b {
                        b'"' if key => State::Colon,
                        b'"' => State::After,
                        b'\\' => State::Escape { key },
                        _ => State::Refused,
                    };
                }
                _ => {
                    if self.step(chunk[i]) {
                        i += 1;
                    }
                }
            }
        }
    }

    /// Whether the whole payload was one JSON value.
    pub(crate) fn finish(self) -> bool {
        self.open.is_empty()
            && match self.state {
                State::After => true,
                State::Num(n) => n.complete(),
                _ => false,
            }
    }

    /// One byte outside a string's plain run. False when the byte was not used (it ended a
    /// number and is read again in the state that follows).
    fn step(&mut self, b: u8) -> bool {
        self.state = match self.state {
            State::Value | State::ValueOrClose if is_space(b) => return true,
            State::ValueOrClose if b == b']' => return self.close(b'['),
            State::Value | State::ValueOrClose => match b {
                b'"' => State::Str { key: false },
                b'[' => {
                    self.open.push(b'[');
                    State::ValueOrClose
                }
                b'{' => {
                    self.open.push(b'{');
                    State::KeyOrClose
                }
                b't' => State::Literal { rest: b"rue" },
                b'f' => State::Literal { rest: b"alse" },
                b'n' => State::Literal { rest: b"ull" },
                b'-' => State::Num(Num::Minus),
                b'0' => State::Num(Num::Zero),
                b'1'..=b'9' => State::Num(Num::Int),
                _ => State::Refused,
            },
            State::KeyOrClose | State::Key if is_space(b) => return true,
            State::KeyOrClose if b == b'}' => return self.close(b'{'),
            State::KeyOrClose | State::Key if b == b'"' => State::Str { key: true },
            State::KeyOrClose | State::Key => State::Refused,
            State::Colon if is_space(b) => return true,
            State::Colon if b == b':' => State::Value,
            State::Colon => State::Refused,
            State::After if is_space(b) => return true,
            State::After => match (self.open.last(), b) {
                (Some(b'['), b',') => State::Value,
                (Some(b'{'), b',') => State::Key,
                (Some(b'['), b']') => return self.close(b'['),
                (Some(b'{'), b'}') => return self.close(b'{'),
                _ => State::Refused,
            },
            State::Escape { key } => match b {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => State::Str { key },
                b'u' => State::Hex { key, left: 4 },
                _ => State::Refused,
            },
            State::Hex { key, left } if b.is_ascii_hexdigit() => match left {
                1 => State::Str { key },
                _ => State::Hex {
                    key,
                    left: left - 1,
                },
            },
            State::Hex { .. } => State::Refused,
            State::Literal { rest } => match rest.split_first() {
                Some((&want, [])) if want == b => State::After,
                Some((&want, rest)) if want == b => State::Literal { rest },
                _ => State::Refused,
            },
            State::Num(n) => match (n, b) {
                (Num::Minus, b'0') => State::Num(Num::Zero),
                (Num::Minus | Num::Int, b'1'..=b'9') | (Num::Int, b'0') => State::Num(Num::Int),
                (Num::Zero, b'0'..=b'9') => State::Refused,
                (Num::Zero | Num::Int, b'.') => State::Num(Num::Dot),
                (Num::Dot | Num::Frac, b'0'..=b'9') => State::Num(Num::Frac),
                (Num::Zero | Num::Int | Num::Frac, b'e' | b'E') => State::Num(Num::E),
                (Num::E, b'+' | b'-') => State::Num(Num::ESign),
                (Num::E | Num::ESign | Num::Exp, b'0'..=b'9') => State::Num(Num::Exp),
                (n, _) if n.complete() => {
                    // The number ended; the byte belongs to what follows it.
                    self.state = State::After;
                    return false;
                }
                _ => State::Refused,
            },
            // Strings are read in `feed`; a refusal is final.
            State::Str { .. } | State::Refused => State::Refused,
        };
        true
    }

    fn close(&mut self, frame: u8) -> bool {
        self.state = if self.open.pop() == Some(frame) {
            State::After
        } else {
            State::Refused
        };
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::IgnoredAny;

    fn serde_accepts(s: &[u8]) -> bool {
        serde_json::from_slice::<IgnoredAny>(s).is_ok()
    }

    /// The verdict with the payload cut at every position in `cuts` (each chunk fed in turn).
    fn check(s: &[u8], cuts: &[usize]) -> bool {
        let mut c = JsonCheck::new();
        let mut from = 0;
        for &cut in cuts {
            let cut = cut.clamp(from, s.len());
            c.feed(&s[from..cut]);
            from = cut;
        }
        c.feed(&s[from..]);
        c.finish()
    }

    #[test]
    fn the_grammar_as_serde_json_reads_it() {
        let cases: &[&[u8]] = &[
            b"{}",
            b"[]",
            b" [ ] ",
            b"\"\"",
            b"0",
            b"-0",
            b"-0.5e+10",
            b"1E5",
            b"12.50",
            b"true",
            b"false",
            b"null",
            b"{\"a\":[1,{\"b\":null}],\"c\":\"\\u00e9\\n\"}",
            b"\"\xff\xfe not utf-8\"",
            b"[[[[[[[[[[]]]]]]]]]]",
            b"\t\r\n{}\n",
            // refused
            b"",
            b" ",
            b"{",
            b"}",
            b"[1,]",
            b"{\"a\":1,}",
            b"{\"a\"}",
            b"{1:2}",
            b"[1 2]",
            b"01",
            b"1.",
            b".5",
            b"-",
            b"1e",
            b"1e+",
            b"+1",
            b"tru",
            b"truex",
            b"nul",
            b"\"abc",
            b"\"a\x01b\"",
            b"\"\\x\"",
            b"\"\\u12g4\"",
            b"\"\\u12\"",
            b"{} {}",
            b"[}",
            b"{]",
            b"NaN",
            b"\xef\xbb\xbf{}",
            b"1 2",
            b"[\"a\" \"b\"]",
            b"\x0c{}",
            b"{\"a\" 1}",
            b"[,1]",
            b"{,}",
            b"[1]]",
            b"\"\\",
        ];
        for s in cases {
            let want = serde_accepts(s);
            for cuts in [vec![], vec![1], vec![1, 2, 3], vec![2, 5]] {
                assert_eq!(
                    check(s, &cuts),
                    want,
                    "{:?} cut at {cuts:?}",
                    String::from_utf8_lossy(s)
                );
            }
        }
    }

    /// Random token soups (mostly almost-JSON), each split at random places: the same verdict
    /// as serde_json's every time.
    #[test]
    fn the_same_verdicts_as_serde_json_over_random_payloads_and_cuts() {
        let pieces: &[&[u8]] = &[
            b"{",
            b"}",
            b"[",
            b"]",
            b",",
            b":",
            b" ",
            b"\"k\"",
            b"\"a\\\"b\"",
            b"\"\\u00Ff\"",
            b"0",
            b"-1",
            b"2.5",
            b"1e-3",
            b"true",
            b"false",
            b"null",
            b"\"",
            b"\\",
            b"\n",
            b"x",
            b".",
            b"e",
            b"-",
            b"\"long string of plain text, over thirty-two bytes\"",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut agreed_valid = 0;
        for _ in 0..20_000 {
            let n = (next() % 12) as usize;
            let mut s = Vec::new();
            for _ in 0..n {
                s.extend_from_slice(pieces[(next() % pieces.len() as u64) as usize]);
            }
            // Valid shapes too, with a random piece spliced in now and then.
            if next() % 3 == 0 {
                s = format!(
                    "{{\"a\":[{}, \"b\"], \"c\": {{}}}}",
                    String::from_utf8_lossy(&s)
                )
                .into_bytes();
            }
            let cuts: Vec<usize> = (0..(next() % 4))
                .map(|_| (next() % (s.len() as u64 + 1)) as usize)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let want = serde_accepts(&s);
            agreed_valid += usize::from(want);
            assert_eq!(
                check(&s, &cuts),
                want,
                "{:?} cut at {cuts:?}",
                String::from_utf8_lossy(&s)
            );
        }
        assert!(
            agreed_valid > 500,
            "too few valid cases ({agreed_valid}) to mean much"
        );
    }

    #[test]
    fn plain_runs_stop_at_quotes_backslashes_and_control_characters() {
        let mut s = vec![b'x'; 100];
        assert_eq!(plain_run(&s), 100);
        for (at, b) in [(0, b'"'), (31, b'\\'), (32, 0x1f), (70, b'"'), (99, b'\n')] {
            s[at] = b;
            assert_eq!(plain_run(&s), at, "{b:#x} at {at}");
            s[at] = b'x';
        }
        assert_eq!(plain_run(b"\xc3\xa9\x7f\x20"), 4);
    }
}
