//! SPDY/3.1, written for berth: kubelet's streaming clients (client-go over moby/spdystream)
//! speak it, and no maintained Rust crate does. Only what the Kubernetes streaming protocols
//! use: server side, client-opened streams, header compression, pings, GOAWAY, flow control.

pub mod conn;
#[cfg(test)]
mod conn_tests;
pub mod frame;
#[cfg(test)]
mod tests;

pub use conn::{Connection, SpdyStream, StreamWriter};
