//! A tiny option parser shared by the suites: `--name value`,
//! `--name=value` and `--flag`, nothing else (no dependency).

use crate::BenchError;

/// Parsed options: `(name, value)` pairs in order; flags have no value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    pairs: Vec<(String, Option<String>)>,
}

impl Options {
    /// Parses `args`. `flags` are the options that take no value; every
    /// other option takes one.
    ///
    /// # Errors
    /// [`BenchError::Usage`] for a positional argument, an option missing
    /// its value, or an option not in `known`.
    pub fn parse(args: &[String], known: &[&str], flags: &[&str]) -> Result<Self, BenchError> {
        let mut pairs = Vec::new();
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            let Some(body) = arg.strip_prefix("--") else {
                return Err(BenchError::Usage(format!("unexpected argument {arg:?}")));
            };
            let (name, inline) = match body.split_once('=') {
                Some((name, value)) => (name, Some(value.to_owned())),
                None => (body, None),
            };
            if !known.contains(&name) && !flags.contains(&name) {
                return Err(BenchError::Usage(format!("unknown option --{name}")));
            }
            let value = if flags.contains(&name) {
                None
            } else {
                match inline {
                    Some(value) => Some(value),
                    None => Some(
                        iter.next()
                            .cloned()
                            .ok_or_else(|| BenchError::Usage(format!("--{name} needs a value")))?,
                    ),
                }
            };
            pairs.push((name.to_owned(), value));
        }
        Ok(Self { pairs })
    }

    /// The last value given for `name`.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }

    /// Whether the flag `name` was given.
    pub fn flag(&self, name: &str) -> bool {
        self.pairs.iter().any(|(n, _)| n == name)
    }

    /// A comma-separated list option, parsed item by item.
    ///
    /// # Errors
    /// [`BenchError::Usage`] when an item does not parse.
    pub fn list<T>(
        &self,
        name: &str,
        default: &[T],
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Vec<T>, BenchError>
    where
        T: Clone,
    {
        let Some(raw) = self.value(name) else {
            return Ok(default.to_vec());
        };
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|item| {
                parse(item)
                    .ok_or_else(|| BenchError::Usage(format!("--{name}: cannot read {item:?}")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn values_flags_and_lists() {
        let options = Options::parse(
            &strings(&["--steps", "10,100", "--format=json", "--quick"]),
            &["steps", "format"],
            &["quick"],
        )
        .unwrap();
        assert_eq!(options.value("format"), Some("json"));
        assert!(options.flag("quick"));
        assert_eq!(
            options
                .list("steps", &[1usize], |s| s.parse().ok())
                .unwrap(),
            vec![10, 100]
        );
        assert_eq!(
            options
                .list("other", &[1usize], |s| s.parse().ok())
                .unwrap(),
            vec![1]
        );
    }

    #[test]
    fn errors() {
        assert!(Options::parse(&strings(&["x"]), &[], &[]).is_err());
        assert!(Options::parse(&strings(&["--nope"]), &["steps"], &[]).is_err());
        assert!(Options::parse(&strings(&["--steps"]), &["steps"], &[]).is_err());
        let options = Options::parse(&strings(&["--steps", "a"]), &["steps"], &[]).unwrap();
        assert!(
            options
                .list("steps", &[1usize], |s| s.parse().ok())
                .is_err()
        );
    }
}
