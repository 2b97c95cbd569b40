//! Images: references, registries, the content store, layer unpacking and image records.
//! Knows nothing of pods or containers.

pub mod digest;
pub mod reference;
pub mod registry;

pub use digest::Digest;
pub use reference::ImageRef;
