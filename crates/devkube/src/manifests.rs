//! Reading Kubernetes manifests: multi-document YAML files and folders of them, as `kubectl
//! apply -f` reads them, into JSON values.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// Why manifests could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file or folder could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not valid YAML.
    #[error("{path} is not valid YAML: {message}")]
    Yaml {
        /// The path concerned.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
}

/// Parses a multi-document YAML stream; empty documents (only comments) are skipped.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, String> {
    let documents: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| e.to_string())?;
    Ok(documents.into_iter().filter(|d| !d.is_null()).collect())
}

/// Reads the documents of one file.
pub fn read_file(path: &Path) -> Result<Vec<Value>, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_documents(&text).map_err(|message| ManifestError::Yaml {
        path: path.to_owned(),
        message,
    })
}

/// The `.yaml`/`.yml`/`.json` files directly in a folder (not its subfolders, as `kubectl apply
/// -f DIR` without `-R`), in name order.
pub fn files_in(dir: &Path) -> Result<Vec<PathBuf>, ManifestError> {
    let io = |source| ManifestError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let is_manifest = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
        if path.is_file() && is_manifest {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Reads every document of every manifest file directly in a folder, in file-name order.
pub fn read_dir(dir: &Path) -> Result<Vec<Value>, ManifestError> {
    let mut documents = Vec::new();
    for file in files_in(dir)? {
        documents.extend(read_file(&file)?);
    }
    Ok(documents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_streams_skip_empty_documents() {
        let text = "# a comment\n---\na: 1\n---\n# only a comment\n---\nb: [x]\n";
        let documents = parse_documents(text).unwrap();
        assert_eq!(
            documents,
            vec![serde_json::json!({"a": 1}), serde_json::json!({"b": ["x"]})]
        );
    }

    #[test]
    fn invalid_yaml_is_an_error() {
        assert!(parse_documents("a: [unclosed\n").is_err());
    }
}
