//! The one reader of configuration variables: every number, list, flag and URL of every setting
//! group is read here, and every problem is collected (by name, with the value unless it is a
//! credential) so loading reports all of them at once.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {}", .problems.join("; "))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

/// Reads variables through a lookup (the process environment, a test's map, the local runner's
/// settings) and collects the problems it finds.
pub struct Reader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<String>,
}

impl<'a> Reader<'a> {
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self {
            lookup,
            problems: Vec::new(),
        }
    }

    /// Record a problem (name the variable; never echo a credential).
    pub fn problem(&mut self, problem: impl Into<String>) {
        self.problems.push(problem.into());
    }

    /// The problems found so far, moved out (for callers that collect them elsewhere).
    pub fn take_problems(&mut self) -> Vec<String> {
        std::mem::take(&mut self.problems)
    }

    /// `value` if no problem was found, else every problem at once.
    pub fn finish<T>(self, value: T) -> Result<T, ConfigError> {
        done(value, self.problems)
    }

    /// The value, trimmed; `None` when unset. An explicitly empty value stays `Some("")`.
    pub fn raw(&self, name: &str) -> Option<String> {
        (self.lookup)(name).map(|v| v.trim().to_owned())
    }

    /// The value, trimmed; `None` when unset or empty.
    pub fn optional(&self, name: &str) -> Option<String> {
        self.raw(name).filter(|v| !v.is_empty())
    }

    pub fn required(&mut self, name: &str) -> String {
        self.optional(name).unwrap_or_else(|| {
            self.problems.push(format!("{name} is missing"));
            String::new()
        })
    }

    pub fn with_default(&self, name: &str, default: &str) -> String {
        self.optional(name).unwrap_or_else(|| default.to_owned())
    }

    /// A comma-separated list, each entry trimmed, empty entries dropped; `None` when unset or empty.
    pub fn list(&self, name: &str) -> Option<Vec<String>> {
        self.optional(name).map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
    }

    /// `true` or `false`; `default` when unset.
    pub fn flag(&mut self, name: &str, default: bool) -> bool {
        match self.optional(name).as_deref() {
            None => default,
            Some("true") => true,
            Some("false") => false,
            Some(other) => {
                self.problems
                    .push(format!("{name} must be true or false (got {other:?})"));
                default
            }
        }
    }

    /// A whole number in `min..=max`; `default` when unset.
    pub fn number(&mut self, name: &str, default: i64, min: i64, max: i64) -> i64 {
        match self.optional(name) {
            None => default,
            Some(raw) => match raw.parse::<i64>() {
                Ok(n) if (min..=max).contains(&n) => n,
                _ => {
                    self.problems.push(format!(
                        "{name} must be a whole number from {min} to {max} (got {raw:?})"
                    ));
                    default
                }
            },
        }
    }

    /// `value` as an http(s) URL without its trailing slash.
    pub fn url(&mut self, name: &str, value: String) -> String {
        self.checked_url(name, value, true)
    }

    /// [`Self::url`] for a URL that may carry a credential (a receiver's token in its query): a
    /// problem names the variable, never the value, since configuration errors are logged.
    pub fn secret_url(&mut self, name: &str, value: String) -> String {
        self.checked_url(name, value, false)
    }

    fn checked_url(&mut self, name: &str, value: String, echo: bool) -> String {
        match url::Url::parse(&value) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {
                value.trim_end_matches('/').to_owned()
            }
            _ if echo => {
                self.problems
                    .push(format!("{name} must be an http(s) URL (got {value:?})"));
                value
            }
            _ => {
                self.problems.push(format!("{name} must be an http(s) URL"));
                value
            }
        }
    }
}

/// `value` if there are no problems, else all of them.
pub fn done<T>(value: T, problems: Vec<String>) -> Result<T, ConfigError> {
    if problems.is_empty() {
        Ok(value)
    } else {
        Err(ConfigError { problems })
    }
}
