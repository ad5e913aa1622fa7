#![allow(deprecated)] // Temporal deprecates fields the SDKs still send; we keep them faithfully.
//! tempora: a Temporal-compatible durable-execution server. See ARCHITECTURE.md.
//!
//! Public only what the binary, the benchmark and the integration tests use; everything else
//! is `pub(crate)`.

pub mod auth;
pub mod clock;
pub mod cluster;
pub(crate) mod deployments;
pub(crate) mod endpoints;
pub mod engine;
pub mod error;
pub(crate) mod frontend;
pub(crate) mod history;
pub(crate) mod http;
pub(crate) mod matching;
pub(crate) mod namespaces;
pub(crate) mod runtime;
pub(crate) mod schedules;
pub mod server;
pub(crate) mod shard;
pub(crate) mod stats;
pub mod store;
pub(crate) mod telemetry;
pub mod testing;
pub(crate) mod timers;
pub mod tls;
pub mod token;
pub(crate) mod ui;
pub mod visibility;

pub use runtime::limit_allocator_arenas;
