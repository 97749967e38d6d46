//! The `sluice` binary: tunes the allocators, arms the crash points, and
//! hands over to [`cli`] (arguments, commands, exit codes).

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

mod bench;
mod bench_trickle;
mod cli;

/// The benchmark modules start their runtime through `crate::runtime`.
pub(crate) use cli::runtime;

unsafe extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// `mi_option_purge_delay` in mimalloc.h (v2): how long freed memory is
/// kept before it goes back to the OS.
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// `mi_option_allow_thp` in mimalloc.h (v3).
const MI_OPTION_ALLOW_THP: std::ffi::c_int = 43;

/// mimalloc returns freed memory to the OS after 10 ms by default; the
/// writers free and reallocate encoder buffers all the time, and the page
/// faults that follow cost 10-15% of CPU. One second keeps the peak about
/// 60 MB higher. `MIMALLOC_PURGE_DELAY` still overrides it.
///
/// zstd (C) allocates with the C library's malloc: each Parquet column
/// writer creates a compression context whose workspace, above glibc's
/// mmap threshold, is a fresh mapping zeroed page by page and unmapped when
/// the writer closes. With a thousand small files per checkpoint that was
/// 200,000 page faults; kept in the heap, freed workspaces are reused.
/// `GLIBC_TUNABLES` still overrides it.
///
/// Transparent huge pages are off for the process: mimalloc asks for them
/// on its arenas, and a 2 MiB page is resident as soon as one byte of it
/// is touched, so the writers' churn of ~1 MiB buffers kept whole huge
/// pages for a few live bytes. On P100 (1M rows) peak RSS went from 935 MB
/// to 850 MB for the same CPU, and the kernel no longer spends 2-3% of it
/// zeroing huge pages. `MIMALLOC_ALLOW_THP=1` turns them back on.
fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a plain integer option; mimalloc reads it on its
        // next purge decision.
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, 1000) };
    }
    let thp = std::env::var("MIMALLOC_ALLOW_THP").is_ok_and(|v| v.trim() != "0");
    if !thp {
        // SAFETY: sets a plain integer option (read when mimalloc maps
        // memory); the prctl only sets a flag on this process's memory map,
        // which also covers what mimalloc mapped before `main`.
        unsafe {
            mi_option_set(MI_OPTION_ALLOW_THP, 0);
            #[cfg(target_os = "linux")]
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("GLIBC_TUNABLES").is_none() {
        // SAFETY: called before any other thread exists; mallopt only
        // changes thresholds of later allocations.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 20);
        }
    }
}

fn main() -> ExitCode {
    tune_allocator();
    sluice::crashpoint::init();
    cli::main()
}
