//! Compiles the CRI v1 API (proto/k8s/cri-api, upstream's file byte for byte), the NRI API
//! (proto/nri, upstream's file byte for byte, for ttrpc) and berth's own protocols in proto/berth, links the per-pod `berth-shim` as a position-dependent executable
//! (docs/adr/0002-non-pie-shim.md) and every binary with packed relative relocations
//! (docs/adr/0012-packed-relative-relocations.md), and records when it ran (`BERTH_BUILD_EPOCH`, for
//! `berth doctor`'s clock check).

use std::path::PathBuf;

/// The upstream CRI definition; see proto/k8s/cri-api/README.md and docs/adr/0006.
const CRI_PROTO: &str = "proto/k8s/cri-api/v1/api.proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    // `berth doctor` flags a clock set before this moment (a lower bound of the build time: the
    // script reruns only when proto/ changes).
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    println!("cargo:rustc-env=BERTH_BUILD_EPOCH={}", now.as_secs());
    // One shim runs per pod: without dynamic relocations its pointer tables stay shared file
    // pages instead of ~400 KiB of private memory in every shim.
    println!("cargo:rustc-link-arg-bin=berth-shim=-no-pie");
    // The binaries' relative relocations as a DT_RELR bitmap (7 KiB for berthd) instead of
    // 24-byte RELA entries (595 KiB, read at every start and resident after); needs glibc 2.36.
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    compile_cri()?;
    compile_nri()?;
    tonic_prost_build::configure().compile_protos(
        &[
            "proto/berth/v1/admin.proto",
            "proto/berth/shim/v1/shim.proto",
        ],
        &["proto"],
    )?;
    Ok(())
}

/// Compiles the NRI API (proto/nri/README.md) into `$OUT_DIR/nri/{api,api_ttrpc}.rs`, without
/// the inner attributes and doc comments rust-protobuf puts at the top of each file (they cannot
/// stand inside the `mod` that `include!`s them; src/nri/mod.rs sets its own).
fn compile_nri() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("nri");
    std::fs::create_dir_all(&out)?;
    ttrpc_codegen::Codegen::new()
        .out_dir(&out)
        .inputs(["proto/nri/api.proto"])
        .include("proto/nri")
        .rust_protobuf()
        .customize(ttrpc_codegen::Customize {
            async_all: true,
            ..Default::default()
        })
        .run()?;
    for name in ["api.rs", "api_ttrpc.rs"] {
        let path = out.join(name);
        let text = std::fs::read_to_string(&path)?;
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with("#![") && !l.starts_with("//!"))
            .collect();
        std::fs::write(&path, kept.join("\n"))?;
    }
    Ok(())
}

/// Compiles a copy of the CRI proto without the field options older protoc releases reject
/// (`debug_redact`, protobuf 22+; Debian 12 ships 3.21). The options only steer Go's printing.
fn compile_cri() -> Result<(), Box<dyn std::error::Error>> {
    let upstream = std::fs::read_to_string(CRI_PROTO)?;
    let stripped = upstream.replace(" [debug_redact = true]", "");
    if stripped.contains("debug_redact") {
        return Err(format!("{CRI_PROTO}: a debug_redact option in an unexpected form").into());
    }
    let dir = PathBuf::from(std::env::var("OUT_DIR")?).join("cri-proto");
    std::fs::create_dir_all(&dir)?;
    let copy = dir.join("api.proto");
    std::fs::write(&copy, stripped)?;
    tonic_prost_build::configure()
        // Records in the metadata database are the JSON of these types (src/store); a field
        // added by a later CRI version reads as its default from an older record.
        .message_attribute(
            ".",
            "#[derive(serde::Serialize, serde::Deserialize)] #[serde(default)]",
        )
        .enum_attribute(".", "#[derive(serde::Serialize, serde::Deserialize)]")
        // A string before CRI v0.34: old records hold a JSON string (crate::cri_api::env_value).
        .field_attribute(
            ".runtime.v1.KeyValue.value",
            "#[serde(with = \"crate::cri_api::env_value\")]",
        )
        .compile_protos(&[copy], &[dir])?;
    Ok(())
}
