//! API Priority and Fairness: the defaults (`defaults`), FlowSchemas and priority levels of any
//! served version (`model`), request classification (`classify`), the debug dumps (`dump`),
//! per-level and per-schema statistics from /metrics scrapes (`stats`) and configuration lint
//! (`lint`).

pub mod classify;
pub mod defaults;
pub mod dump;
pub mod flows;
pub mod lint;
pub mod model;
pub mod stats;
