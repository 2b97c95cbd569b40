//! Parses arbitrary text as berth's config file: a config or an error naming what is wrong, never
//! a panic. A config that parses prints as YAML that parses back to the same config.
#![no_main]

use std::path::Path;

use berth::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/fuzz/config.yaml");
    let Ok(config) = Config::parse(text, path) else {
        return;
    };
    let printed = serde_saphyr::to_string(&config).expect("a parsed config serialises");
    match Config::parse(&printed, path) {
        Ok(again) => assert_eq!(again, config, "printed as:\n{printed}"),
        Err(e) => panic!("the config parsed from {text:?} prints as {printed:?}, which fails: {e}"),
    }
});
