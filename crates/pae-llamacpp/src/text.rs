//! Turning generated token pieces into text: incremental UTF-8 decoding,
//! stop sequences that may be split across tokens, and the part of the text
//! that is safe to stream before a stop sequence could still complete.

/// Decodes bytes that arrive in arbitrary pieces (a token may end in the
/// middle of a multi-byte character).
#[derive(Debug, Default)]
pub(crate) struct Utf8Decoder {
    pending: Vec<u8>,
}

impl Utf8Decoder {
    /// Feeds bytes and returns the text that is complete so far. Invalid
    /// sequences become U+FFFD instead of being dropped or stalling the
    /// decoder.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(text) => {
                    out.push_str(text);
                    self.pending.clear();
                    return out;
                }
                Err(err) => {
                    let valid = err.valid_up_to();
                    // `valid_up_to` bytes are valid UTF-8 by definition.
                    out.push_str(&String::from_utf8_lossy(&self.pending[..valid]));
                    match err.error_len() {
                        // An incomplete character at the end: wait for more.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// Whatever is left at the end of generation, lossily.
    pub(crate) fn finish(&mut self) -> String {
        let rest = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        rest
    }
}

/// Tracks generated text against a set of stop sequences.
#[derive(Debug)]
pub(crate) struct StopScanner {
    stops: Vec<String>,
    text: String,
    /// Bytes of `text` already handed out by [`Self::take_safe`].
    emitted: usize,
    /// Where the earliest stop sequence starts, once one has appeared.
    stopped_at: Option<usize>,
}

impl StopScanner {
    /// A scanner for these stop sequences (empty ones are ignored).
    pub(crate) fn new(stops: &[String]) -> Self {
        Self {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            text: String::new(),
            emitted: 0,
            stopped_at: None,
        }
    }

    /// Appends text. Returns `true` once a stop sequence has appeared; the
    /// text is then cut before the earliest one.
    pub(crate) fn push(&mut self, piece: &str) -> bool {
        if self.stopped_at.is_some() {
            return true;
        }
        // Only a window that can contain a new match needs searching: the
        // new piece plus the longest stop's length of old text.
        let longest = self.stops.iter().map(String::len).max().unwrap_or(0);
        let mut from = self.text.len().saturating_sub(longest);
        while !self.text.is_char_boundary(from) {
            from -= 1;
        }
        self.text.push_str(piece);
        let window = &self.text[from..];
        let earliest = self
            .stops
            .iter()
            .filter_map(|s| window.find(s.as_str()))
            .min();
        if let Some(at) = earliest {
            let at = from + at;
            self.text.truncate(at);
            self.emitted = self.emitted.min(at);
            self.stopped_at = Some(at);
            return true;
        }
        false
    }

    /// Whether a stop sequence appeared.
    pub(crate) fn stopped(&self) -> bool {
        self.stopped_at.is_some()
    }

    /// The text so far, cut before the earliest stop sequence.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// Text not handed out yet that can no longer turn into a stop sequence.
    /// A tail that is a prefix of some stop sequence is held back until the
    /// next piece shows whether the stop completes, unless `all` is set
    /// (generation is over).
    pub(crate) fn take_safe(&mut self, all: bool) -> String {
        let end = if all || self.stopped() {
            self.text.len()
        } else {
            self.text.len() - self.partial_stop_suffix()
        };
        if end <= self.emitted {
            return String::new();
        }
        let out = self.text[self.emitted..end].to_owned();
        self.emitted = end;
        out
    }

    /// The length of the longest suffix of the text that is a proper prefix
    /// of a stop sequence.
    fn partial_stop_suffix(&self) -> usize {
        self.stops
            .iter()
            .flat_map(|stop| {
                (1..stop.len())
                    .rev()
                    .filter(|&k| stop.is_char_boundary(k))
                    .find(|&k| self.text.ends_with(&stop[..k]))
            })
            .max()
            .unwrap_or(0)
    }
}

/// Whether `text` is one complete JSON object, array or string, so nothing
/// but whitespace may follow. Numbers and literals are not self-delimiting
/// (`1` may become `12`) and never count as complete.
pub(crate) fn is_complete_json_value(text: &str) -> bool {
    let trimmed = text.trim();
    let closes = matches!(trimmed.as_bytes().last(), Some(b'}' | b']' | b'"'));
    closes && serde_json::from_str::<serde_json::Value>(trimmed).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stops(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn decoder_joins_characters_split_across_pieces() {
        let bytes = "héllo→".as_bytes();
        let mut decoder = Utf8Decoder::default();
        let mut out = String::new();
        for b in bytes {
            out.push_str(&decoder.push(std::slice::from_ref(b)));
        }
        out.push_str(&decoder.finish());
        assert_eq!(out, "héllo→");
    }

    #[test]
    fn decoder_replaces_invalid_bytes_and_goes_on() {
        let mut decoder = Utf8Decoder::default();
        assert_eq!(decoder.push(b"a\xffb"), "a\u{fffd}b");
        assert_eq!(decoder.push(b"\xe2\x86"), "");
        assert_eq!(decoder.finish(), "\u{fffd}");
    }

    #[test]
    fn stop_split_across_pieces_is_found_and_cut() {
        let mut scanner = StopScanner::new(&stops(&["<END_OF_PLAN>"]));
        for piece in ["Plan: 1. a", "\n<END", "_OF", "_PLAN> extra"] {
            if scanner.push(piece) {
                break;
            }
        }
        assert!(scanner.stopped());
        assert_eq!(scanner.text(), "Plan: 1. a\n");
    }

    #[test]
    fn earliest_of_several_stops_wins() {
        let mut scanner = StopScanner::new(&stops(&["END", "Observation:"]));
        assert!(scanner.push("x Observation: y END"));
        assert_eq!(scanner.text(), "x ");
    }

    #[test]
    fn streaming_holds_back_a_possible_stop_prefix() {
        let mut scanner = StopScanner::new(&stops(&["\nObservation:"]));
        scanner.push("answer\nObs");
        assert_eq!(scanner.take_safe(false), "answer");
        scanner.push("cure");
        assert_eq!(scanner.take_safe(false), "\nObscure");
        scanner.push(" end\nObservation: z");
        assert_eq!(scanner.take_safe(false), " end");
        assert_eq!(scanner.take_safe(true), "");
    }

    #[test]
    fn empty_stops_are_ignored() {
        let mut scanner = StopScanner::new(&stops(&[""]));
        assert!(!scanner.push("text"));
        assert_eq!(scanner.take_safe(false), "text");
    }

    #[test]
    fn json_completeness() {
        assert!(is_complete_json_value("{\"a\": [1, 2]}"));
        assert!(is_complete_json_value("  [1]\n"));
        assert!(is_complete_json_value("\"x\""));
        assert!(!is_complete_json_value("{\"a\": [1, 2]"));
        assert!(!is_complete_json_value("12"));
        assert!(!is_complete_json_value("{\"a\": \"}\""));
    }

    proptest! {
        #[test]
        fn scanner_matches_cut_at_stop_for_any_split(
            text in "[a-cX\\n]{0,40}",
            stop_list in proptest::collection::vec("[a-cX\\n]{1,4}", 0..3),
            cuts in proptest::collection::vec(0usize..40, 0..6),
        ) {
            let mut points: Vec<usize> = cuts.into_iter().filter(|&c| c <= text.len()).collect();
            points.push(0);
            points.push(text.len());
            points.sort_unstable();
            points.dedup();
            let mut scanner = StopScanner::new(&stop_list);
            let mut streamed = String::new();
            for w in points.windows(2) {
                if scanner.push(&text[w[0]..w[1]]) {
                    break;
                }
                streamed.push_str(&scanner.take_safe(false));
            }
            streamed.push_str(&scanner.take_safe(true));
            let expected = pae_core::adapter::cut_at_stop(&text, &stop_list);
            prop_assert_eq!(scanner.text(), expected);
            prop_assert_eq!(streamed, expected);
        }

        #[test]
        fn decoder_never_panics_and_keeps_valid_text(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..5), 0..8)
        ) {
            let mut decoder = Utf8Decoder::default();
            let mut out = String::new();
            let mut all = Vec::new();
            for chunk in &chunks {
                out.push_str(&decoder.push(chunk));
                all.extend_from_slice(chunk);
            }
            out.push_str(&decoder.finish());
            if let Ok(valid) = std::str::from_utf8(&all) {
                prop_assert_eq!(out, valid);
            }
        }
    }
}
