//! Creates, in the local AWS emulator (moto), the resources template.yaml declares — read from the
//! template's own definitions, so the local stack and the cloud stack cannot drift apart.
//!
//! A generic reader: every resource of a supported type is created with its literal properties
//! (CloudFormation intrinsics `Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::Join` are resolved, in short
//! `!Tag` or long `Fn::` form, against the parameters' defaults, pseudo parameters and the
//! resources already created). Supported types, created in this order:
//!
//! | type                            | local physical name           | what is read                         |
//! |---------------------------------|-------------------------------|--------------------------------------|
//! | `AWS::DynamoDB::Table`          | `{stack}-{LogicalId}`         | attribute definitions, key schema, GSIs/LSIs, billing mode, provisioned throughput, TTL |
//! | `AWS::SQS::Queue`               | `{stack}-{LogicalId}`         | VisibilityTimeout, MessageRetentionPeriod, DelaySeconds, MaximumMessageSize, ReceiveMessageWaitTimeSeconds, FifoQueue, ContentBasedDeduplication, RedrivePolicy |
//! | `AWS::Scheduler::ScheduleGroup` | its `Name` (resolved), else `{stack}-{LogicalId}` | Name |
//! | `AWS::SNS::Topic`               | `{stack}-{LogicalId}`         | FifoTopic                            |
//! | `AWS::SecretsManager::Secret`   | `{stack}-{LogicalId}`         | the `secret_json` given to [`provision`] |
//!
//! Other types (functions, roles, alarms, policies, …) are skipped. Resources with a `Condition`
//! are created only when the condition holds for the parameters' defaults. Running twice against
//! the same emulator reuses what exists (and rewrites queue attributes and the secret's value).
//!
//! The files: `stack` (the entry point, what it returns, the generic reading of resources),
//! `template` (the template's sections, intrinsics and conditions), `dynamodb` (tables) and
//! `resources` (queues, schedule groups, topics, secrets).

mod dynamodb;
mod resources;
mod stack;
mod template;

pub use stack::{ProvisionError, Provisioned, ProvisionedEvents, provision};
pub use template::LOCAL_ACCOUNT_ID;
