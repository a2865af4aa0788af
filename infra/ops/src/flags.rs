//! The command line of every `ops` subcommand: `--name value`, `--name=value`, or a bare switch.

/// The flags of one command line, read one at a time.
pub struct Flags<I> {
    args: I,
    /// The value written into the current flag (`--name=value`).
    inline: Option<String>,
}

impl<I: Iterator<Item = String>> Flags<I> {
    pub fn new(args: impl IntoIterator<IntoIter = I>) -> Self {
        Self {
            args: args.into_iter(),
            inline: None,
        }
    }

    /// The next flag's name (`--since` of `--since=1h` too), or `None` at the end.
    pub fn next_flag(&mut self) -> Option<String> {
        let arg = self.args.next()?;
        match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                self.inline = Some(value.to_owned());
                Some(flag.to_owned())
            }
            _ => {
                self.inline = None;
                Some(arg)
            }
        }
    }

    /// The current flag's value: written into it, or the next argument; never empty.
    pub fn value(&mut self, name: &str) -> Result<String, String> {
        self.inline
            .take()
            .or_else(|| self.args.next())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("{name} needs a value"))
    }
}
