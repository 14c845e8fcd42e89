//! CloudEvents normalization and dedup keys, driven by hand-built `EventSpec`s (the presets in
//! `mosaic-providers` have their own tests with realistic payloads).
#![allow(clippy::unwrap_used)]
// Tests are std programs; the core/alloc preference is for the library.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use std::borrow::Cow;

use mosaic_core::time::Instant;
use mosaic_core::webhook::{
    body_key, dedup_key, normalize, rfc3339, EventData, EventSpec, Field, NormalizeError,
    TimeField, TypePart,
};
use serde_json::{json, Value};

const NOW: Instant = Instant::from_secs(1_700_000_000); // 2023-11-14T22:13:20Z

fn spec() -> EventSpec {
    EventSpec {
        type_prefix: "com.example".into(),
        type_parts: vec![
            TypePart {
                from: vec![Field::header("X-Event"), Field::body("/kind")].into(),
                strip_prefix: Some("ex:".into()),
                required: true,
            },
            TypePart {
                from: vec![Field::body("/action")].into(),
                strip_prefix: None,
                required: false,
            },
        ]
        .into(),
        delivery: vec![Field::header("X-Attempt")].into(),
        dedup: vec![Field::header("X-Delivery"), Field::body("/id")].into(),
        source: vec![Field::body("/repo/url")].into(),
        subject: vec![Field::body("/pr/number"), Field::body("/ref")].into(),
        time: vec![
            TimeField::Rfc3339("/at".into()),
            TimeField::UnixMillis("/ms".into()),
            TimeField::UnixSecs("/secs".into()),
        ]
        .into(),
    }
}

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn envelope(ev: &mosaic_core::webhook::CloudEvent) -> Value {
    serde_json::from_slice(&ev.to_json().unwrap()).unwrap()
}

#[test]
fn builds_a_full_envelope() {
    let body = br#"{"zeta":1,"action":"opened","repo":{"url":"https://git.example/o/r"},"pr":{"number":42},"alpha":1.50}"#;
    let headers = h(&[
        ("X-Event", "pull_request"),
        ("X-Delivery", "d-1"),
        ("X-Attempt", "a-7"),
    ]);
    let ev = normalize(&spec(), "example", &headers, body, NOW, "acme", "gh").unwrap();
    assert_eq!(
        envelope(&ev),
        json!({
            "specversion": "1.0",
            "id": "d-1",
            "source": "https://git.example/o/r",
            "type": "com.example.pull_request.opened",
            "subject": "42",
            "time": "2023-11-14T22:13:20Z",
            "datacontenttype": "application/json",
            "data": {"zeta": 1, "action": "opened", "repo": {"url": "https://git.example/o/r"}, "pr": {"number": 42}, "alpha": 1.50},
            "mosaictenant": "acme",
            "mosaicprovider": "example",
            "mosaicdelivery": "a-7"
        })
    );
    // `data` is the body byte for byte: key order and number spelling survive.
    let text = String::from_utf8(ev.to_json().unwrap()).unwrap();
    assert!(
        text.contains(r#""data":{"zeta":1,"action":"opened","#),
        "{text}"
    );
    assert!(text.contains(r#""alpha":1.50}"#), "{text}");
    // Extension names are lowercase alphanumeric, as CloudEvents requires.
    for key in envelope(&ev).as_object().unwrap().keys() {
        assert!(
            key.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{key}"
        );
        assert!(key.len() <= 20, "{key}");
    }
}

#[test]
fn type_segments_fall_back_strip_and_sanitize() {
    let s = spec();
    // Header absent → body `kind`; prefix stripped; no action → segment left out.
    let ev = normalize(
        &s,
        "p",
        &h(&[]),
        br#"{"kind":"ex:issue_created"}"#,
        NOW,
        "t",
        "e",
    )
    .unwrap();
    assert_eq!(ev.ty, "com.example.issue_created");
    // Odd characters become `_`; dots survive.
    let ev = normalize(
        &s,
        "p",
        &h(&[("X-Event", "Push Hook/v2")]),
        br#"{"action":"a.b c"}"#,
        NOW,
        "t",
        "e",
    )
    .unwrap();
    assert_eq!(ev.ty, "com.example.Push_Hook_v2.a.b_c");
    // Required segment missing.
    let err = normalize(&s, "p", &h(&[]), br#"{"action":"x"}"#, NOW, "t", "e").unwrap_err();
    assert_eq!(err.code(), "missing-event-type");
    let NormalizeError::MissingEventType { looked_at } = &err else {
        unreachable!()
    };
    assert_eq!(looked_at, "header `X-Event` or body `/kind`");
    assert!(err.to_string().contains("X-Event"));
    // Long segments are capped.
    let long = "x".repeat(500);
    let ev = normalize(&s, "p", &h(&[("X-Event", &long)]), b"", NOW, "t", "e").unwrap();
    assert_eq!(ev.ty.len(), "com.example.".len() + 128);
}

#[test]
fn dedup_keys_prefer_stable_ids_then_the_body_hash() {
    let s = spec();
    let body = br#"{"id":"evt_1"}"#;
    assert_eq!(dedup_key(&s, &h(&[("X-Delivery", "d-1")]), body), "d-1");
    assert_eq!(dedup_key(&s, &h(&[]), body), "evt_1");
    let no_id = br#"{"x":1}"#;
    let key = dedup_key(&s, &h(&[]), no_id);
    assert_eq!(key, body_key(no_id));
    assert_eq!(
        body_key(b"Hello, World!"),
        "sha256:dffd6021bb2bd5b0af676290809ec3a53191dd81c7f70a4b28688a362182986f"
    );
    // Ids that would make bad storage keys are replaced by the hash.
    let long = "a".repeat(257);
    assert_eq!(
        dedup_key(&s, &h(&[("X-Delivery", &long)]), no_id),
        body_key(no_id)
    );
    assert_eq!(
        dedup_key(&s, &h(&[("X-Delivery", "has space")]), no_id),
        body_key(no_id)
    );
    assert_eq!(
        dedup_key(&s, &h(&[("X-Delivery", "ünï")]), no_id),
        body_key(no_id)
    );
    // Numbers in the body count as ids.
    assert_eq!(dedup_key(&s, &h(&[]), br#"{"id":12345}"#), "12345");
    // No stable source at all (Plane, BookStack): always the hash, whatever the headers say.
    let mut none = spec();
    none.dedup = Cow::Borrowed(&[]);
    assert_eq!(
        dedup_key(&none, &h(&[("X-Delivery", "d-1")]), body),
        body_key(body)
    );
    // The id of the event is the dedup key; mosaicdelivery falls back to it.
    let ev = normalize(&s, "p", &h(&[("X-Event", "e")]), body, NOW, "t", "e").unwrap();
    assert_eq!((ev.id.as_str(), ev.delivery.as_str()), ("evt_1", "evt_1"));
}

#[test]
fn source_subject_and_time() {
    let s = spec();
    let hdr = h(&[("X-Event", "push")]);
    // No source in the body → the endpoint path.
    let ev = normalize(
        &s,
        "p",
        &hdr,
        br#"{"ref":"refs/heads/main"}"#,
        NOW,
        "t",
        "gh-main",
    )
    .unwrap();
    assert_eq!(ev.source, "/hooks/gh-main");
    assert_eq!(ev.subject.as_deref(), Some("refs/heads/main"));
    // A source with whitespace is not a URI-reference.
    let ev = normalize(
        &s,
        "p",
        &hdr,
        br#"{"repo":{"url":"not a uri"}}"#,
        NOW,
        "t",
        "x",
    )
    .unwrap();
    assert_eq!(ev.source, "/hooks/x");
    assert_eq!(ev.subject, None);

    let t = |body: &str| {
        normalize(&s, "p", &hdr, body.as_bytes(), NOW, "t", "e")
            .unwrap()
            .time
    };
    assert_eq!(
        t(r#"{"at":"2024-02-29T12:00:00.5+01:00"}"#),
        "2024-02-29T12:00:00.5+01:00"
    );
    assert_eq!(
        t(r#"{"at":"yesterday","ms":1614556800123}"#),
        "2021-03-01T00:00:00.123000Z"
    );
    assert_eq!(t(r#"{"secs":1614556800}"#), "2021-03-01T00:00:00Z");
    assert_eq!(t(r#"{"secs":-1}"#), rfc3339(NOW));
    assert_eq!(t("not json"), "2023-11-14T22:13:20Z");
}

#[test]
fn non_json_bodies_go_as_data_base64() {
    let s = spec();
    let hdr = h(&[
        ("X-Event", "form"),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ]);
    let ev = normalize(&s, "p", &hdr, b"payload=%7B%7D", NOW, "t", "e").unwrap();
    assert!(matches!(ev.data, EventData::Binary { .. }));
    let v = envelope(&ev);
    assert_eq!(v["datacontenttype"], "application/x-www-form-urlencoded");
    assert_eq!(v["data_base64"], "cGF5bG9hZD0lN0IlN0Q=");
    assert!(v.get("data").is_none());
    // Without a content type.
    let ev = normalize(
        &s,
        "p",
        &h(&[("X-Event", "bin")]),
        &[0xff, 0x00],
        NOW,
        "t",
        "e",
    )
    .unwrap();
    assert_eq!(envelope(&ev)["datacontenttype"], "application/octet-stream");
    // Empty body: no data at all.
    let ev = normalize(&s, "p", &h(&[("X-Event", "ping")]), b"  ", NOW, "t", "e").unwrap();
    let v = envelope(&ev);
    assert!(
        v.get("data").is_none()
            && v.get("data_base64").is_none()
            && v.get("datacontenttype").is_none()
    );
    // JSON with surrounding whitespace is still JSON.
    let ev = normalize(
        &s,
        "p",
        &h(&[("X-Event", "x")]),
        b"\n {\"a\":1}\n",
        NOW,
        "t",
        "e",
    )
    .unwrap();
    assert_eq!(envelope(&ev)["data"], json!({"a": 1}));
}
