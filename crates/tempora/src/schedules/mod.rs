//! Schedules, the pure half: `spec` (canonical specs, next times, jitter) and `machine` (one
//! schedule's state and transitions). The RPCs and the runner that performs their effects
//! are in `frontend::schedules`.

pub mod machine;
pub mod spec;
