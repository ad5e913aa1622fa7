//! Compiles Temporal's service protos, with their `google.api.http` options, into
//! `$OUT_DIR/temporal_http_descriptors.bin` for the HTTP/JSON API (`src/http/`).
//!
//! `temporalio-protos` ships the `.proto` files but its own descriptor set drops extension
//! options, so the routes must be read from a set compiled here. The protos are the ones of
//! the `temporalio-protos` this package resolves to (found with `cargo metadata`), so the
//! routes always match the message types the server is built with.

use std::path::{Path, PathBuf};
use std::{env, process::Command};

/// The `protos/` folder of the `temporalio-protos` crate in this package's dependency graph:
/// `TEMPORAL_PROTOS_DIR` if set, else the registry copy of the version `Cargo.lock` names,
/// else what `cargo metadata` says (needs every dependency present, dev ones included).
fn temporal_protos_dir() -> PathBuf {
    if let Ok(dir) = env::var("TEMPORAL_PROTOS_DIR") {
        return dir.into();
    }
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    if let Some(dir) = from_registry(&manifest_dir) {
        return dir;
    }
    from_metadata(&manifest_dir)
}

fn locked_version(manifest_dir: &Path) -> Option<String> {
    let lock = manifest_dir.ancestors().map(|d| d.join("Cargo.lock")).find(|p| p.exists())?;
    println!("cargo:rerun-if-changed={}", lock.display());
    let text = std::fs::read_to_string(lock).ok()?;
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "name = \"temporalio-protos\"" {
            let version = lines.next()?.trim().strip_prefix("version = \"")?.strip_suffix('"')?;
            return Some(version.to_string());
        }
    }
    None
}

fn from_registry(manifest_dir: &Path) -> Option<PathBuf> {
    let version = locked_version(manifest_dir)?;
    let home = env::var("CARGO_HOME")
        .map(PathBuf::from)
        .ok()
        .or_else(|| env::var("HOME").ok().map(|h| PathBuf::from(h).join(".cargo")))?;
    let registries = std::fs::read_dir(home.join("registry").join("src")).ok()?;
    registries
        .filter_map(Result::ok)
        .map(|r| r.path().join(format!("temporalio-protos-{version}")).join("protos"))
        .find(|p| p.join("api_upstream").is_dir())
}

fn from_metadata(manifest_dir: &Path) -> PathBuf {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = env::var("TARGET").expect("cargo sets TARGET");
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline", "--filter-platform", &target, "--manifest-path"])
        .arg(manifest_dir.join("Cargo.toml"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cannot find temporalio-protos' protos (set TEMPORAL_PROTOS_DIR): cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let packages: Vec<&serde_json::Value> = meta["packages"]
        .as_array()
        .expect("cargo metadata lists packages")
        .iter()
        .filter(|p| p["name"] == "temporalio-protos")
        .collect();
    assert_eq!(packages.len(), 1, "expected exactly one temporalio-protos in the dependency graph");
    let manifest_path = packages[0]["manifest_path"].as_str().expect("a manifest path");
    PathBuf::from(manifest_path).parent().expect("the crate's folder").join("protos")
}

fn main() {
    let protos = temporal_protos_dir();
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=TEMPORAL_PROTOS_DIR");
    let files = [
        "temporal/api/workflowservice/v1/service.proto",
        "temporal/api/operatorservice/v1/service.proto",
        "temporal/api/errordetails/v1/message.proto",
        "google/rpc/status.proto",
    ];
    let includes = [protos.join("api_upstream"), protos.clone()];
    let mut compiler = protox::Compiler::new(includes).expect("protox include paths");
    compiler.include_imports(true).include_source_info(false);
    compiler.open_files(files).expect("compile Temporal's protos");
    // `encode_file_descriptor_set` keeps extension options such as google.api.http;
    // `file_descriptor_set` goes through prost-types and loses them.
    let bytes = compiler.encode_file_descriptor_set();
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("temporal_http_descriptors.bin");
    std::fs::write(&out, bytes).expect("write the descriptor set");
}
