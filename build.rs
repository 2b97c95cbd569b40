//! Compiles berth's own protocols in proto/ (CRI types come from the k8s-cri crate), and links
//! the per-pod `berth-shim` as a position-dependent executable (docs/adr/0002-non-pie-shim.md),
//! and records when it ran (`BERTH_BUILD_EPOCH`, for `berth doctor`'s clock check).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    // `berth doctor` flags a clock set before this moment (a lower bound of the build time: the
    // script reruns only when proto/ changes).
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    println!("cargo:rustc-env=BERTH_BUILD_EPOCH={}", now.as_secs());
    // One shim runs per pod: without dynamic relocations its pointer tables stay shared file
    // pages instead of ~400 KiB of private memory in every shim.
    println!("cargo:rustc-link-arg-bin=berth-shim=-no-pie");
    tonic_prost_build::configure().compile_protos(
        &[
            "proto/berth/v1/admin.proto",
            "proto/berth/shim/v1/shim.proto",
        ],
        &["proto"],
    )?;
    Ok(())
}
