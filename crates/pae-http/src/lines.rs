//! A bounded line splitter for line-based bodies (NDJSON, server-sent
//! events) whose cost is linear in the bytes fed: each byte is looked at
//! once when searching for line ends, and consumed lines are dropped from
//! the buffer only once they make up half of it, so the bytes moved are
//! bounded by the bytes consumed.

use std::fmt;

use pae_core::ProviderError;

use crate::body::too_large;
use crate::limits::ERROR_BODY_BYTES;

/// A line longer than the splitter's limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineTooLong {
    /// The limit, in bytes.
    pub limit: usize,
    /// The line's first bytes (at most [`ERROR_BODY_BYTES`]).
    pub start: Vec<u8>,
}

impl fmt::Display for LineTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a line is longer than the limit of {} bytes", self.limit)
    }
}

impl std::error::Error for LineTooLong {}

impl From<LineTooLong> for ProviderError {
    /// [`ProviderError::InvalidResponse`] with the line's beginning, as for
    /// a body above the limit.
    fn from(error: LineTooLong) -> Self {
        too_large(&error.start, error.limit)
    }
}

/// Splits bytes that arrive in pieces into lines, refusing any line longer
/// than a limit.
///
/// [`new`](Self::new) ends lines at LF only (NDJSON; a CR before it stays
/// part of the line, which JSON parsers read as whitespace);
/// [`any_line_end`](Self::any_line_end) ends them at CRLF, LF or a lone CR,
/// as server-sent events do, with a CRLF split between two pieces still
/// one line end. Lines come back without their line end.
///
/// ```
/// use pae_http::LineSplitter;
///
/// let mut lines = LineSplitter::new(1024);
/// lines.push(b"{\"a\":1}\n{\"b\"");
/// assert_eq!(lines.next_line(), Some(Ok(b"{\"a\":1}".to_vec())));
/// assert_eq!(lines.next_line(), None);
/// lines.push(b":2}\n");
/// assert_eq!(lines.next_line(), Some(Ok(b"{\"b\":2}".to_vec())));
/// ```
#[derive(Debug, Clone)]
pub struct LineSplitter {
    buffer: Vec<u8>,
    /// Where the next line starts in `buffer`.
    start: usize,
    /// Bytes of `buffer` before this offset (from `start`) hold no line end.
    scanned: usize,
    limit: usize,
    any_line_end: bool,
    /// The last line ended with a CR, so an LF right after it ends nothing.
    after_cr: bool,
    overflowed: bool,
    /// Bytes searched and moved, for the test that keeps this linear.
    #[cfg(test)]
    work: usize,
}

impl LineSplitter {
    /// A splitter of LF-terminated lines of at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            buffer: Vec::new(),
            start: 0,
            scanned: 0,
            limit,
            any_line_end: false,
            after_cr: false,
            overflowed: false,
            #[cfg(test)]
            work: 0,
        }
    }

    /// A splitter of lines of at most `limit` bytes that end with CRLF, LF
    /// or a lone CR.
    pub fn any_line_end(limit: usize) -> Self {
        Self {
            any_line_end: true,
            ..Self::new(limit)
        }
    }

    /// Adds bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.overflowed {
            return;
        }
        // Drop consumed lines once they are half the buffer: each byte is
        // moved at most once per time the buffer doubles, so the moving
        // stays linear in the bytes fed.
        if self.start > 0 && self.start * 2 >= self.buffer.len() {
            #[cfg(test)]
            {
                self.work += self.buffer.len() - self.start;
            }
            self.buffer.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete line, `None` when no complete line is buffered, or
    /// an error for a line (complete or not) longer than the limit; after
    /// that error the splitter takes and returns nothing more.
    ///
    /// # Errors
    /// [`LineTooLong`] with the line's beginning.
    pub fn next_line(&mut self) -> Option<Result<Vec<u8>, LineTooLong>> {
        if self.overflowed {
            return None;
        }
        if self.after_cr && self.start < self.buffer.len() {
            self.after_cr = false;
            if self.buffer[self.start] == b'\n' {
                self.start += 1;
                self.scanned = self.scanned.max(self.start);
            }
        }
        let any = self.any_line_end;
        let found = self.buffer[self.scanned..]
            .iter()
            .position(|&b| b == b'\n' || (any && b == b'\r'));
        #[cfg(test)]
        {
            self.work += found.map_or(self.buffer.len() - self.scanned, |at| at + 1);
        }
        let Some(offset) = found else {
            self.scanned = self.buffer.len();
            return (self.pending().len() > self.limit)
                .then(|| Err(self.overflow(self.buffer.len())));
        };
        let end = self.scanned + offset;
        if end - self.start > self.limit {
            return Some(Err(self.overflow(end)));
        }
        let line = self.buffer[self.start..end].to_vec();
        self.after_cr = self.buffer[end] == b'\r';
        self.start = end + 1;
        self.scanned = self.start;
        Some(Ok(line))
    }

    fn overflow(&mut self, end: usize) -> LineTooLong {
        self.overflowed = true;
        let line = &self.buffer[self.start..end];
        LineTooLong {
            limit: self.limit,
            start: line[..line.len().min(ERROR_BODY_BYTES)].to_vec(),
        }
    }

    /// The bytes of the line not finished yet.
    pub fn pending(&self) -> &[u8] {
        &self.buffer[self.start..]
    }

    /// Takes the bytes of the line not finished yet (at the end of a body
    /// whose last line has no line end).
    pub fn take_pending(&mut self) -> Vec<u8> {
        let rest = self.buffer.split_off(self.start);
        self.buffer.clear();
        self.start = 0;
        self.scanned = 0;
        rest
    }

    /// Whether a line longer than the limit was seen.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(splitter: &mut LineSplitter, parts: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        for part in parts {
            splitter.push(part);
            while let Some(line) = splitter.next_line() {
                lines.push(line.unwrap());
            }
        }
        lines
    }

    #[test]
    fn lines_end_at_lf_and_keep_a_cr() {
        let mut lines = LineSplitter::new(64);
        assert_eq!(
            split(&mut lines, &[b"a\r\nb", b"c\n\nd"]),
            [&b"a\r"[..], b"bc", b""]
        );
        assert_eq!(lines.pending(), b"d");
        assert_eq!(lines.take_pending(), b"d");
        assert_eq!(lines.pending(), b"");
    }

    #[test]
    fn any_line_end_takes_crlf_split_across_pushes_as_one() {
        let mut lines = LineSplitter::any_line_end(64);
        assert_eq!(
            split(&mut lines, &[b"a\r", b"\nb\r\rc\r\n", b"\r\n"]),
            [&b"a"[..], b"b", b"", b"c", b""]
        );
        // A CR then an LF in the next push is one line end, not two.
        let mut lines = LineSplitter::any_line_end(64);
        assert_eq!(
            split(&mut lines, &[b"a\r", b"\n", b"\r", b"\n"]),
            [&b"a"[..], b""]
        );
    }

    #[test]
    fn lines_longer_than_the_limit_are_refused_complete_or_not() {
        let mut lines = LineSplitter::new(4);
        lines.push(b"1234\n12345\nok\n");
        assert_eq!(lines.next_line(), Some(Ok(b"1234".to_vec())));
        let error = lines.next_line().unwrap().unwrap_err();
        assert_eq!(error.start, b"12345");
        assert!(lines.overflowed());
        assert_eq!(lines.next_line(), None, "nothing after an overflow");

        let mut partial = LineSplitter::new(4);
        partial.push(b"123");
        assert_eq!(partial.next_line(), None);
        partial.push(b"45");
        let error = partial.next_line().unwrap().unwrap_err();
        assert_eq!(error.start, b"12345");
        let provider: ProviderError = error.into();
        assert!(
            matches!(&provider, ProviderError::InvalidResponse { body, reason } if body == "12345" && reason.contains("4 bytes")),
            "{provider:?}"
        );
    }

    #[test]
    fn splitting_is_linear_in_the_bytes_fed() {
        // Issue 17: taking each line off the front of the buffer moved the
        // rest, so a buffer of many lines cost quadratic time.
        let line = b"{\"message\":{\"content\":\"x\"},\"done\":false}\n";
        let many: Vec<u8> = line
            .iter()
            .copied()
            .cycle()
            .take(line.len() * 50_000)
            .collect();
        let mut lines = LineSplitter::new(1 << 20);
        assert_eq!(split(&mut lines, &[&many]).len(), 50_000);
        assert!(
            lines.work <= 2 * many.len(),
            "{} for {}",
            lines.work,
            many.len()
        );

        // One long line arriving a byte at a time is searched once, not
        // once per byte.
        let long = vec![b'x'; 100_000];
        let mut lines = LineSplitter::new(1 << 20);
        for byte in long.iter().chain(b"\n") {
            lines.push(&[*byte]);
            while let Some(line) = lines.next_line() {
                assert_eq!(line.unwrap().len(), long.len());
            }
        }
        assert!(lines.work <= 2 * (long.len() + 1), "{}", lines.work);

        // Many short pieces with line ends in between: dropping consumed
        // lines moves each byte a bounded number of times.
        let mut lines = LineSplitter::any_line_end(1 << 20);
        let mut fed = 0;
        for _ in 0..20_000 {
            for piece in [&b"data: {\"a\""[..], b":1}\r\n\r", b"\n"] {
                fed += piece.len();
                lines.push(piece);
                while lines.next_line().is_some() {}
            }
        }
        assert!(lines.work <= 3 * fed, "{} for {fed}", lines.work);
    }

    proptest::proptest! {
        #[test]
        fn splitting_anywhere_gives_the_same_lines(
            data in proptest::collection::vec(proptest::sample::select(vec![b'a', b'\n', b'\r', b'x']), 0..200),
            cuts in proptest::collection::vec(0usize..200, 0..6),
            any in proptest::bool::ANY,
        ) {
            let make = || if any { LineSplitter::any_line_end(usize::MAX) } else { LineSplitter::new(usize::MAX) };
            let mut whole = make();
            let expected = split(&mut whole, &[&data]);
            let mut points: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            points.sort_unstable();
            let mut pieces = Vec::new();
            let mut start = 0;
            for point in points.into_iter().chain([data.len()]) {
                pieces.push(&data[start..point]);
                start = point;
            }
            let mut split_up = make();
            proptest::prop_assert_eq!(split(&mut split_up, &pieces), expected);
            proptest::prop_assert_eq!(split_up.pending(), whole.pending());
        }
    }
}
