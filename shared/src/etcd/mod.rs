//! etcd: the members as their static pods describe them (`pods`), gRPC access (`direct`), the
//! cluster status and its verdict (`status`), the bbolt file format (`bbolt`), what a snapshot
//! file holds (`snapshot`) and writing one from the Maintenance.Snapshot stream (`save`).

pub mod bbolt;
pub mod direct;
pub mod pods;
pub mod save;
pub mod snapshot;
pub mod status;
pub mod stored;
pub mod stream_index;
