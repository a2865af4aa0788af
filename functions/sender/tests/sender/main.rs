//! The sender's tests, one binary: the handler driven with SQS event fixtures (`batches`) and the
//! `{first_name}` rendering (`first_name`), over in-memory ports (`twins`).

mod batches;
mod drift;
mod events;
mod first_name;
mod follow_ups;
mod not_configured;
mod twins;
