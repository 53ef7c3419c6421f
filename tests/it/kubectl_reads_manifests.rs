//! The installed `kubectl` reads the committed CRDs and examples as the same objects we do:
//! `kubectl kustomize` parses them with kubectl's own YAML and resource machinery, offline.
//! Skips with a message where `kubectl` is not installed.

use crate::support;

use std::path::Path;
use std::process::Command;

use devkube::manifests;
use serde_json::Value;
use support::repo_path;

/// Runs `kubectl kustomize` over copies of `files`; `None` when kubectl is not installed.
fn kubectl_kustomize(files: &[std::path::PathBuf]) -> Option<Vec<Value>> {
    if !support::kubectl_available() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut kustomization = String::from("resources:\n");
    for (index, file) in files.iter().enumerate() {
        let name = format!("{index:02}-{}", file.file_name().unwrap().to_string_lossy());
        std::fs::copy(file, dir.path().join(&name)).unwrap();
        kustomization.push_str(&format!("- {name}\n"));
    }
    std::fs::write(dir.path().join("kustomization.yaml"), kustomization).unwrap();
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "kubectl cannot read the manifests: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(manifests::parse_documents(&String::from_utf8(output.stdout).unwrap()).unwrap())
}

fn identity(object: &Value) -> (String, String, String) {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (
        text(&object["apiVersion"]),
        text(&object["kind"]),
        text(&object["metadata"]["name"]),
    )
}

fn assert_same_objects(folder: &Path) {
    let files = manifests::files_in(folder).unwrap();
    let Some(read_by_kubectl) = kubectl_kustomize(&files) else {
        return;
    };
    let read_by_us = manifests::read_dir(folder).unwrap();
    let mut ours: Vec<_> = read_by_us.iter().map(identity).collect();
    let mut theirs: Vec<_> = read_by_kubectl.iter().map(identity).collect();
    ours.sort();
    theirs.sort();
    assert_eq!(ours, theirs);
    for object in &read_by_us {
        let same = read_by_kubectl
            .iter()
            .find(|o| identity(o) == identity(object))
            .unwrap();
        assert_eq!(
            same,
            object,
            "kubectl reads {:?} differently",
            identity(object)
        );
    }
}

#[test]
fn kubectl_reads_the_crds_as_we_do() {
    assert_same_objects(&repo_path("crds"));
}

#[test]
fn kubectl_reads_the_examples_as_we_do() {
    assert_same_objects(&repo_path("deploy/examples"));
}
