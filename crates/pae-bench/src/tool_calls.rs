//! How the cost of one reply grows with its number of tool calls (issue 17:
//! 5k, 10k, 20k and 100k calls took 0.22 s, 0.86 s, 3.3 s and 291 s, a
//! quadratic cost). [`merge`] folds a streamed reply of `calls` tool calls,
//! each in three fragments, through pae-core's `StreamAccumulator`, as an
//! adapter's stream reaches the caller; [`ratio`] compares two sizes. A
//! linear path gives a ratio near `large / small` (4 for 5k against 20k), a
//! quadratic one its square (16).
//!
//! ```
//! use pae_bench::tool_calls::merge;
//! assert_eq!(merge(100).calls, 100);
//! ```

use std::time::{Duration, Instant};

use pae_core::{ChatChunk, StreamAccumulator, ToolCallDelta};

/// What one [`merge`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Figures {
    /// Tool calls in the merged reply.
    pub calls: usize,
    /// How long merging took.
    pub elapsed: Duration,
}

/// Merges a streamed reply of `calls` tool calls: the first fragment of
/// every call, then the rest of each call's arguments in two more passes
/// (fragments of one call need not arrive together).
pub fn merge(calls: usize) -> Figures {
    let fragment = |index: usize, arguments: &str, first: bool| ChatChunk {
        tool_calls: vec![ToolCallDelta {
            index,
            id: first.then(|| format!("call_{index}")),
            name: first.then(|| "calculator".to_owned()),
            arguments: arguments.to_owned(),
        }],
        ..ChatChunk::default()
    };
    let chunks: Vec<ChatChunk> = (0..calls)
        .map(|index| fragment(index, "{\"expression\":", true))
        .chain((0..calls).map(|index| fragment(index, "\"1+1\"", false)))
        .chain((0..calls).map(|index| fragment(index, "}", false)))
        .collect();
    let start = Instant::now();
    let mut accumulator = StreamAccumulator::new();
    for chunk in &chunks {
        accumulator.push(chunk);
    }
    let reply = accumulator.finish();
    Figures {
        calls: reply.message.tool_calls.len(),
        elapsed: start.elapsed(),
    }
}

/// How much longer merging `large` calls takes than merging `small`.
pub fn ratio(small: usize, large: usize) -> f64 {
    let small = merge(small).elapsed.as_secs_f64();
    let large = merge(large).elapsed.as_secs_f64();
    large / small.max(f64::MIN_POSITIVE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_call_is_merged_whole() {
        let figures = merge(1_000);
        assert_eq!(figures.calls, 1_000);
        assert!(ratio(10, 40).is_finite());
    }
}
