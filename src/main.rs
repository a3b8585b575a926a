//! The `medbook` binary: everything lives in the library so tests build the same application.

fn main() -> std::process::ExitCode {
    medbook::cli::run()
}
