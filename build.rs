//! Compiles the Kubernetes protobuf schema (`src/sim/api/protobuf/proto`) into a descriptor set
//! that the simulated API server decodes `application/vnd.kubernetes.protobuf` bodies with.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from("src/sim/api/protobuf/proto");
    println!("cargo::rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    collect(&root, &root, &mut files)?;
    files.sort();
    let set = protox::compile(&files, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("k8s-protobuf.bin");
    std::fs::write(out, prost::Message::encode_to_vec(&set))?;
    Ok(())
}

/// Every `.proto` file under `dir`, relative to `root` (the import path).
fn collect(
    root: &std::path::Path,
    dir: &std::path::Path,
    files: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(root, &path, files)?;
        } else if path.extension().is_some_and(|e| e == "proto")
            && let Ok(rel) = path.strip_prefix(root)
        {
            files.push(rel.to_path_buf());
        }
    }
    Ok(())
}
