//! Shared harness for end-to-end suites.

pub mod harness;
pub mod port_suite;
pub mod moto;
