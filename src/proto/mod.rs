//! Protocol logic, sans-IO: every function takes the current time as a parameter
//! (`std::time::Instant`, supplied by the caller) and never reads a clock or touches a
//! socket, so the whole protocol can run under simulated time.

pub mod backoff;
pub mod binding_cache;
pub mod cn;
pub mod discovery;
pub mod event;
pub mod ha;
pub mod mn;
pub mod movement;
pub mod nd;
pub mod ratelimit;
pub mod seqno;
