//! The embedded engine (dynoxide, in memory) as a process of its own, on a port of your choice: what the
//! container smoke test (`.ci/container`) runs medbook's production build against, through the standard
//! AWS variables. It accepts only requests signed with `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` as set
//! for it. `AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… cargo run --example engine -- 127.0.0.1:8000`; stops on
//! Ctrl-C / SIGINT.

use medbook::{engine::EmbeddedEngine, store::client::LocalCredentials};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8000".into());
    let (Ok(key), Ok(secret)) = (
        std::env::var("AWS_ACCESS_KEY_ID"),
        std::env::var("AWS_SECRET_ACCESS_KEY"),
    ) else {
        eprintln!("engine: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to the credentials it should accept");
        return std::process::ExitCode::FAILURE;
    };
    let engine = match EmbeddedEngine::start_memory_on(&addr, LocalCredentials::new(&key, &secret)).await {
        Ok(engine) => engine,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("engine listening on {}", engine.endpoint());
    let _ = tokio::signal::ctrl_c().await;
    engine.shutdown().await;
    std::process::ExitCode::SUCCESS
}
