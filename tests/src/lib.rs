//! Shared harness for end-to-end suites.
