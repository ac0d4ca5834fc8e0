//! Lambda events of every shape (API Gateway REST and HTTP, ALB, Function URL, direct
//! invocation) through the handler, in front of a router that echoes what reached it.
#![no_main]
use axum::routing::any;
use libfuzzer_sys::fuzz_target;

// Harken catches panics raised inside this crate on purpose.
fuzz_target!(init: harken_fuzz::tolerate_caught_panics_in("/lambda_http-"), |data: &[u8]| {
    let Ok(payload) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    // Fan-out events fetch from S3 and write results: network I/O has no place in a fuzz loop.
    // Their request lines are fuzzed by `batch_request`, their shapes by the handler's tests.
    if matches!(
        harken_lambda::classify(&payload),
        harken_lambda::EventKind::MapBatch | harken_lambda::EventKind::S3Batch | harken_lambda::EventKind::Sqs
    ) {
        return;
    }
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().build() else { return };
    let router = axum::Router::new().fallback(any(|body: axum::body::Bytes| async move { body }));
    let handler = harken_lambda::Handler::new(router);
    let event = lambda_runtime::LambdaEvent::new(payload, lambda_runtime::Context::default());
    let _ = rt.block_on(handler.handle(event));
});
