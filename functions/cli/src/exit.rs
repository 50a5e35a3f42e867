//! How a command ends when it cannot do its job: one line on stderr and an exit code.

use std::fmt;
use std::process::ExitCode;

/// Exit code for input the command cannot use: configuration, arguments, a request file.
pub const UNUSABLE_INPUT: u8 = 2;

/// An error whose message is complete as it stands (no "error:" prefix, no cause chain).
#[derive(Debug)]
pub struct Fatal {
    pub code: u8,
    pub message: String,
}

impl fmt::Display for Fatal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Fatal {}

/// Input the command cannot use: exit 2 with exactly `message`.
pub fn unusable(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Fatal { code: UNUSABLE_INPUT, message: message.into() })
}

/// Prints the error and picks the exit code: a [`Fatal`] as it is, anything else as a failure.
pub fn report(error: anyhow::Error) -> ExitCode {
    match error.downcast_ref::<Fatal>() {
        Some(fatal) => {
            eprintln!("{fatal}");
            ExitCode::from(fatal.code)
        }
        None => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
