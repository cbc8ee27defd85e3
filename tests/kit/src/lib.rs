//! The suite's local control planes: a real one built from the Kubernetes, etcd and kwok Go
//! modules (`real`, `binaries`), and a simulated kube-apiserver (`apiserver`) grounded in real
//! captures (`fixtures`) over real etcd clusters (`etcd`, `etcd_data`); named scenarios
//! (`scenario`) run in either world. The `democluster` binary runs a scenario for humans.

pub mod api_front;
pub mod apiserver;
pub mod azure;
pub mod binaries;
pub mod black_hole;
pub mod etcd;
pub mod etcd_data;
pub mod fault_proxy;
pub mod fixtures;
pub mod net;
pub mod pki;
pub mod process;
pub mod real;
pub mod s3;
pub mod scenario;
pub mod store_front;
pub mod webhook_backend;

pub use scenario::{DemoCluster, Facts, Options, Scenario, World, kubectl_path};
