//! The `medbook` binary: everything lives in the library so tests build the same application.

/// mimalloc instead of the C library's allocator: the service allocates many small short-lived buffers per
/// request (JSON, SDK requests), and malloc/free were a fifth of its CPU in a profile (docs/benchmarks.md).
/// It is also the usual fix for musl's slow allocator in static builds.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    medbook::cli::run()
}
