//! ragwall: a retrieval firewall for RAG systems.
//!
//! The core is pure and synchronous — [`normalize`] → [`detect`] → [`policy`] → [`wrap`], joined
//! by [`firewall::Firewall::inspect`] — and knows nothing of HTTP, Qdrant or async runtimes.
//! Adapters ([`cli`]) turn their input into [`chunk::Chunk`]s and verdicts back into their output.

pub mod chunk;
pub mod classifier;
pub mod cli;
pub mod config;
pub mod detect;
pub mod eval;
pub mod finding;
pub mod firewall;
pub mod http;
pub mod normalize;
pub mod policy;
pub mod proxy;
pub mod scan;
pub mod server;
pub mod stamp;
pub mod wrap;

pub use chunk::{Chunk, ChunkId, Verdict};
pub use config::Config;
pub use firewall::Firewall;
pub use policy::Action;
