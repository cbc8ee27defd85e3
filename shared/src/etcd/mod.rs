//! etcd: the members as their static pods describe them (`pods`), gRPC access (`direct`), the
//! cluster status and its verdict (`status`), the bbolt file format (`bbolt`), what a snapshot
//! file holds (`snapshot`), writing one from the Maintenance.Snapshot stream (`save`), how it is
//! stored (`stored`) and keeping it in object storage (`remote`).

pub mod bbolt;
#[cfg(feature = "etcd")]
pub mod direct;
#[cfg(feature = "etcd")]
pub mod pods;
#[cfg(feature = "etcd")]
pub mod remote;
#[cfg(feature = "etcd")]
pub mod save;
pub mod snapshot;
pub mod status;
#[cfg(feature = "etcd")]
pub mod stored;
pub mod stream_index;
