//! Plugins that misbehave: one hanging while calls queue for it, one timed out (its socket must
//! close), one reusing a connected plugin's index and name, one hanging up mid-request, several
//! stalling Synchronize while pods wait.

use super::*;

#[tokio::test]
async fn a_hanging_plugin_delays_concurrent_calls_by_one_timeout_at_most() {
    // Calls to one plugin go one at a time; those queued behind the call that timed out must not
    // each wait a timeout of their own on the plugin that was just disconnected.
    let adaptation = adaptation();
    let (_seen, _p) = plugin(&adaptation, "sleeper", "10", Behaviour::Hang, ALL).await;
    let started = std::time::Instant::now();
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let adaptation = adaptation.clone();
            tokio::spawn(async move { create(&adaptation, &mut spec()).await })
        })
        .collect();
    let mut timeouts = 0;
    for call in calls {
        match call.await.unwrap() {
            Err(NriError::Timeout { .. }) => timeouts += 1,
            Ok(()) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    let elapsed = started.elapsed();
    // request timeout 300 ms: one timeout (and some slack), not four in a row.
    assert!(elapsed < Duration::from_millis(700), "took {elapsed:?}");
    assert_eq!(
        timeouts, 1,
        "only the call that waited on the plugin times out"
    );
    assert_eq!(adaptation.plugin_count(), 0);
}

#[tokio::test]
async fn a_plugin_that_times_out_sees_its_connection_closed() {
    let adaptation = adaptation();
    let (_seen, p) = plugin(&adaptation, "sleeper", "10", Behaviour::Hang, ALL).await;
    // Keep a handle on the plugin (an event in flight elsewhere) while the timeout happens.
    let held = adaptation.subscribed(api::Event::CREATE_CONTAINER);
    let err = create(&adaptation, &mut spec()).await.unwrap_err();
    assert!(matches!(err, NriError::Timeout { .. }), "{err}");
    // The plugin's end reads end-of-file: berth hung up on it.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while !p.trunk.is_finished() {
        assert!(
            std::time::Instant::now() < deadline,
            "the timed-out plugin is still connected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(held);
}

#[tokio::test]
async fn a_second_plugin_with_a_registered_name_and_index_is_refused() {
    let adaptation = adaptation();
    let (_a, _pa) = plugin(&adaptation, "a", "10", Behaviour::Shared, ALL).await;
    // The same index and name: it would share the first one's adjustments (no conflict between
    // them) and its disconnection would forget both.
    let (_b, pb) = plugin(&adaptation, "a", "10", Behaviour::Shared, ALL).await;
    assert_eq!(adaptation.plugin_count(), 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while !pb.trunk.is_finished() {
        assert!(
            std::time::Instant::now() < deadline,
            "the duplicate plugin is still connected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut spec = spec();
    create(&adaptation, &mut spec).await.unwrap();
    assert_eq!(env(&spec), vec!["PATH=/bin", "SHARED=a"]);
}

#[tokio::test]
async fn a_plugin_hanging_up_mid_request_is_forgotten_without_a_timeout() {
    let adaptation = Adaptation::new(Timeouts {
        registration: Duration::from_secs(2),
        request: Duration::from_secs(5),
    });
    let (seen, _p) = plugin(&adaptation, "quitter", "10", Behaviour::HangUp, ALL).await;
    let started = std::time::Instant::now();
    let mut spec = spec();
    create(&adaptation, &mut spec).await.unwrap();
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    assert_eq!(seen.lock().unwrap().len(), 1, "the request reached it");
    assert_eq!(env(&spec), vec!["PATH=/bin"]);
    assert_eq!(adaptation.plugin_count(), 0);
}

#[tokio::test]
async fn plugins_stalling_synchronize_hold_up_pods_for_one_timeout_at_most() {
    // Each connecting plugin is synchronized under the write side of the lock RunPodSandbox and
    // CreateContainer hold: several plugins that never answer Synchronize must not queue their
    // timeouts one after another ahead of a pod.
    let adaptation = adaptation();
    let connecting: Vec<_> = ["a", "b", "c", "d"]
        .into_iter()
        .map(|name| {
            let adaptation = adaptation.clone();
            tokio::spawn(async move {
                plugin(&adaptation, name, "10", Behaviour::HangSync, ALL)
                    .await
                    .1
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    drop(adaptation.hold().await);
    let waited = started.elapsed();
    // request timeout 300 ms: the synchronization under way, not four in a row.
    assert!(waited < Duration::from_millis(500), "waited {waited:?}");
    for c in connecting {
        drop(c.await.unwrap());
    }
    assert_eq!(adaptation.plugin_count(), 0);
}
