//! The runtime contract (to come).
