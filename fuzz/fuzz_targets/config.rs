//! TOML text → RawConfig → validate: never panics, errors always carry a key path.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(raw) = toml::from_str::<mosaic_core::RawConfig>(text) else { return };
    if let Err(errors) = raw.validate() {
        assert!(!errors.0.is_empty());
        for e in &errors.0 {
            assert!(!e.path.is_empty(), "error without a key path: {e}");
        }
    }
});
