//! The test worlds: the product wired for a test, each with its own resources (a uuid stack name
//! in the moto server the process shares) so that tests of one binary can run side by side.
//! `moto`: the three functions' handlers on the real AWS adapters against moto, with a clock the
//! test moves; `sender`: the sender against the Messenger sandbox over HTTP; `stack`: the whole
//! local stack (local runner, sandbox, moto) for the end-to-end tests.

pub mod moto;
pub mod sender;
pub mod stack;
