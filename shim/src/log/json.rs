//! The two pieces of Go's encoding that docker's json-file lines are made
//! of, done by hand because they run once per line at full output speed:
//! the string escaping of the `log` field and the RFC3339Nano `time`.

use chrono::{DateTime, SecondsFormat, Utc};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// What a byte below 0x80 becomes: 0 copied as is, b'u' as `\u00XX`, any
/// other the letter after a backslash. Bytes from 0x80 are UTF-8 and
/// decided per character.
const ASCII_ESCAPES: [u8; 128] = {
    let mut t = [0u8; 128];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[b'\n' as usize] = b'n';
    t[b'\r' as usize] = b'r';
    t[b'\t' as usize] = b't';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    // Go's HTML-safe escaping, which docker's json-file has always had.
    t[b'<' as usize] = b'u';
    t[b'>' as usize] = b'u';
    t[b'&' as usize] = b'u';
    t[0x7f] = 0;
    t
};

/// Appends `s` escaped as the inside of a JSON string, byte for byte as Go's
/// encoding/json writes it: invalid UTF-8 becomes `\ufffd` once per bad
/// byte (Go decodes a bad byte as a 1-byte RuneError), U+2028 and U+2029
/// are escaped so the line is also valid JavaScript.
pub(crate) fn escape_into(out: &mut Vec<u8>, s: &[u8]) {
    escape(out, s, false);
}

/// [`escape_into`] up to and including the first newline: the bytes of
/// `s` consumed, and whether they end with that newline. One pass finds
/// the line and escapes it.
pub(crate) fn escape_line(out: &mut Vec<u8>, s: &[u8]) -> (usize, bool) {
    escape(out, s, true)
}

fn escape(out: &mut Vec<u8>, s: &[u8], stop_at_newline: bool) -> (usize, bool) {
    let mut start = 0;
    let mut i = 0;
    loop {
        i = skip_plain(s, i);
        if i >= s.len() {
            break;
        }
        let b = s[i];
        if b < 0x80 {
            out.extend_from_slice(&s[start..i]);
            match ASCII_ESCAPES[b as usize] {
                b'u' => out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[(b >> 4) as usize],
                    HEX[(b & 0xf) as usize],
                ]),
                e => out.extend_from_slice(&[b'\\', e]),
            }
            i += 1;
            start = i;
            if b == b'\n' && stop_at_newline {
                return (i, true);
            }
            continue;
        }
        match utf8_char(&s[i..]) {
            Some((c, len)) if c == 0x2028 || c == 0x2029 => {
                out.extend_from_slice(&s[start..i]);
                out.extend_from_slice(if c == 0x2028 { b"\\u2028" } else { b"\\u2029" });
                i += len;
                start = i;
            }
            Some((_, len)) => i += len,
            None => {
                out.extend_from_slice(&s[start..i]);
                out.extend_from_slice(b"\\ufffd");
                i += 1;
                start = i;
            }
        }
    }
    out.extend_from_slice(&s[start..]);
    (s.len(), false)
}

/// The index of the first byte from `i` on that is not copied as is: an
/// ASCII byte to escape, or any non-ASCII one (its character is decided by
/// the caller). Log text is mostly plain, so this is where the time goes.
#[inline]
fn skip_plain(s: &[u8], mut i: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of the x86_64 baseline, and every load is
        // unaligned and of 16 bytes within `s` (i + 16 <= len).
        unsafe {
            // Signed compare: bytes from 0x80 are negative, so one test
            // catches control characters and non-ASCII alike.
            let below = _mm_set1_epi8(0x20);
            let specials = [b'"', b'\\', b'<', b'>', b'&'].map(|c| _mm_set1_epi8(c as i8));
            while i + 16 <= s.len() {
                let v = _mm_loadu_si128(s.as_ptr().add(i) as *const __m128i);
                let mut m = _mm_cmplt_epi8(v, below);
                for c in specials {
                    m = _mm_or_si128(m, _mm_cmpeq_epi8(v, c));
                }
                let bits = _mm_movemask_epi8(m);
                if bits != 0 {
                    return i + bits.trailing_zeros() as usize;
                }
                i += 16;
            }
        }
    }
    while i < s.len() && s[i] < 0x80 && ASCII_ESCAPES[s[i] as usize] == 0 {
        i += 1;
    }
    i
}

/// The code point and length of the UTF-8 character `s` starts with, or
/// None when its first byte does not start a valid one (overlong forms,
/// surrogates and values past U+10FFFF included, as Go's utf8 rules).
fn utf8_char(s: &[u8]) -> Option<(u32, usize)> {
    let b0 = *s.first()?;
    let cont = |i: usize, lo: u8, hi: u8| -> Option<u32> {
        let b = *s.get(i)?;
        (lo..=hi).contains(&b).then_some(u32::from(b & 0x3f))
    };
    match b0 {
        0xc2..=0xdf => Some(((u32::from(b0 & 0x1f) << 6) | cont(1, 0x80, 0xbf)?, 2)),
        0xe0..=0xef => {
            let (lo, hi) = match b0 {
                0xe0 => (0xa0, 0xbf),
                0xed => (0x80, 0x9f),
                _ => (0x80, 0xbf),
            };
            let c = (u32::from(b0 & 0x0f) << 12) | (cont(1, lo, hi)? << 6) | cont(2, 0x80, 0xbf)?;
            Some((c, 3))
        }
        0xf0..=0xf4 => {
            let (lo, hi) = match b0 {
                0xf0 => (0x90, 0xbf),
                0xf4 => (0x80, 0x8f),
                _ => (0x80, 0xbf),
            };
            let c = (u32::from(b0 & 0x07) << 18)
                | (cont(1, lo, hi)? << 12)
                | (cont(2, 0x80, 0xbf)? << 6)
                | cont(3, 0x80, 0xbf)?;
            Some((c, 4))
        }
        _ => None,
    }
}

/// Go's `time.RFC3339Nano` in UTC, which json-file lines carry: trailing
/// zeros of the fraction dropped, and the dot too when nothing is left.
pub(crate) fn go_rfc3339_nano(t: DateTime<Utc>) -> String {
    let mut s = t.to_rfc3339_opts(SecondsFormat::Nanos, true);
    // "....ss.nnnnnnnnnZ": trim inside the fraction only.
    s.pop();
    while s.ends_with('0') {
        s.pop();
    }
    if s.ends_with('.') {
        s.pop();
    }
    s.push('Z');
    s
}

/// `RFC3339NanoFixed` (always nine digits), what `docker logs -t` prints so
/// that the timestamps line up.
pub(crate) fn rfc3339_nano_fixed(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn esc(s: &[u8]) -> String {
        let mut out = Vec::new();
        escape_into(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    // Expected strings are what Go 1.19's json.Marshal(string(b)) printed
    // for the same bytes, without the surrounding quotes.
    #[test]
    fn escapes_as_go_encoding_json() {
        assert_eq!(esc(b"plain text"), "plain text");
        assert_eq!(esc(b"say \"hi\"\\n\n"), r#"say \"hi\"\\n\n"#);
        assert_eq!(esc(b"a\tb\rc\n"), r"a\tb\rc\n");
        assert_eq!(
            esc(b"\x00\x01\x08\x0b\x0c\x1b[0m\x1f"),
            r"\u0000\u0001\u0008\u000b\u000c\u001b[0m\u001f"
        );
        assert_eq!(
            esc(b"<a href=\"x\">&amp;</a>"),
            r#"\u003ca href=\"x\"\u003e\u0026amp;\u003c/a\u003e"#
        );
        assert_eq!(esc(b"\x7f"), "\x7f");
        assert_eq!(esc("héllo wörld ✓ 😀".as_bytes()), "héllo wörld ✓ 😀");
        assert_eq!(esc("a\u{2028}b\u{2029}c".as_bytes()), r"a\u2028b\u2029c");
    }

    #[test]
    fn invalid_utf8_is_one_replacement_per_bad_byte() {
        assert_eq!(esc(b"a\xffb"), r"a\ufffdb");
        // A truncated 3-byte sequence: Go sees two bad bytes.
        assert_eq!(esc(b"\xe2\x82x"), r"\ufffd\ufffdx");
        // Overlong '/' and an encoded surrogate.
        assert_eq!(esc(b"\xc0\xaf"), r"\ufffd\ufffd");
        assert_eq!(esc(b"\xed\xa0\x80"), r"\ufffd\ufffd\ufffd");
        // Past U+10FFFF.
        assert_eq!(esc(b"\xf4\x90\x80\x80"), r"\ufffd\ufffd\ufffd\ufffd");
        // Cut at the end of the input, as a 16 KiB split can leave it.
        assert_eq!(esc("€".as_bytes()[..2].as_ref()), r"\ufffd\ufffd");
    }

    #[test]
    fn escape_line_stops_after_the_newline() {
        let mut out = Vec::new();
        assert_eq!(escape_line(&mut out, b"ab\ncd\n"), (3, true));
        assert_eq!(out, br"ab\n");
        out.clear();
        assert_eq!(escape_line(&mut out, b"no newline <"), (12, false));
        assert_eq!(out, br"no newline \u003c");
        // Past the 16-byte fast path too.
        let long = [b"x".repeat(40), b"\n".to_vec(), b"y".repeat(5)].concat();
        out.clear();
        assert_eq!(escape_line(&mut out, &long), (41, true));
        assert_eq!(out.len(), 42);
    }

    #[test]
    fn fast_path_finds_specials_at_every_position() {
        for pos in 0..40 {
            for special in [b'\x01', b'"', b'\\', b'<', b'>', b'&', 0xff] {
                let mut s = vec![b'a'; 40];
                s[pos] = special;
                assert_eq!(skip_plain(&s, 0), pos, "byte {special:#x} at {pos}");
            }
        }
        assert_eq!(skip_plain(&[b'a'; 40], 0), 40);
        assert_eq!(skip_plain(b"\x7f~ ", 0), 3);
    }

    #[test]
    fn escaped_output_is_json_that_decodes_back() {
        let raw = "tab\t \"q\" <&> \u{1} \u{2028} ünï";
        let mut out = b"\"".to_vec();
        escape_into(&mut out, raw.as_bytes());
        out.push(b'"');
        let back: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, raw);
    }

    #[test]
    fn time_formats() {
        let t = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(go_rfc3339_nano(t), "2024-01-02T03:04:05Z");
        assert_eq!(rfc3339_nano_fixed(t), "2024-01-02T03:04:05.000000000Z");
        let t = t + chrono::Duration::nanoseconds(120_000_000);
        assert_eq!(go_rfc3339_nano(t), "2024-01-02T03:04:05.12Z");
        let t = t + chrono::Duration::nanoseconds(7);
        assert_eq!(go_rfc3339_nano(t), "2024-01-02T03:04:05.120000007Z");
        assert_eq!(rfc3339_nano_fixed(t), "2024-01-02T03:04:05.120000007Z");
    }
}
