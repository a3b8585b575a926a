//! The binary's command line: exit codes and the shared token secret.

use std::process::Command;

use medbook::{
    auth::{Role, TokenKeys},
    config::{SECRET_FILE, Secret},
};

fn medbook(data_dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_medbook"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MEDBOOK_DATA_DIR", data_dir);
    cmd
}

fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("medbook-cli-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn bad_configuration_is_one_line_and_exit_code_2() {
    let dir = temp_dir();
    for (var, value) in [
        ("MEDBOOK_STORE", "postgres"),
        ("MEDBOOK_ADDR", "nowhere"),
        ("MEDBOOK_JWT_SECRET", "short"),
    ] {
        let out = medbook(&dir).env(var, value).arg("serve").output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(var), "{stderr}");
    }
    let out = medbook(&dir)
        .env("MEDBOOK_STORE", "aws")
        .args(["token", "--role", "admin", "--sub", "a"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("MEDBOOK_JWT_SECRET"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn token_uses_the_secret_kept_in_the_data_dir() {
    let dir = temp_dir();
    let out = medbook(&dir)
        .args(["token", "--role", "lab", "--sub", "lab-7", "--ttl", "15m"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap();
    let kept = std::fs::read_to_string(dir.join(SECRET_FILE)).unwrap();
    use base64::Engine as _;
    let secret = base64::engine::general_purpose::STANDARD.decode(kept.trim()).unwrap();
    let caller = TokenKeys::new(&Secret::new(secret)).verify(token.trim()).unwrap();
    assert_eq!((caller.role, caller.sub.as_str()), (Role::Lab, "lab-7"));

    let second = medbook(&dir)
        .args(["token", "--role", "lab", "--sub", "lab-7"])
        .output()
        .unwrap();
    assert!(second.status.success());
    assert_eq!(
        std::fs::read_to_string(dir.join(SECRET_FILE)).unwrap(),
        kept,
        "the secret is generated once"
    );

    let bad = medbook(&dir)
        .args(["token", "--role", "root", "--sub", "x"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "clap usage errors exit 2");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn migrate_status_lists_pending_then_applied_on_the_embedded_engine() {
    let dir = temp_dir();
    let status = medbook(&dir).args(["migrate", "--status"]).output().unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    assert!(
        String::from_utf8(status.stdout)
            .unwrap()
            .contains("pending  0001_test_catalog.json")
    );

    let applied = medbook(&dir).arg("migrate").output().unwrap();
    assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));
    let stdout = String::from_utf8(applied.stdout).unwrap();
    assert!(
        stdout.contains("applied 4 migration(s)")
            && stdout.contains("applied  0001_test_catalog.json")
            && stdout.contains("applied  0002_sites.json")
            && stdout.contains("applied  0003_verification.json")
            && stdout.contains("applied  0004_patient_search.json"),
        "{stdout}"
    );

    let again = medbook(&dir).arg("migrate").output().unwrap();
    assert!(
        String::from_utf8(again.stdout)
            .unwrap()
            .contains("applied 0 migration(s)"),
        "data survives restarts"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// `medbook healthcheck` (the container's HEALTHCHECK) exits 0 only when the service answers 200.
#[tokio::test]
async fn healthcheck_exits_0_only_on_a_ready_service() {
    let app = crate::helpers::spawn_app().await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };
    let dir = temp_dir();
    let run = move |addr: String, args: Vec<&'static str>| {
        let mut cmd = medbook(&dir);
        cmd.env("MEDBOOK_ADDR", addr).arg("healthcheck").args(args);
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
    };
    let ready = run(addr.clone(), vec![]).await.unwrap();
    assert_eq!(
        ready.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ready.stderr)
    );
    let missing = run(addr, vec!["--path", "/nowhere"]).await.unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("404"));
    let down = run(closed, vec!["--timeout-ms", "500"]).await.unwrap();
    assert_eq!(down.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&down.stderr).contains("not healthy"));
}
