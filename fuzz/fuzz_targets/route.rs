//! Route patterns and request targets: pattern parsing, table building (conflicts), target
//! checking and lookup never panic; a matched route's parameters come from the path.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mosaic_core::http::Method;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut lines = text.lines();
    let patterns: Vec<&str> = lines.by_ref().take(8).collect();
    let mut cfg = String::from("[[providers]]\nid = \"p\"\nbase_url = \"https://p.example\"\n");
    for (i, p) in patterns.iter().enumerate() {
        let esc = p.replace('\\', "\\\\").replace('"', "\\\"");
        cfg.push_str(&format!("[[routes]]\nname = \"r{i}\"\nproviders = [\"p\"]\nmatch = {{ path = \"{esc}\" }}\n"));
        let _ = mosaic_core::route::PathPattern::parse(p);
    }
    let Ok(raw) = toml::from_str::<mosaic_core::RawConfig>(&cfg) else { return };
    let Ok(c) = raw.validate() else { return };
    let none: [(&str, &str); 0] = [];
    for target in lines {
        if let Ok(t) = mosaic_core::target::parse_target(target) {
            if let Some(m) = c.table.lookup(Method::Get, None, t.path, &none[..]) {
                for (_, v) in m.params.iter() {
                    assert!(t.path.contains(v));
                }
            }
        }
    }
});
