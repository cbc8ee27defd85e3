//! cpkit: the library behind the `kubectl cphealth`, `etcdsnap`, `webhookguard` and `apftop`
//! plugins. The plugins hold their command lines and rendering; everything they share, and all
//! domain logic that can be tested without a server, lives here.

pub mod apf;
pub mod atomic_file;
pub mod certs;
pub mod checks;
pub mod cli;
pub mod client;
pub mod completion;
pub mod controlplane;
pub mod diagnosis;
pub mod duration;
pub mod error;
pub mod etcd;
pub mod exec_credential;
pub mod exit;
pub mod fuzz;
pub mod health;
pub mod input;
pub mod kubeconfig;
pub mod liveness;
pub mod load;
pub mod metrics;
pub mod output;
pub mod process;
pub mod redact;
pub mod replicas;
pub mod report;
pub mod severity;
pub mod stream;
pub mod tools;
pub mod webhooks;
pub mod yaml;

pub use client::{Cluster, RawResponse};
pub use error::{Error, ErrorKind, Result};
pub use exit::Status;
