//! The embedded engine (dynoxide, in memory) as a process of its own, on a port of your choice: what the
//! container smoke test (`.ci/container`) runs medbook's production build against, through the standard
//! AWS variables. `cargo run --example engine -- 127.0.0.1:8000`; stops on Ctrl-C / SIGINT.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8000".into());
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("engine: cannot listen on {addr}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let db = match dynoxide::Database::memory() {
        Ok(db) => db,
        Err(e) => {
            eprintln!("engine: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("engine listening on http://{addr}");
    let stopped = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match dynoxide::server::serve_with_shutdown(listener, db, stopped).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("engine: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
