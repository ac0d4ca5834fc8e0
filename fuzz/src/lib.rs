//! What the fuzz targets share.

/// libFuzzer's panic hook aborts on every panic, even one caught on purpose. Harken wraps some
/// third-party code in `catch_unwind` and answers an error (symphonia's demuxers, lambda_http's
/// event conversion), so a panic raised inside the crate whose source path contains `crate_dir`
/// (e.g. `"/symphonia-"`) is that guard working and is let through; any other panic still aborts
/// and is a finding.
pub fn tolerate_caught_panics_in(crate_dir: &'static str) {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.location().is_some_and(|l| l.file().contains(crate_dir)) {
            return;
        }
        default(info);
        std::process::abort();
    }));
}
