//! Fuzzes request decoding of the simulated API server: every request built from the input
//! must get a success or a well-formed `Status` within a bound, never a panic or a hang.

#![no_main]

// Seeds are written by the replay test, so the encoder is unused here.
#[allow(dead_code)]
#[path = "../../tests/common/fuzz_request.rs"]
mod fuzz_request;

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;

/// An async hang fails here; a busy loop is caught by libFuzzer's `-timeout`.
const BOUND: Duration = Duration::from_secs(5);

struct State {
    runtime: tokio::runtime::Runtime,
    harness: fuzz_request::Harness,
}

/// One runtime and one cluster per process.
fn state() -> &'static Mutex<State> {
    static STATE: OnceLock<Mutex<State>> = OnceLock::new();
    STATE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime for the fuzz target");
        Mutex::new(State {
            runtime,
            harness: fuzz_request::Harness::new(),
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let mut guard = state()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let State { runtime, harness } = &mut *guard;
    if let Err(e) = runtime.block_on(fuzz_request::run(harness, data, BOUND)) {
        panic!("{e}");
    }
});
