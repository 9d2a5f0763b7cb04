//! What ajar does, below the HTTP routes: the request engine (storing, deciding, revoking and
//! moving requests on time, with their records and notices). Routes parse, authorize, call
//! here and render; the scheduler and the request writer call here, never a route; the request
//! writer (group commit of network requests) lives here too.

pub mod desired;
pub mod enforced;
pub mod error;
pub mod request_writer;
pub mod requests;

pub use error::{EngineError, EngineResult};
