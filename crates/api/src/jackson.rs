//! The parse errors AWS Lambda gives for an Invoke payload that is not JSON. Lambda reads the
//! payload with Jackson (Java), so its `InvalidRequestContentException` says what Jackson says,
//! with Jackson's location suffix. Flint parses with serde; this module rebuilds Jackson's
//! message for the mistakes a payload makes at its start — a byte that cannot begin a value, a
//! misspelt `true`/`false`/`null` or a bare word, bytes that are not UTF-8 (what the AWS CLI v2
//! sends when `--payload` is not base64) — and, for errors deeper in a document, keeps serde's
//! description under Jackson's location suffix.

/// Jackson's list of what may start a value (`_validJsonValueList`).
const VALID_VALUES: &str =
    "(JSON String, Number, Array, Object or token 'null', 'true' or 'false')";

/// Jackson's description of the JSON error in `body` (which serde refused with `serde_error`).
pub(crate) fn parse_error(body: &[u8], serde_error: &serde_json::Error) -> String {
    let start = body
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if let Some(start) = start {
        if let Some((message, at)) = leading_token_error(body, start) {
            return with_location(message, body, at);
        }
    }
    // Deeper in the document: serde's words, at serde's place (1-based line and column).
    let message = strip_serde_location(&serde_error.to_string());
    format!(
        "{message}\n at [Source: REDACTED (`StreamReadFeature.INCLUDE_SOURCE_IN_LOCATION` disabled); line: {}, column: {}]",
        serde_error.line(),
        serde_error.column()
    )
}

/// Jackson's error for the value starting at `start`, with the byte offset its location names
/// (Jackson reports the column of its read pointer: just past the offending byte for token and
/// UTF-8 errors, at it for an unexpected character). None: the start is a valid one.
fn leading_token_error(body: &[u8], start: usize) -> Option<(String, usize)> {
    let first = body[start];
    let literal: Option<&[u8]> = match first {
        b't' => Some(b"true"),
        b'f' => Some(b"false"),
        b'n' => Some(b"null"),
        _ => None,
    };
    if let Some(literal) = literal {
        for (i, expected) in literal.iter().enumerate().skip(1) {
            match body.get(start + i) {
                Some(b) if b == expected => continue,
                Some(_) => {
                    let matched = String::from_utf8_lossy(&literal[..i]).into_owned();
                    return Some(invalid_token(body, start + i, matched));
                }
                // Ran out mid-literal: serde's "EOF while parsing" stands.
                None => return None,
            }
        }
        return None;
    }
    if matches!(first, b'{' | b'[' | b'"' | b'-' | b'0'..=b'9' | b']' | b'}') {
        return None;
    }
    if first < 0x20 {
        return None;
    }
    // Jackson reads the byte as a Latin-1 char here (`_handleUnexpectedValue`).
    let c = char::from(first);
    if is_identifier_start(c) {
        return Some(invalid_token(body, start + 1, c.to_string()));
    }
    Some((
        format!(
            "Unexpected character ({}): expected a valid value {VALID_VALUES}",
            char_desc(c)
        ),
        start,
    ))
}

/// Jackson's `_reportInvalidToken`: the matched part plus the identifier characters that follow
/// (decoded as UTF-8; a byte that cannot start a UTF-8 sequence is its own error).
fn invalid_token(body: &[u8], mut at: usize, mut token: String) -> (String, usize) {
    while at < body.len() {
        let (decoded, len) = match decode_utf8(&body[at..]) {
            Ok(d) => d,
            Err(message) => return (message, at + 1),
        };
        at += len;
        if !is_identifier_part(decoded) {
            break;
        }
        token.push(decoded);
        if token.chars().count() >= 256 {
            token.push_str("...");
            break;
        }
    }
    (
        format!("Unrecognized token '{token}': was expecting {VALID_VALUES}"),
        at,
    )
}

/// One UTF-8 character at the start of `bytes`, or Jackson's message for a bad sequence.
fn decode_utf8(bytes: &[u8]) -> Result<(char, usize), String> {
    let b = bytes[0];
    let len = match b {
        0x00..=0x7f => return Ok((char::from(b), 1)),
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => return Err(format!("Invalid UTF-8 start byte 0x{b:x}")),
    };
    for &next in bytes.iter().take(len).skip(1) {
        if next & 0xc0 != 0x80 {
            return Err(format!("Invalid UTF-8 middle byte 0x{next:x}"));
        }
    }
    match bytes.get(..len).and_then(|s| std::str::from_utf8(s).ok()) {
        Some(s) => Ok((s.chars().next().unwrap_or('\u{fffd}'), len)),
        None => Err(format!("Invalid UTF-8 start byte 0x{b:x}")),
    }
}

/// Java's `Character.isJavaIdentifierStart`, near enough: letters, `$`, `_` and currency signs.
fn is_identifier_start(c: char) -> bool {
    c.is_alphabetic() || c == '$' || c == '_' || matches!(c, '\u{a2}'..='\u{a5}')
}

/// Java's `Character.isJavaIdentifierPart`, near enough: adds digits and the ignorable controls.
fn is_identifier_part(c: char) -> bool {
    is_identifier_start(c)
        || c.is_numeric()
        || matches!(c, '\u{0}'..='\u{8}' | '\u{e}'..='\u{1b}' | '\u{7f}'..='\u{9f}')
}

/// Jackson's `_getCharDesc`.
fn char_desc(c: char) -> String {
    let code = u32::from(c);
    if c.is_control() {
        format!("(CTRL-CHAR, code {code})")
    } else if code > 255 {
        format!("'{c}' (code {code} / 0x{code:x})")
    } else {
        format!("'{c}' (code {code})")
    }
}

/// `message` with Jackson's location of byte offset `at` (1-based line and column, in bytes).
fn with_location(message: String, body: &[u8], at: usize) -> String {
    let before = &body[..at.min(body.len())];
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let row_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let column = at - row_start + 1;
    format!(
        "{message}\n at [Source: REDACTED (`StreamReadFeature.INCLUDE_SOURCE_IN_LOCATION` disabled); line: {line}, column: {column}]"
    )
}

/// serde's message without its own " at line L column C".
fn strip_serde_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_for(body: &[u8]) -> String {
        let e = serde_json::from_slice::<serde::de::IgnoredAny>(body).unwrap_err();
        parse_error(body, &e)
    }

    const SOURCE: &str =
        "\n at [Source: REDACTED (`StreamReadFeature.INCLUDE_SOURCE_IN_LOCATION` disabled);";

    #[test]
    fn the_two_payloads_aws_recorded() {
        // LocalStack's test_lambda_invoke_payload_encoding_error, AWS's recorded answers.
        assert_eq!(
            error_for(b"n\x87r\x9e\xe9\xb5\xd7I\xee\x9bmt"),
            format!("Invalid UTF-8 start byte 0x87{SOURCE} line: 1, column: 3]")
        );
        assert_eq!(
            error_for(b"\x99\xeb,j\x07\xa1zYh"),
            format!(
                "Unexpected character ((CTRL-CHAR, code 153)): expected a valid value \
                 (JSON String, Number, Array, Object or token 'null', 'true' or 'false'){SOURCE} line: 1, column: 1]"
            )
        );
    }

    #[test]
    fn bare_words_and_misspelt_literals_are_unrecognized_tokens() {
        assert_eq!(
            error_for(b"hello"),
            format!(
                "Unrecognized token 'hello': was expecting (JSON String, Number, Array, Object \
                 or token 'null', 'true' or 'false'){SOURCE} line: 1, column: 6]"
            )
        );
        assert!(error_for(b" trux ").starts_with("Unrecognized token 'trux': "));
        assert!(error_for(b"nope}").starts_with("Unrecognized token 'nope': "));
    }

    #[test]
    fn other_characters_are_described_as_jackson_does() {
        assert!(error_for(b"\n\n  +1").starts_with("Unexpected character ('+' (code 43)): "));
        assert!(error_for(b"\n\n  +1").ends_with("line: 3, column: 3]"));
        assert_eq!(char_desc('\u{2603}'), "'\u{2603}' (code 9731 / 0x2603)");
    }

    #[test]
    fn errors_inside_a_document_keep_serdes_words_at_its_place() {
        let m = error_for(b"{\"a\": }");
        assert_eq!(m, format!("expected value{SOURCE} line: 1, column: 7]"));
    }
}
