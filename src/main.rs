//! The `medbook` binary: everything lives in the library so tests build the same application.

/// On musl (the container image's static build) mimalloc replaces musl's allocator, the usual remedy for its
/// reported slowness under many threads (not benchmarked here). The glibc build keeps glibc's: with mimalloc
/// its idle RSS went from 17.8 to 28.5 MB for no throughput gain the benchmark could tell from noise
/// (docs/benchmarks.md).
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    medbook::cli::run()
}
