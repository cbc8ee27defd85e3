//! Admission webhooks: configurations with their API version's defaults (`model`), the requests
//! a cluster makes to heal (`requests`), match conditions evaluated in CEL (`conditions`), the
//! lockout analysis shared by cphealth and webhookguard (`analysis`), and reading the facts it
//! needs from a cluster (`gather`); `defuse` and `rearm` are the disarm's change and who undoes it.

pub mod analysis;
pub mod conditions;
pub mod defuse;
pub mod gather;
pub mod model;
pub mod rearm;
pub mod requests;

pub use analysis::{
    Accepted, ClusterFacts, Finding, FindingKind, ServiceFacts, WebhookRuntime, analyse, apply_allowlist, worst,
};
pub use model::{ConfigKind, FailurePolicy, WebhookConfig, configs_from_documents};

#[cfg(test)]
mod tests;
