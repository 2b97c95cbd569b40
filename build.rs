//! Compiles berth's own protocols in proto/ (CRI types come from the k8s-cri crate).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure().compile_protos(
        &[
            "proto/berth/v1/admin.proto",
            "proto/berth/shim/v1/shim.proto",
        ],
        &["proto"],
    )?;
    Ok(())
}
