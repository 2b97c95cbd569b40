//! `berth build` through berthd's admin API with real overlayfs, berth's executor and base
//! images from the local test registry (`hack/registry.sh start`, `hack/testimages/build.sh`):
//! a two-stage build run with CRI, the layer cache after edits and build-arg changes,
//! `.dockerignore`, `--chown`/`--chmod`, `USER`, `--target`, a failing RUN that leaves nothing
//! behind, and sources that try to leave the context. Needs root.

mod common;

use std::collections::HashMap;
use std::path::Path;

use berth::cri::api;
use common::Daemon;
use common::build::{build, daemon, run};

/// The status line after each step header: "CACHED" or "DONE ...", by step text.
fn step_results(lines: &[String]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(rest) = line
            .split_once("] ")
            .map(|(_, t)| t)
            .filter(|_| line.starts_with('#'))
        {
            let result = lines[i + 1..]
                .iter()
                .find(|l| *l == "CACHED" || l.starts_with("DONE") || l.starts_with('#'))
                .cloned()
                .unwrap_or_default();
            out.push((rest.to_string(), result));
        }
    }
    out
}

fn cached(results: &[(String, String)], step: &str) -> bool {
    let found = results.iter().find(|(s, _)| s.starts_with(step));
    found
        .unwrap_or_else(|| panic!("no step {step}: {results:#?}"))
        .1
        == "CACHED"
}

async fn config(d: &Daemon, image: &str) -> serde_json::Value {
    let mut cri = d.client().await;
    let req = api::ImageStatusRequest {
        image: Some(api::ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        verbose: true,
    };
    let resp = cri.image.image_status(req).await.unwrap().into_inner();
    serde_json::from_str(&resp.info["info"]).unwrap()
}

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

#[tokio::test]
async fn two_stage_build_runs_and_its_cache_follows_edits_and_args() {
    let (d, base) = daemon();
    let ctx = tempfile::tempdir().unwrap();
    let dockerfile = format!(
        r#"# syntax=docker/dockerfile:1
ARG BASE={base}
FROM ${{BASE}} AS builder
ARG GREETING=hello
WORKDIR /src
COPY app.txt .
RUN echo "$GREETING from $(cat app.txt)" > out.txt && \
    echo run-output-streamed
FROM ${{BASE}}
COPY --from=builder --chown=1000:1000 --chmod=640 /src/out.txt /app/out.txt
COPY . /ctx/
USER 1000
ENV MODE=test
LABEL purpose=test
CMD ["cat", "/app/out.txt"]
"#
    );
    write(
        ctx.path(),
        &[
            ("Dockerfile", &dockerfile),
            ("app.txt", "v1"),
            ("secret.log", "must not be copied"),
            (".dockerignore", "*.log\n"),
        ],
    );
    let (lines, id) = build(&d, ctx.path(), &["berth.test/built:v1"], &[], "")
        .await
        .unwrap();
    assert!(
        lines.iter().any(|l| l == "  | run-output-streamed"),
        "{lines:#?}"
    );
    let results = step_results(&lines);
    assert!(results.iter().all(|(_, r)| r != "CACHED"), "{results:#?}");

    // The image: config, history, only the final stage's layers.
    let info = config(&d, "berth.test/built:v1").await;
    let spec = &info["imageSpec"];
    assert_eq!(spec["config"]["User"], "1000");
    assert!(
        spec["config"]["Env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "MODE=test")
    );
    assert_eq!(spec["config"]["Labels"]["purpose"], "test");
    assert_eq!(
        spec["config"]["Cmd"],
        serde_json::json!(["cat", "/app/out.txt"])
    );
    let base_info = config(&d, &base).await;
    let base_layers = base_info["imageSpec"]["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(
        spec["rootfs"]["diff_ids"].as_array().unwrap().len(),
        base_layers + 2
    );
    let history: Vec<&serde_json::Value> = spec["history"].as_array().unwrap().iter().collect();
    let ours: Vec<_> = history
        .iter()
        .filter(|h| h["comment"] == "berth build")
        .collect();
    assert_eq!(
        ours.len(),
        6,
        "one entry per instruction of the final stage: {ours:#?}"
    );
    let empty: Vec<_> = ours.iter().filter(|h| h["empty_layer"] == true).collect();
    assert_eq!(empty.len(), 4, "USER, ENV, LABEL, CMD make no layer");

    // It runs under CRI at once, as its USER, with the files as COPY set them.
    assert_eq!(run(&d, "berth.test/built:v1", "").await, "hello from v1");
    let seen = run(&d, &id, "id -u; stat -c %u:%g:%a /app/out.txt; ls /ctx").await;
    let seen: Vec<&str> = seen.lines().collect();
    assert_eq!(seen[..2], ["1000", "1000:1000:640"], "{seen:?}");
    assert!(
        seen.contains(&"app.txt") && !seen.contains(&"secret.log"),
        "{seen:?}"
    );

    // Nothing changed: every step is cached, same image.
    let (lines, again) = build(&d, ctx.path(), &["berth.test/built:v1"], &[], "")
        .await
        .unwrap();
    assert_eq!(again, id);
    let results = step_results(&lines);
    for step in ["COPY app.txt", "RUN", "COPY --from", "COPY . /ctx/"] {
        assert!(cached(&results, step), "{step}: {results:#?}");
    }

    // An edit misses from the changed COPY on; the steps before it stay cached.
    write(ctx.path(), &[("app.txt", "v2")]);
    let (lines, edited) = build(&d, ctx.path(), &["berth.test/built:v2"], &[], "")
        .await
        .unwrap();
    let results = step_results(&lines);
    assert!(
        !cached(&results, "COPY app.txt") && !cached(&results, "RUN"),
        "{results:#?}"
    );
    assert_ne!(edited, id);
    assert_eq!(run(&d, "berth.test/built:v2", "").await, "hello from v2");

    // A build arg in scope of the RUN reruns it, but not the COPY before it.
    let (lines, _) = build(
        &d,
        ctx.path(),
        &["berth.test/built:bye"],
        &[("GREETING", "bye")],
        "",
    )
    .await
    .unwrap();
    let results = step_results(&lines);
    assert!(
        cached(&results, "COPY app.txt") && !cached(&results, "RUN"),
        "{results:#?}"
    );
    assert_eq!(run(&d, "berth.test/built:bye", "").await, "bye from v2");

    // --target builds the first stage alone.
    let (_, first) = build(
        &d,
        ctx.path(),
        &["berth.test/built:builder"],
        &[],
        "builder",
    )
    .await
    .unwrap();
    let info = config(&d, &first).await;
    assert_eq!(info["imageSpec"]["config"]["WorkingDir"], "/src");
    assert_ne!(info["imageSpec"]["config"]["User"], "1000");
}

/// Everything under the daemon's root that a build may leave: scratch dirs, staged snapshots,
/// half-written blobs, mounts.
fn leftovers(d: &Daemon) -> Vec<String> {
    let root = d.dir.path().join("root");
    let mut out = common::mounts_under(d.dir.path());
    for (dir, prefix) in [
        (root.join("build"), "step-"),
        (root.join("snapshots"), "tmp-"),
        (root.join("content/ingest"), ""),
    ] {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(prefix) {
                out.push(format!("{}/{name}", dir.display()));
            }
        }
    }
    out.retain(|m| !m.contains("/state/"));
    out
}

#[tokio::test]
async fn a_failing_run_reports_its_exit_code_and_leaves_nothing_behind() {
    let (d, base) = daemon();
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        &[(
            "Dockerfile",
            &format!(
                "FROM {base}\nRUN echo partial > /partial\nRUN echo about-to-fail && exit 3\n"
            ),
        )],
    );
    let before = {
        let mut cri = d.client().await;
        common::pods::pull(&mut cri, &base).await;
        let req = api::ListImagesRequest { filter: None };
        cri.image
            .list_images(req)
            .await
            .unwrap()
            .into_inner()
            .images
            .len()
    };
    let err = build(&d, ctx.path(), &["berth.test/failing:v1"], &[], "")
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("line 3"), "{err:?}");
    assert!(err.message().contains("exited with code 3"), "{err:?}");
    assert_eq!(leftovers(&d), Vec::<String>::new());
    let mut cri = d.client().await;
    let req = api::ListImagesRequest { filter: None };
    let after = cri
        .image
        .list_images(req)
        .await
        .unwrap()
        .into_inner()
        .images
        .len();
    assert_eq!(after, before, "no image from a failed build");
}

#[tokio::test]
async fn bad_dockerfiles_and_escaping_sources_fail_with_the_line() {
    let (d, base) = daemon();
    let outer = tempfile::tempdir().unwrap();
    let ctx = outer.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(outer.path().join("outside.txt"), "host secret").unwrap();
    std::os::unix::fs::symlink("/etc", ctx.join("etc-link")).unwrap();
    std::os::unix::fs::symlink("../outside.txt", ctx.join("up-link")).unwrap();
    let cases: HashMap<&str, (&str, tonic::Code)> = HashMap::from([
        (
            "HEALTHCHECK CMD true",
            ("line 2: HEALTHCHECK", tonic::Code::InvalidArgument),
        ),
        (
            "COPY ../outside.txt /x",
            ("outside the build context", tonic::Code::InvalidArgument),
        ),
        (
            "RUN <<EOF\necho\nEOF",
            ("line 2: heredocs", tonic::Code::InvalidArgument),
        ),
    ]);
    for (step, (message, code)) in cases {
        std::fs::write(ctx.join("Dockerfile"), format!("FROM {base}\n{step}\n")).unwrap();
        let err = build(&d, &ctx, &[], &[], "").await.unwrap_err();
        assert_eq!(err.code(), code, "{step}: {err:?}");
        assert!(err.message().contains(message), "{step}: {err:?}");
    }
    // Symlinks in the context resolve inside it (to nothing here): the host's /etc/passwd and
    // ../outside.txt are never read.
    for source in ["etc-link/passwd", "up-link"] {
        std::fs::write(
            ctx.join("Dockerfile"),
            format!("FROM {base}\nCOPY {source} /x\n"),
        )
        .unwrap();
        let err = build(&d, &ctx, &["berth.test/escape:v1"], &[], "")
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            tonic::Code::InvalidArgument,
            "{source}: {err:?}"
        );
        assert!(!err.message().contains("host secret"), "{err:?}");
    }
    assert_eq!(leftovers(&d), Vec::<String>::new());
}
