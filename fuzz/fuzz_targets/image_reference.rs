//! Parses arbitrary text as an image reference. A reference that parses is normalised: printing
//! it and parsing that again gives the same reference (berth stores the printed form and parses it
//! back), and its parts are what the printed form says.
#![no_main]

use berth::image::ImageRef;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(reference) = text.parse::<ImageRef>() else {
        return;
    };
    let printed = reference.to_string();
    let again: ImageRef = match printed.parse() {
        Ok(again) => again,
        Err(e) => panic!("{text:?} parsed, but its normal form {printed:?} does not: {e}"),
    };
    assert_eq!(again, reference, "{text:?} normalises to {printed:?}");
    assert!(reference.tag().is_some() || reference.digest().is_some());
    assert!(printed.starts_with(&reference.name()));
    let _ = reference.manifest_reference();
    let _ = reference.repo_tag();
});
