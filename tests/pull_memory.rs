//! berthd gives the memory a pull used back to the system once no pull runs: its anonymous
//! proportional set size (heap, stacks) is back near its idle size within 30 s after a pull of the
//! Debian test image ends. (The whole PSS, binary included, is measured on a release build by
//! e2e/bench/pull.sh; a debug binary's text alone is larger than that target.)

mod common;

use std::time::{Duration, Instant};

use berth::cri::api;
use common::Daemon;
use common::registry::registries;

/// A `/proc/<pid>/smaps_rollup` field, KiB.
fn rollup_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).expect("smaps_rollup");
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{field} missing in smaps_rollup"))
}

#[tokio::test]
async fn anonymous_memory_goes_back_to_the_system_after_a_pull() {
    let r = registries();
    let d = Daemon::start(&format!(
        "registries:\n  \"{}\":\n    insecure: true\n",
        r.plain
    ));
    let mut cri = d.client().await;
    let req = api::PullImageRequest {
        image: Some(api::ImageSpec {
            image: format!("{}/library/debian:bookworm", r.plain),
            ..Default::default()
        }),
        ..Default::default()
    };
    cri.image.pull_image(req).await.expect("pull debian");
    let ended = Instant::now();
    const LIMIT_KIB: u64 = 8 * 1024;
    loop {
        let anon = rollup_kib(d.pid(), "Pss_Anon:");
        if anon <= LIMIT_KIB {
            break;
        }
        assert!(
            ended.elapsed() < Duration::from_secs(30),
            "berthd still holds {anon} KiB of anonymous memory 30 s after the pull"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
