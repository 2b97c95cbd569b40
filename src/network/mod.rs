//! Pod networking. For now: the pod's DNS and hosts files. CNI comes with the networking issue.

pub mod dns;
