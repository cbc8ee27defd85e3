//! etcd: the members as their static pods describe them (`pods`), gRPC access (`direct`), the
//! cluster status and its verdict (`status`).

pub mod direct;
pub mod pods;
pub mod status;
