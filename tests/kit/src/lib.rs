//! The suite's local control plane: real etcd clusters (`etcd`, `etcd_data`), a simulated
//! kube-apiserver (`apiserver`) grounded in real captures (`fixtures`), and named scenarios
//! (`scenario`) that combine them. The `democluster` binary runs a scenario for humans.

pub mod apiserver;
pub mod etcd;
pub mod etcd_data;
pub mod fault_proxy;
pub mod fixtures;
pub mod net;
pub mod pki;
pub mod process;
pub mod scenario;
pub mod webhook_backend;

pub use scenario::{DemoCluster, Facts, Options, Scenario};
