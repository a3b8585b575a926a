//! House rules that a reviewer would otherwise have to remember.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn no_request_path_uses_scan() {
    let offenders: Vec<String> = rust_files(&src())
        .into_iter()
        .filter(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            text.contains(".scan(") || text.contains("ScanInput") || text.contains("scan::")
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        offenders.is_empty(),
        "Scan in src/: {offenders:?}; use GetItem/Query/BatchGetItem"
    );
}

#[test]
fn key_prefixes_are_written_only_in_keys_rs() {
    let prefixes = [
        "\"PATIENT#",
        "\"BOOKING#",
        "\"TESTTYPE#",
        "\"SLOTS#",
        "\"SLOT#",
        "\"DAY#",
        "\"AUDIT#",
        "\"IDEMPOTENCY#",
        "#TEST#",
        "\"RESULTREV#",
    ];
    let keys_rs = src().join("store").join("keys.rs");
    let offenders: Vec<String> = rust_files(&src())
        .into_iter()
        .filter(|p| *p != keys_rs)
        .flat_map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            // Unit tests may spell keys out to pin them; only the code above them must not.
            let code = text.split("#[cfg(test)]").next().unwrap_or_default().to_owned();
            prefixes
                .iter()
                .filter(|prefix| code.contains(*prefix))
                .map(|prefix| format!("{}: {prefix}", p.display()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(offenders.is_empty(), "key formats outside store/keys.rs: {offenders:?}");
}
