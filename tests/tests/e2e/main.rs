//! The end-to-end tests: the product through the local stack (the local runner's API, event
//! sources and scheduler, moto, the Messenger sandbox over HTTP: `worlds::stack`), and in a real
//! browser. One binary, so the AWS SDK is linked once for all of them; each test
//! starts its own stack (its own stack name, sandbox and ports) in the moto server they share.

mod browser_smoke;
mod deadlines;
mod doctor;
mod drift;
mod events;
mod hostile_input;
mod log_secrets;
mod login;
mod opt_in;
mod opt_outs;
mod pages;
mod promises;
mod report_html;
mod sender;
mod start_at_login;
