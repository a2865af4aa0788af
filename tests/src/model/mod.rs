//! A model of the world around the product for the model-based test of issue 10's promises
//! (tests/tests/contract/promises_model.rs): the real handlers over shared in-memory twins
//! ([`world`]), a Graph twin that answers any class on demand ([`messenger`]), the steps and what
//! the model observes ([`run`]), and one check per promise ([`checks`]).

pub mod checks;
pub mod messenger;
pub mod run;
pub mod world;
