//! Port implementations: memory (tests, `simulate`), SQLite (embedded `serve`), SQS + DynamoDB (AWS).

pub mod memory;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "aws")]
pub mod aws_secrets;
#[cfg(feature = "aws")]
pub mod dynamodb;
#[cfg(feature = "aws")]
pub mod sqs;
