//! A server-sent events decoder: bytes in, events out, as the HTML standard
//! defines the format, with a bound on lines and events.

use crate::lines::LineSplitter;

/// One dispatched event: its type (`event:` field, when given) and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, when the event had one.
    pub name: Option<String>,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
}

/// Splits a byte stream into server-sent events as the HTML standard
/// defines them: lines end with CRLF, LF or a lone CR; a leading byte-order
/// mark is dropped; `data:` lines (with or without a space) are joined;
/// comments and unknown fields are ignored.
///
/// ```
/// use pae_http::SseDecoder;
///
/// let mut decoder = SseDecoder::with_limit(1024);
/// assert!(decoder.push(b"data: {\"a\"").is_empty());
/// let events = decoder.push(b":1}\r\n\r\n: keep-alive\n\n");
/// assert_eq!(events[0].data, "{\"a\":1}");
/// assert_eq!(events.len(), 1);
/// ```
#[derive(Debug)]
pub struct SseDecoder {
    lines: LineSplitter,
    data: String,
    name: Option<String>,
    has_data: bool,
    /// No line has ended yet (a byte-order mark may start it).
    first_line: bool,
    /// Whether any line had the shape of an event-stream line (a comment or
    /// a known field), as opposed to a body that is not an event stream.
    saw_field: bool,
    /// The longest line or event accepted.
    limit: usize,
    overflowed: bool,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::with_limit(usize::MAX)
    }
}

const BOM: &[u8] = "\u{feff}".as_bytes();

impl SseDecoder {
    /// A decoder that refuses lines and events longer than `limit` bytes.
    pub fn with_limit(limit: usize) -> Self {
        Self {
            lines: LineSplitter::any_line_end(limit),
            data: String::new(),
            name: None,
            has_data: false,
            first_line: true,
            saw_field: false,
            limit,
            overflowed: false,
        }
    }

    /// Feeds bytes; returns every event they complete. Once a line or an
    /// event grows beyond the limit, nothing more is decoded (see
    /// [`overflowed`](Self::overflowed)).
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        if self.overflowed {
            return events;
        }
        self.lines.push(bytes);
        while let Some(line) = self.lines.next_line() {
            match line {
                Ok(line) => self.line_done(&line, &mut events),
                Err(_) => self.overflowed = true,
            }
            if self.overflowed {
                break;
            }
        }
        events
    }

    /// Whether bytes of an unfinished event are buffered.
    pub fn has_partial(&self) -> bool {
        self.has_data || !self.lines.pending().is_empty()
    }

    /// Whether a line or an event grew beyond the limit (nothing is decoded
    /// after that).
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Whether any line looked like part of an event stream.
    pub fn saw_field(&self) -> bool {
        self.saw_field
    }

    fn line_done(&mut self, line: &[u8], events: &mut Vec<SseEvent>) {
        let line = if std::mem::take(&mut self.first_line) {
            line.strip_prefix(BOM).unwrap_or(line)
        } else {
            line
        };
        if line.is_empty() {
            if self.has_data {
                events.push(SseEvent {
                    name: self.name.take(),
                    data: std::mem::take(&mut self.data),
                });
                self.has_data = false;
            }
            self.name = None;
            return;
        }
        if line.first() == Some(&b':') {
            self.saw_field = true;
            return;
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "data" => {
                self.saw_field = true;
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
                if self.data.len() > self.limit {
                    self.overflowed = true;
                }
            }
            "event" => {
                self.saw_field = true;
                self.name = Some(value.to_owned());
            }
            "id" | "retry" => self.saw_field = true,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(parts: &[&str]) -> Vec<String> {
        let mut decoder = SseDecoder::default();
        parts
            .iter()
            .flat_map(|p| decoder.push(p.as_bytes()))
            .map(|event| event.data)
            .collect()
    }

    #[test]
    fn events_split_across_reads_and_line_endings() {
        assert_eq!(
            decode(&["data: {\"a\"", ":1}\r\n\r", "\ndata: [DONE]\n\n"]),
            ["{\"a\":1}", "[DONE]"]
        );
        assert_eq!(
            decode(&[": keep-alive\n\nevent: x\ndata:one\ndata: two\nid: 3\n\n"]),
            ["one\ntwo"]
        );
        assert!(decode(&["data: unfinished"]).is_empty());
    }

    #[test]
    fn lone_cr_crlf_split_across_reads_and_a_byte_order_mark() {
        assert_eq!(
            decode(&["\u{feff}data: a\r", "\ndata: b\r\r", "data: c\r\n", "\r\n"]),
            ["a\nb", "c"]
        );
        // A CR then an LF in the next read is one line end, not two.
        assert_eq!(decode(&["data: a\r", "\n", "\r", "\n"]), ["a"]);
        // A byte-order mark later in the stream is data, not skipped.
        assert_eq!(decode(&["data: x\n\n\u{feff}data: y\n\n"]), ["x"]);
    }

    #[test]
    fn event_names_are_kept_until_dispatch_and_fields_are_noticed() {
        let mut decoder = SseDecoder::default();
        let events = decoder.push(b"event: error\ndata: {}\n\ndata: plain\n\n");
        assert_eq!(events[0].name.as_deref(), Some("error"));
        assert_eq!(events[1].name, None);
        assert!(decoder.saw_field());
        let mut json = SseDecoder::default();
        assert!(json.push(b"{\"choices\": []}\n").is_empty());
        assert!(!json.saw_field(), "a JSON body is not an event stream");
    }

    #[test]
    fn lines_and_events_beyond_the_limit_overflow() {
        let mut decoder = SseDecoder::with_limit(8);
        assert!(decoder.push(b"data: 12\n\n").len() == 1);
        assert!(!decoder.overflowed());
        decoder.push(b"data: 123456789");
        assert!(decoder.overflowed());
        let mut joined = SseDecoder::with_limit(8);
        joined.push(b"data: 12345\ndata: 12345\n");
        assert!(joined.overflowed(), "data lines joined beyond the limit");
    }

    #[test]
    fn multibyte_text_split_between_reads_survives() {
        let text = "data: {\"é\":\"ü\"}\n\n";
        let bytes = text.as_bytes();
        let mut decoder = SseDecoder::default();
        let mut out = Vec::new();
        for byte in bytes {
            out.extend(decoder.push(&[*byte]).into_iter().map(|e| e.data));
        }
        assert_eq!(out, ["{\"é\":\"ü\"}"]);
    }

    const HELLO: &str = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n";
    const LO: &str = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n";

    proptest::proptest! {
        #[test]
        fn splitting_a_stream_anywhere_gives_the_same_events(
            cuts in proptest::collection::vec(0usize..200, 0..6),
            ending in 0usize..3,
        ) {
            let body = [HELLO, LO, "data: [DONE]\n\n"].concat();
            let body = format!("\u{feff}{}", body.replace('\n', ["\n", "\r\n", "\r"][ending]));
            let whole = SseDecoder::default().push(body.as_bytes());
            let mut points: Vec<usize> = cuts.into_iter().map(|c| c.min(body.len())).collect();
            points.sort_unstable();
            let mut decoder = SseDecoder::default();
            let mut events = Vec::new();
            let mut start = 0;
            for point in points.into_iter().chain([body.len()]) {
                events.extend(decoder.push(&body.as_bytes()[start..point]));
                start = point;
            }
            proptest::prop_assert_eq!(events, whole);
        }
    }
}
