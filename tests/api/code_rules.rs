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

/// `text` without its comments (doc comments may describe key layouts) and without its
/// `#[cfg(test)] mod tests { … }` blocks (found by brace depth), wherever they stand.
fn without_test_modules(text: &str) -> String {
    let text: String = text
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .map(|line| format!("{line}\n"))
        .collect();
    let text = text.as_str();
    let mut code = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        let after = &rest[at + "#[cfg(test)]".len()..];
        let Some(body) = after.trim_start().strip_prefix("mod tests {") else {
            // A `#[cfg(test)]` on anything but a tests module is code like any other.
            code.push_str(&rest[..at + "#[cfg(test)]".len()]);
            rest = after;
            continue;
        };
        code.push_str(&rest[..at]);
        let mut depth = 1;
        let mut end = body.len();
        for (i, c) in body.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                end = i + 1;
                break;
            }
        }
        rest = &body[end..];
    }
    code.push_str(rest);
    code
}

#[test]
fn only_test_modules_are_left_out_of_the_code_rules() {
    let text = "a\n#[cfg(test)]\nmod tests {\n fn t() { \"PATIENT#\" }\n}\nb \"BOOKING#\"\n/// \"SLOT#\"\n#[cfg(test)]\nfn helper() {}\n";
    let code = without_test_modules(text);
    assert!(!code.contains("PATIENT#") && !code.contains("SLOT#"), "{code}");
    assert!(code.contains("BOOKING#") && code.contains("fn helper"), "{code}");
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
            // Unit tests may spell keys out to pin them; every other line must not.
            let code = without_test_modules(&text);
            prefixes
                .iter()
                .filter(|prefix| code.contains(*prefix))
                .map(|prefix| format!("{}: {prefix}", p.display()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(offenders.is_empty(), "key formats outside store/keys.rs: {offenders:?}");
}
