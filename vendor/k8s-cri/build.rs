fn main() {
    tonic_prost_build::configure()
        .type_attribute(".", "#[derive(serde::Serialize, serde::Deserialize)]")
        // berth: records written before a field existed still deserialize.
        .type_attribute(".runtime.v1.Mount", "#[serde(default)]")
        .type_attribute(".runtime.v1.ImageSpec", "#[serde(default)]")
        .compile_protos(&["proto/v1.proto"], &["proto/"])
        .unwrap();

    tonic_prost_build::configure()
        .type_attribute(".", "#[derive(serde::Serialize, serde::Deserialize)]")
        .compile_protos(&["proto/v1alpha2.proto"], &["proto/"])
        .unwrap();
}
