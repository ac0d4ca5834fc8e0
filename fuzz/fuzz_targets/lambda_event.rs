//! Lambda events of every shape (API Gateway REST and HTTP, ALB, Function URL, direct
//! invocation) through the handler, in front of a router that echoes what reached it.
#![no_main]
use axum::routing::any;
use libfuzzer_sys::fuzz_target;


/// libFuzzer's panic hook aborts on every panic, even one caught on purpose. Harken wraps lambda_http's event conversion
/// in `catch_unwind` and answers an error, so panics raised inside lambda_http (its `Url::parse(..).unwrap()`) are that guard
/// working; any other panic still aborts and is a finding.
fn tolerate_caught_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let file = info.location().map(|l| l.file()).unwrap_or("");
        if file.contains("/lambda_http-") {
            return;
        }
        default(info);
        std::process::abort();
    }));
}

fuzz_target!(init: tolerate_caught_panics(), |data: &[u8]| {
    let Ok(payload) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().build() else { return };
    let router = axum::Router::new().fallback(any(|body: axum::body::Bytes| async move { body }));
    let handler = harken_lambda::Handler::new(router);
    let event = lambda_runtime::LambdaEvent::new(payload, lambda_runtime::Context::default());
    let _ = rt.block_on(handler.handle(event));
});
