//! Snapshot and cache-entry decoding of arbitrary bytes: errors, never panics; what decodes
//! re-encodes.
#![no_main]
use libfuzzer_sys::fuzz_target;

const CONFIG: &str = r#"
[[providers]]
id = "a"
base_url = "https://a.example"
[[providers]]
id = "b"
base_url = "https://b.example"
[[routes]]
name = "api"
match = { path = "/api/{*rest}" }
providers = ["a", "b"]
"#;

fuzz_target!(|data: &[u8]| {
    let raw: mosaic_core::RawConfig = toml::from_str(CONFIG).expect("fixed config");
    let cfg = raw.validate().expect("fixed config valid");
    let mut st = mosaic_core::State::new(&cfg, 1);
    if mosaic_core::snapshot::decode_into(&cfg, &mut st, data).is_ok() {
        let again = mosaic_core::snapshot::encode(&cfg, &st);
        let mut st2 = mosaic_core::State::new(&cfg, 1);
        mosaic_core::snapshot::decode_into(&cfg, &mut st2, &again).expect("own encoding decodes");
    }
    if let Ok(e) = mosaic_core::cache::Entry::decode(data) {
        assert_eq!(mosaic_core::cache::Entry::decode(&e.encode()), Ok(e));
    }
});
