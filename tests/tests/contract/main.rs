//! The tests that need no emulator: the contracts between template.yaml, docs/openapi.json and the
//! code (routes, IAM actions, alarms and metrics), between the Makefile's deploy and SAM, between
//! SAM's sample events and the handlers, and the model-based test of the promises over the
//! in-memory twins (`integration_tests::model`), and docs/openapi.json's event schemas vs the event
//! constructors. One binary, so the workspace is linked once.

mod api;
mod deploy;
mod events_schema;
mod iam_policy;
mod promises_model;
mod sam_events;
mod template_observability;
