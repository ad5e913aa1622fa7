#![allow(deprecated)] // Temporal deprecates fields the SDKs still send; we keep them faithfully.
//! tempora: a Temporal-compatible durable-execution server. See ARCHITECTURE.md.

pub mod clock;
pub mod engine;
pub mod error;
pub mod frontend;
pub mod matching;
pub mod server;
pub mod service;
pub mod store;
pub mod testing;
pub mod timers;
pub mod token;
