//! Shared harness for end-to-end suites.

pub mod generator;
pub mod harness;
pub mod moto;
pub mod oracle;
pub mod port_suite;
pub mod soak;
