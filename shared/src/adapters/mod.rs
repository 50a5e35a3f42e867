//! Port implementations: memory (tests, `simulate`), SQLite (embedded `serve`), SQS + DynamoDB (AWS).

#[cfg(feature = "aws")]
pub mod aws_secrets;
#[cfg(feature = "aws")]
pub mod dynamodb;
pub mod memory;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "aws")]
pub mod sqs;
