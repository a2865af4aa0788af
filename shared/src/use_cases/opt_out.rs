//! Promises 1 and 2: an opt-out is recorded whatever arrives first, and nothing is sent after it.
