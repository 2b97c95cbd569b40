//! Images: references, registries, the content store, layer unpacking and image records.
//! Knows nothing of pods or containers.

pub mod content;
pub mod digest;
pub mod manifest;
pub mod reference;
pub mod store;
pub mod unpack;
pub mod registry;

pub use digest::Digest;
pub use reference::ImageRef;
