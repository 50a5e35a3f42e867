//! Port implementations: memory (tests, `simulate`), SQLite (embedded `serve`), SQS + DynamoDB (AWS).

#[cfg(feature = "aws")]
pub mod aws_secrets;
pub mod claim_rule;
#[cfg(feature = "aws")]
pub mod dynamodb;
#[cfg(feature = "aws")]
pub mod dynamodb_history;
pub mod memory;
pub mod receive_plan;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "aws")]
pub mod sqs;
