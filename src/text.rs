//! Text from the network made safe to print: control characters and bidi overrides escaped
//!
//! A DHCP server, a DNS answer or an HTTP peer can put any octets in a name or a message. Printed
//! as is, ESC sequences clear the operator's screen or fake lines of output, a newline forges a
//! log line, and Unicode bidi overrides (the "Trojan Source" characters) reorder what is shown.
//! Everything `probe`, `leases`, the device journal and the logs print from the network goes
//! through this module: [`printable`] / [`Printable`] for text, [`to_json_string`] /
//! [`to_json_string_pretty`] for JSON.
//!
//! Text form: the escaped characters (and the backslash, so the escape is unambiguous) are
//! written as Rust writes them (`\u{1b}`, `\n`, `\t`, `\r`, `\\`). JSON form: the same
//! characters as `\uXXXX` escapes, so a JSON reader gets the original string back unchanged.

use std::borrow::Cow;
use std::fmt;
use std::io;

use serde::Serialize;

/// Whether `c` must not reach a terminal or a log line unescaped: C0 and C1 control characters
/// and DEL (Unicode `Cc`), the explicit bidi formatting characters of Unicode UAX #9 (ALM,
/// LRM, RLM, LRE, RLE, PDF, LRO, RLO, LRI, RLI, FSI, PDI) and the line and paragraph
/// separators U+2028/U+2029.
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
                | '\u{2028}'
                | '\u{2029}'
        )
}

fn write_escaped(f: &mut impl fmt::Write, s: &str) -> fmt::Result {
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if c == '\\' || needs_escape(c) {
            f.write_str(&s[start..i])?;
            match c {
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                _ => write!(f, "\\u{{{:x}}}", c as u32)?,
            }
            start = i + c.len_utf8();
        }
    }
    f.write_str(&s[start..])
}

/// `s` safe to print: every character of [`needs_escape`], and the backslash, escaped
/// (`"sw\u{1b}[2J"` becomes `sw\u{1b}[2J` as literal text). Borrowed when nothing needed it.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c == '\\' || needs_escape(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    let _ = write_escaped(&mut out, s);
    Cow::Owned(out)
}

/// Octets from the network as text: invalid UTF-8 replaced (U+FFFD), then [`printable`].
pub fn printable_bytes(b: &[u8]) -> String {
    printable(&String::from_utf8_lossy(b)).into_owned()
}

/// Displays a string as [`printable`] does, without allocating: for log fields
/// (`info!(hostname = %Printable(&h), …)`) and `format!`.
#[derive(Clone, Copy, Debug)]
pub struct Printable<'a>(pub &'a str);

impl fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_escaped(f, self.0)
    }
}

/// A serde_json formatter that also writes DEL, C1 controls, bidi formatting characters and
/// U+2028/U+2029 as `\uXXXX` (serde_json escapes only C0 controls, `"` and `\`). The JSON value
/// is unchanged; only its text is safe to show on a terminal.
struct SafeFormatter<F>(F);

impl<F: serde_json::ser::Formatter> serde_json::ser::Formatter for SafeFormatter<F> {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        // fast path: plain ASCII text has nothing serde_json has not escaped already
        if fragment.bytes().all(|b| b < 0x7f) {
            return w.write_all(fragment.as_bytes());
        }
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if needs_escape(c) {
                w.write_all(&fragment.as_bytes()[start..i])?;
                write!(w, "\\u{:04x}", c as u32)?;
                start = i + c.len_utf8();
            }
        }
        w.write_all(&fragment.as_bytes()[start..])
    }

    // PrettyFormatter's layout, forwarded (CompactFormatter keeps every default)
    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn end_object_key<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_key(w)
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_value(w)
    }
}

fn to_json_with<T: Serialize + ?Sized, F: serde_json::ser::Formatter>(
    v: &T,
    f: F,
) -> serde_json::Result<String> {
    let mut out = Vec::with_capacity(128);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, SafeFormatter(f));
    v.serialize(&mut ser)?;
    // serde_json writes only UTF-8 and our escapes are ASCII
    String::from_utf8(out).map_err(|e| serde::ser::Error::custom(e.to_string()))
}

/// One-line JSON of `v` with terminal-unsafe characters escaped (see the module doc).
///
/// # Errors
/// What `serde_json::to_string` would return (a map with non-string keys, a failing
/// `Serialize`).
pub fn to_json_string<T: Serialize + ?Sized>(v: &T) -> serde_json::Result<String> {
    to_json_with(v, serde_json::ser::CompactFormatter)
}

/// Indented JSON of `v` (as `serde_json::to_string_pretty`) with terminal-unsafe characters
/// escaped.
///
/// # Errors
/// As [`to_json_string`].
pub fn to_json_string_pretty<T: Serialize + ?Sized>(v: &T) -> serde_json::Result<String> {
    to_json_with(v, serde_json::ser::PrettyFormatter::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str =
        "sw\u{1b}[2J\u{1b}]0;owned\u{7}\r\nfake: ok\t\u{9b}1m\u{202e}txt.exe\u{2066}\\u{1b}\u{2028}";

    #[test]
    fn text_escapes_controls_bidi_and_backslash() {
        let p = printable(HOSTILE);
        assert_eq!(
            p,
            "sw\\u{1b}[2J\\u{1b}]0;owned\\u{7}\\r\\nfake: ok\\t\\u{9b}1m\\u{202e}txt.exe\\u{2066}\\\\u{1b}\\u{2028}"
        );
        assert!(!p.chars().any(needs_escape));
        assert_eq!(Printable(HOSTILE).to_string(), p);
        assert!(matches!(printable("sw-12.example"), Cow::Borrowed(_)));
        assert_eq!(printable("naïve 名前"), "naïve 名前");
        assert_eq!(printable_bytes(b"a\xffb\x1b"), "a\u{fffd}b\\u{1b}");
    }

    #[test]
    fn json_escapes_more_than_serde_json_and_keeps_the_value() {
        let v = serde_json::json!({ "domain": HOSTILE, "n": [1, 2] });
        for text in [
            to_json_string(&v).unwrap(),
            to_json_string_pretty(&v).unwrap(),
        ] {
            assert!(!text.chars().any(needs_escape) || text.contains('\n'));
            let no_layout = text.replace('\n', "");
            assert!(!no_layout.chars().any(needs_escape), "{text}");
            let back: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(back, v);
        }
        let text = to_json_string(&v).unwrap();
        assert!(text.contains("\\u009b1m\\u202etxt.exe\\u2066"), "{text}");
        assert_eq!(
            to_json_string_pretty(&v).unwrap(),
            serde_json::to_string_pretty(&v)
                .unwrap()
                .replace('\u{9b}', "\\u009b")
                .replace('\u{202e}', "\\u202e")
                .replace('\u{2066}', "\\u2066")
                .replace('\u{2028}', "\\u2028")
        );
    }
}
