//! Admission webhooks: configurations with their API version's defaults (`model`), the requests
//! a cluster makes to heal (`requests`), match conditions evaluated in CEL (`conditions`), the
//! lockout analysis shared by cphealth and webhookguard (`analysis`), and reading the facts it
//! needs from a cluster (`gather`, and `backend_tls`: the backends' serving certificates through a
//! port-forward); `defuse` and `rearm` are the disarm's change and who undoes it.
//! Admission policies and their bindings: `policies` (the objects), `policy_analysis` (bindings
//! that cannot be configured), `policy_validations` (validations that reject the cluster's writes).

pub mod analysis;
#[cfg(feature = "client")]
pub mod backend_tls;
pub mod conditions;
pub mod defuse;
#[cfg(feature = "client")]
pub mod gather;
pub mod model;
pub mod policies;
pub mod policy_analysis;
pub mod policy_validations;
pub mod rearm;
pub mod requests;

pub use analysis::{
    Accepted, ClusterFacts, Finding, FindingKind, ServiceFacts, WebhookRuntime, analyse, apply_allowlist, worst,
};
pub use model::{ConfigKind, FailurePolicy, WebhookConfig, configs_from_documents};
pub use policies::{Policies, policies_from_documents};
pub use policy_analysis::{KindState, PolicyFacts, analyse_policies};

#[cfg(test)]
mod tests;
