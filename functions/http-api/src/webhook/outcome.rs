//! What became of one messaging item: what every item handler returns and the dispatcher counts
//! (its own file so the handlers need not import the dispatcher that calls them).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemOutcome {
    New,
    Duplicate,
    /// A stop opted the person out (or found them already out).
    OptedOut,
    /// A stop from an unlinked PSID, kept as pending.
    StopKept,
    Ignored,
}
