//! The tests against a moto server: the AWS adapters, the functions' handlers on them (the moto
//! world, `integration_tests::worlds::moto`) and the sender against the Messenger sandbox with its
//! store in moto (`worlds::sender`). One binary, so the AWS SDK is linked once for all of them;
//! the tests share one moto server (`integration_tests::shared_moto`), each on its own resources
//! (a uuid stack name: its own table, queues, schedule group and topic).

mod adapters;
mod conversation;
mod deadlines;
mod drift;
mod due_index;
mod events;
mod follow_ups;
mod login;
mod opt_in_erasure;
mod opt_out_after_end;
mod sender;
mod sender_graph;
mod start_at_login;
mod sweep;
