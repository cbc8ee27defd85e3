//! Admission webhooks: configurations with their API version's defaults (`model`), the lockout
//! analysis shared by cphealth and webhookguard (`analysis`), and reading the facts it needs
//! from a cluster (`gather`).

pub mod analysis;
pub mod defuse;
pub mod gather;
pub mod model;

pub use analysis::{
    Accepted, ClusterFacts, Finding, FindingKind, ServiceFacts, WebhookRuntime, analyse, apply_allowlist, worst,
};
pub use model::{ConfigKind, FailurePolicy, WebhookConfig, configs_from_documents};

#[cfg(test)]
mod tests;
