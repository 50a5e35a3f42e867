//! Placeholder so the crate compiles while the source is being written.
use super::{RawRequest, Rejection, SourceOutcome};
use crate::secret::Secret;
pub fn parse(_tool: &str, _request: &RawRequest, _secret: &Secret) -> Result<SourceOutcome, Rejection> {
    Err(Rejection::malformed("not implemented yet"))
}
