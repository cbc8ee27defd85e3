//! cpkit: the library behind the `kubectl cphealth`, `etcdsnap`, `webhookguard` and `apftop`
//! plugins. The plugins hold their command lines and rendering; everything they share, and all
//! domain logic that can be tested without a server, lives here.

// The few unsafe blocks are system calls; each says why it is sound (the workspace denies
// clippy::undocumented_unsafe_blocks).

pub mod access;
#[cfg(feature = "apf")]
pub mod apf;
pub mod atomic_file;
pub mod certs;
#[cfg(feature = "load")]
pub mod checks;
#[cfg(feature = "client")]
pub mod cli;
#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "client")]
pub mod completion;
pub mod controlplane;
#[cfg(feature = "load")]
pub mod diagnosis;
pub mod duration;
pub mod error;
pub mod etcd;
#[cfg(feature = "client")]
pub mod exec_credential;
pub mod exit;
#[cfg(all(feature = "apf", feature = "webhooks"))]
pub mod fuzz;
pub mod health;
pub mod input;
pub mod kubeconfig;
pub mod liveness;
#[cfg(feature = "load")]
pub mod load;
pub mod metrics;
pub mod output;
#[cfg(feature = "client")]
pub mod process;
pub mod redact;
#[cfg(feature = "client")]
pub mod replicas;
pub mod report;
#[cfg(feature = "client")]
pub mod resources;
pub mod severity;
#[cfg(feature = "client")]
pub mod stragglers;
#[cfg(feature = "client")]
pub mod stream;
#[cfg(test)]
mod test_files;
#[cfg(feature = "webhooks")]
pub mod webhooks;
pub mod yaml;

#[cfg(feature = "client")]
pub use client::{Cluster, RawResponse};
pub use error::{Error, ErrorKind, Result};
pub use exit::Status;
