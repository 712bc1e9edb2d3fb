//! The committed OpenAPI document matches the code, and the deployment files hold together.

use std::path::Path;

const REFRESH: &str = "cargo run -q -- openapi > api-spec/openapi.json";

#[test]
fn committed_openapi_matches_the_code() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("api-spec/openapi.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = tavana_http::openapi()
        .to_pretty_json()
        .expect("the spec renders");
    assert!(
        committed.trim_end() == generated.trim_end(),
        "api-spec/openapi.json is out of date with the code.\n\
         Refresh it with `{REFRESH}`, read the diff, and commit it."
    );
}

#[test]
fn openapi_is_3_1_and_documents_every_operation() {
    let spec = serde_json::to_value(tavana_http::openapi()).expect("json");
    assert!(
        spec["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1"))
    );
    let paths = spec["paths"].as_object().expect("paths");
    for expected in [
        "/health/live",
        "/health/ready",
        "/metrics",
        "/api/v1/areas",
        "/api/v1/areas/{id}",
    ] {
        assert!(paths.contains_key(expected), "{expected} is documented");
    }
    for (path, item) in paths {
        for (method, operation) in item.as_object().expect("path item") {
            let responses = operation["responses"].as_object().expect("responses");
            for status in ["400", "500", "503"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} documents {status}"
                );
            }
        }
    }
}

fn yaml(path: &str) -> yaml_rust2::Yaml {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .expect("file exists");
    let mut docs = yaml_rust2::YamlLoader::load_from_str(&text).expect("valid YAML");
    assert_eq!(docs.len(), 1, "one YAML document");
    docs.remove(0)
}

/// No Docker engine runs here, so the compose file is checked by reading it.
#[test]
fn docker_compose_starts_the_api_after_a_healthy_postgres() {
    let compose = yaml("docker-compose.yml");
    let services = &compose["services"];
    let postgres = &services["postgres"];
    assert!(
        postgres["image"]
            .as_str()
            .is_some_and(|i| i.starts_with("postgres:16")),
        "PostgreSQL 16"
    );
    assert!(
        !postgres["healthcheck"]["test"].is_badvalue(),
        "postgres has a health check"
    );
    assert!(
        !postgres["volumes"].is_badvalue(),
        "postgres keeps its data in a volume"
    );
    assert!(!compose["volumes"].is_badvalue(), "the volume is declared");

    let api = &services["api"];
    assert_eq!(api["build"]["dockerfile"].as_str(), Some("Dockerfile"));
    assert_eq!(
        api["depends_on"]["postgres"]["condition"].as_str(),
        Some("service_healthy")
    );
    let environment = api["environment"].as_hash().expect("environment map");
    let database_url = environment
        .get(&yaml_rust2::Yaml::String("DATABASE_URL".into()))
        .and_then(|v| v.as_str())
        .expect("DATABASE_URL");
    assert!(database_url.starts_with("postgres://") && database_url.contains("@postgres:5432/"));
    assert!(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("Dockerfile")
            .is_file()
    );
}

/// Every enum the document lists is spelt as the API sends it (snake_case), so a client generated
/// from the document understands the answers.
#[test]
fn documented_enum_values_are_the_ones_on_the_wire() {
    fn walk(value: &serde_json::Value, path: &str, bad: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(values) = map.get("enum").and_then(|e| e.as_array()) {
                    for v in values.iter().filter_map(|v| v.as_str()) {
                        if !v
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                        {
                            bad.push(format!("{path}: {v}"));
                        }
                    }
                }
                for (key, child) in map {
                    walk(child, &format!("{path}/{key}"), bad);
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, path, bad)),
            _ => {}
        }
    }
    let spec = serde_json::to_value(tavana_http::openapi()).expect("json");
    let mut bad = Vec::new();
    walk(&spec, "", &mut bad);
    assert!(bad.is_empty(), "enum values not as sent: {bad:?}");
    let income = &spec["components"]["schemas"]["IncomeBandDto"]["enum"];
    assert!(
        income
            .as_array()
            .is_some_and(|v| v.iter().any(|x| x == "20m_to_50m")),
        "{income}"
    );
}
