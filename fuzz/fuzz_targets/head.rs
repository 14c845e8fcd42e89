//! The request-head checks every host applies: header lists built from arbitrary bytes never
//! panic, and what passes has consistent framing.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mosaic_core::head::{check_head, Framing, HeadLimits};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let target = lines.next().unwrap_or("/");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_string(), v.trim_start().to_string()))
        .collect();
    let limits = HeadLimits { max_headers: 64, max_header_bytes: 8192 };
    if let Ok(f) = check_head(&headers, &limits) {
        let has_cl = headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("content-length"));
        let has_te = headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"));
        assert!(!(has_cl && has_te), "CL and TE together must be refused");
        match f {
            Framing::Chunked => assert!(has_te),
            Framing::Length(_) => assert!(has_cl),
            Framing::None => assert!(!has_te),
        }
    }
    if let Ok(t) = mosaic_core::target::parse_target(target) {
        assert!(t.path.starts_with('/') && !t.path.starts_with("//"));
        assert!(!t.path.split('/').any(|s| s == ".." || s == "."));
    }
});
