//! Parses arbitrary bytes as an image index, an image manifest and an image config, the JSON a
//! registry sends: each must parse or fail with an error, never panic. A manifest that parses
//! has only layers berth can unpack; an index that parses selects a platform or says it has none.
#![no_main]

use berth::image::Digest;
use berth::image::manifest::{Compression, ImageConfig, Index, Manifest, Platform};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let digest = Digest::of(data);
    if let Ok(index) = Index::parse(&digest, data) {
        for want in ["linux/amd64", "linux/arm64/v8", "linux/arm/v7"] {
            let want = Platform::parse(want).expect("a valid platform");
            if let Ok(chosen) = index.select(&digest, &want) {
                let platform = chosen
                    .platform
                    .as_ref()
                    .expect("a selected entry has a platform");
                assert!(want.matches(platform));
            }
        }
        let _ = index.select(&digest, &Platform::host());
    }
    let manifest = Manifest::parse(&digest, data);
    if let Ok(manifest) = &manifest {
        for layer in &manifest.layers {
            assert!(Compression::of_layer(&layer.media_type).is_some());
        }
    }
    if let Ok(config) = ImageConfig::parse(&digest, data)
        && let Ok(manifest) = &manifest
    {
        let _ = config.check_layers(manifest, &digest);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Platform::parse(text);
    }
});
