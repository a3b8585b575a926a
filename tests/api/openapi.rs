//! The committed spec must match the one generated from the handlers.

use reqwest::Method;

use crate::helpers::spawn_app;

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");

#[tokio::test]
async fn the_committed_openapi_spec_matches_the_code() {
    let generated = medbook::api::openapi().to_pretty_json().unwrap();
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    // Compared as JSON values: key order can differ between builds (serde_json's preserve_order is
    // switched on by some dev-dependencies), the content may not.
    let same = serde_json::from_str::<serde_json::Value>(&committed).ok()
        == Some(serde_json::from_str::<serde_json::Value>(&generated).unwrap());
    if !same {
        let _ = std::fs::write(std::env::temp_dir().join("medbook-openapi.generated.json"), &generated);
    }
    assert!(
        same,
        "openapi/openapi.json differs from the spec generated from the code.\n\
         Regenerate it with:  cargo run -q -- openapi > openapi/openapi.json\n\
         (the generated spec was written to $TMPDIR/medbook-openapi.generated.json for a diff)"
    );

    let app = spawn_app().await;
    let served: serde_json::Value = app
        .request(Method::GET, "/openapi.json", None)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let generated: serde_json::Value = serde_json::from_str(&generated).unwrap();
    assert_eq!(served, generated, "/openapi.json serves the same spec");
    assert_eq!(served["info"]["license"]["name"], "MIT OR Apache-2.0");
    assert!(served["components"]["securitySchemes"]["bearer"].is_object());
}

#[test]
fn every_object_schema_has_an_example() {
    let spec = serde_json::to_value(medbook::api::openapi()).unwrap();
    let missing: Vec<&String> = spec["components"]["schemas"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, schema)| schema.get("enum").is_none() && schema.get("example").is_none())
        .map(|(name, _)| name)
        .collect();
    assert!(missing.is_empty(), "schemas without an example: {missing:?}");
}

/// Every string and array a request body can carry is bounded in the spec, so clients and fuzzers know the
/// limits the server enforces.
#[test]
fn every_request_body_string_and_array_is_bounded() {
    let spec = serde_json::to_value(medbook::api::openapi()).unwrap();
    let schemas = spec["components"]["schemas"].clone();
    fn walk(
        schema: &serde_json::Value,
        schemas: &serde_json::Value,
        path: String,
        seen: &mut Vec<String>,
        out: &mut Vec<String>,
    ) {
        let schema = match schema.get("$ref").and_then(|r| r.as_str()) {
            Some(r) => {
                let name = r.rsplit('/').next().unwrap().to_owned();
                if seen.contains(&name) {
                    return;
                }
                seen.push(name.clone());
                &schemas[&name]
            }
            None => schema,
        };
        for key in ["allOf", "oneOf", "anyOf"] {
            for sub in schema.get(key).and_then(|v| v.as_array()).into_iter().flatten() {
                walk(sub, schemas, path.clone(), seen, out);
            }
        }
        let types: Vec<&str> = match &schema["type"] {
            serde_json::Value::String(t) => vec![t.as_str()],
            serde_json::Value::Array(ts) => ts.iter().filter_map(|t| t.as_str()).collect(),
            _ => vec![],
        };
        let has = |k: &str| schema.get(k).is_some();
        if types.contains(&"string") && !(has("maxLength") || has("enum") || has("format") || has("pattern")) {
            out.push(format!("unbounded string {path}"));
        }
        if types.contains(&"array") {
            if !has("maxItems") {
                out.push(format!("unbounded array {path}"));
            }
            walk(&schema["items"], schemas, format!("{path}[]"), seen, out);
        }
        for (name, property) in schema
            .get("properties")
            .and_then(|p| p.as_object())
            .into_iter()
            .flatten()
        {
            walk(property, schemas, format!("{path}.{name}"), seen, out);
        }
    }
    let mut out = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if let Some(content) = operation.pointer("/requestBody/content").and_then(|c| c.as_object()) {
                for media in content.values() {
                    walk(
                        &media["schema"],
                        &schemas,
                        format!("{method} {path}"),
                        &mut Vec::new(),
                        &mut out,
                    );
                }
            }
        }
    }
    assert!(out.is_empty(), "{out:#?}");
}
