//! How the API reaches a container's agent for synchronous requests (logs,
//! exec, attach, resizes, top, stats, archives, commit; DESIGN decision 4):
//! in-process when the agent shares the API's process (`local`), otherwise
//! through the agent's own authenticated endpoint (`endpoint` serves it on
//! the compute host, `remote` calls it from the API), and then to the
//! engine's local socket. The engine is never on TCP. Between API and
//! agent: TLS (`tls`) and a token per request (`endpoint`).

pub mod endpoint;
pub mod local;
pub mod remote;
pub mod tls;

pub use endpoint::{Endpoint, router, token};
pub use local::{Dispatch, LocalHost};
pub use remote::RemoteHost;
