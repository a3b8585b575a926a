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
        let end = block_end(body);
        rest = &body[end..];
    }
    code.push_str(rest);
    code
}

/// Where the block whose body starts `body` (just after its `{`) ends: the index after its `}`, counting
/// braces outside string, raw string and character literals.
fn block_end(body: &str) -> usize {
    let bytes = body.as_bytes();
    let (mut depth, mut i) = (1usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            b'r' if matches!(bytes.get(i + 1), Some(b'#' | b'"')) && !is_ident(bytes, i) => {
                let hashes = bytes[i + 1..].iter().take_while(|b| **b == b'#').count();
                if bytes.get(i + 1 + hashes) == Some(&b'"') {
                    let close = format!("\"{}", "#".repeat(hashes));
                    let from = i + 2 + hashes;
                    i = body[from..]
                        .find(&close)
                        .map_or(bytes.len(), |j| from + j + close.len());
                    continue;
                }
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'\'' if bytes.get(i + 2) == Some(&b'\'') => i += 2,
            b'\'' if bytes.get(i + 1) == Some(&b'\\') && bytes.get(i + 3) == Some(&b'\'') => i += 3,
            _ => {}
        }
        i += 1;
    }
    bytes.len()
}

/// Whether the byte at `i` continues an identifier (so an `r` there is no raw-string prefix).
fn is_ident(bytes: &[u8], i: usize) -> bool {
    i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_') && bytes[i - 1] != b'b'
}

#[test]
fn only_test_modules_are_left_out_of_the_code_rules() {
    let text = "a\n#[cfg(test)]\nmod tests {\n fn t() { \"PATIENT#\" }\n}\nb \"BOOKING#\"\n/// \"SLOT#\"\n#[cfg(test)]\nfn helper() {}\n";
    let code = without_test_modules(text);
    assert!(!code.contains("PATIENT#") && !code.contains("SLOT#"), "{code}");
    assert!(code.contains("BOOKING#") && code.contains("fn helper"), "{code}");
    // Braces inside literals of a test module do not end it early or keep it open.
    let text = "#[cfg(test)]\nmod tests {\n let a = \"{\"; let b = r#\"{\"#; let c = '{';\n}\nafter \"SLOTS#\"\n";
    assert!(without_test_modules(text).contains("after \"SLOTS#\""));
    let text = "#[cfg(test)]\nmod tests {\n let a = \"}\"; let b = br#\"}\"#; let c = '}'; \"PATIENT#\"\n}\n";
    assert!(!without_test_modules(text).contains("PATIENT#"));
}

#[test]
fn no_request_path_uses_scan() {
    // The Scans allowed are one-off migrations, which run once, before the service answers: the sites
    // migration (`Store::move_bookings_to_site`, moving the bookings made before sites) and the patient backfill
    // (`Store::index_patients`, giving profiles made before the search index its attributes and e-mail guards).
    let one_off_migration = src().join("store").join("migrate.rs");
    let offenders: Vec<String> = rust_files(&src())
        .into_iter()
        .filter(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            let scans = text.matches(".scan(").count();
            let allowed = if *p == one_off_migration { 3 } else { 0 };
            scans > allowed || text.contains("ScanInput") || text.contains("scan::")
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

/// The crates of `crates` and the crate modules of `modules` that `code` names: `krate::…`, `crate::m::…`, or `m`
/// at the top of a `use crate::{…}` group.
fn names_in(code: &str, crates: &[&str], modules: &[&str]) -> Vec<String> {
    let mut found: Vec<String> = crates
        .iter()
        .filter(|krate| code.contains(&format!("{krate}::")))
        .map(|krate| (*krate).to_owned())
        .collect();
    for module in modules {
        let inline = code.contains(&format!("crate::{module}::")) || code.contains(&format!("crate::{module};"));
        let grouped = code.split("use crate::{").skip(1).any(|group| {
            let group = &group[..group.find(';').unwrap_or(group.len())];
            let (mut depth, mut top) = (0, String::new());
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ if depth == 0 => top.push(c),
                    _ => {}
                }
            }
            top.split(',')
                .any(|item| item.trim().split("::").next() == Some(*module))
        });
        if inline || grouped {
            found.push(format!("crate::{module}"));
        }
    }
    found
}

/// What the files of `layer` (a folder of src/) name that the layer map of docs/architecture.md forbids.
fn layer_offences(layer: &str, crates: &[&str], modules: &[&str], except: &[&str]) -> Vec<String> {
    let mut files = rust_files(&src().join(layer));
    // A layer that is a file beside its folder (`auth.rs` and `auth/`).
    let root = src().join(format!("{layer}.rs"));
    if root.exists() {
        files.push(root);
    }
    files
        .into_iter()
        .filter_map(|path| {
            let name = path.strip_prefix(src()).unwrap().display().to_string();
            let code = without_test_modules(&std::fs::read_to_string(&path).unwrap());
            let found = names_in(&code, crates, modules);
            (!except.contains(&name.as_str()) && !found.is_empty()).then(|| format!("{name}: {found:?}"))
        })
        .collect()
}

#[test]
fn layers_import_only_what_the_map_allows() {
    let mut offences = Vec::new();
    offences.extend(layer_offences(
        "domain",
        &[
            "aws_sdk_dynamodb",
            "aws_sdk_dynamodbstreams",
            "aws_smithy_types",
            "serde_dynamo",
            "axum",
            "hyper",
            "http",
            "tokio",
            "reqwest",
        ],
        &["config", "auth", "store", "service", "api", "startup", "engine"],
        &[],
    ));
    offences.extend(layer_offences(
        "store",
        &["axum", "hyper", "tower", "tower_http", "http", "reqwest", "dynoxide"],
        &["auth", "service", "api", "startup", "engine"],
        &[],
    ));
    offences.extend(layer_offences(
        "service",
        &[
            "aws_sdk_dynamodb",
            "aws_sdk_dynamodbstreams",
            "aws_smithy_types",
            "serde_dynamo",
            "axum",
            "hyper",
            "http",
            "dynoxide",
        ],
        &["auth", "api", "startup", "engine", "config"],
        &[],
    ));
    offences.extend(layer_offences(
        "auth",
        &[
            "aws_sdk_dynamodb",
            "aws_sdk_dynamodbstreams",
            "aws_smithy_types",
            "serde_dynamo",
            "axum",
            "dynoxide",
        ],
        &["store", "service", "api", "startup", "engine"],
        &[],
    ));
    // The one exception: the middleware that reads the per-request Dynamodb-Usage meter the store fills.
    offences.extend(layer_offences(
        "api",
        &[
            "aws_sdk_dynamodb",
            "aws_sdk_dynamodbstreams",
            "aws_smithy_types",
            "serde_dynamo",
            "dynoxide",
        ],
        &["store", "startup", "engine"],
        &["api/usage.rs"],
    ));
    assert!(offences.is_empty(), "layers skipped: {offences:#?}");
}

#[test]
fn the_layer_rule_sees_grouped_and_inline_imports() {
    let modules = ["store"];
    let crates = ["axum"];
    assert_eq!(
        names_in("use crate::{domain::{a, b}, store::Store};", &crates, &modules),
        ["crate::store"]
    );
    assert_eq!(
        names_in("fn f() { crate::store::keys::x(); }", &crates, &modules),
        ["crate::store"]
    );
    assert_eq!(names_in("use axum::Router;", &crates, &modules), ["axum"]);
    assert!(names_in("use crate::{domain::store_like, domain::{store}};", &crates, &modules).is_empty());
}
