//! Webhooks end to end against the local `mosaic` binary: the host-generic scenarios of
//! [`mosaic_tests::scenarios_hooks`] (verify, forged, duplicate, oversize, retry, dead letters
//! and replay, Notion's handshake), the dead letters with the native stores (file, Redis), and
//! the `webhook` and `key` commands.
//!
//! Build the binary first (`cargo build -p mosaic-local`).

use std::process::Command;

use mosaic_tests::hooks::issue_body as body;
use mosaic_tests::hooks::DEST_SECRET;
use mosaic_tests::host::{mosaic_binary, tempdir, LocalBinary, Redis, Running};
use mosaic_tests::mock::{Behaviour, Mock};
use mosaic_tests::scenarios::{provider, server, Client};
use mosaic_tests::scenarios_hooks;

macro_rules! scenario {
    ($name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            scenarios_hooks::$name(&LocalBinary::new()).await;
        }
    };
}

scenario!(genuine_delivery_is_forwarded_once_as_a_signed_cloudevent);
scenario!(forged_delivery_is_401_problem_without_the_secret);
scenario!(duplicate_delivery_is_200_marked_and_not_forwarded_again);
scenario!(oversize_delivery_is_413);
scenario!(a_destination_that_fails_then_recovers_gets_every_event_exactly_once);
scenario!(a_destination_that_stays_down_fills_the_dead_letters_and_replay_delivers);
scenario!(notion_handshake_token_is_shown_to_the_operator_and_not_forwarded);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_and_replay_with_the_file_store() {
    let db = tempdir().join("hooks.redb");
    scenarios_hooks::dead_letters_and_replay_with_store(
        &LocalBinary::new(),
        &format!("[store]\nkind = \"file\"\npath = \"{}\"\n", db.display()),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_and_replay_with_the_redis_store() {
    let redis = Redis::start().expect("redis-server (apt-get install redis-server)");
    scenarios_hooks::dead_letters_and_replay_with_store(
        &LocalBinary::new(),
        &format!("[store]\nkind = \"redis\"\nurl = \"{}\"\n", redis.url()),
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// The command line
// ---------------------------------------------------------------------------------------------

fn mosaic(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(mosaic_binary())
        .args(args)
        .output()
        .expect("run mosaic");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn webhook_sign_then_verify_and_the_exit_codes() {
    let dir = tempdir();
    let f = dir.join("body.json");
    std::fs::write(&f, body(9)).expect("write");
    let file = f.to_string_lossy().to_string();
    for (scheme, secret, now) in [
        ("github", "s3cret", None),
        ("standard-webhooks", DEST_SECRET, Some("1700000000")),
        ("stripe", "whsec_stripe", Some("1700000000")),
    ] {
        let mut args = vec![
            "webhook",
            "sign",
            "--scheme",
            scheme,
            "--secret",
            secret,
            "--body-file",
            &file,
        ];
        if let Some(n) = now {
            args.extend(["--now", n]);
        }
        let (code, out, err) = mosaic(&args);
        assert_eq!(code, 0, "{scheme}: {err}");
        let lines: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
        assert!(!lines.is_empty(), "{scheme}: no headers");
        assert!(!out.contains(secret), "{scheme}: the secret was printed");
        let mut v = vec![
            "webhook",
            "verify",
            "--scheme",
            scheme,
            "--secret",
            secret,
            "--body-file",
            &file,
        ];
        for l in &lines {
            v.extend(["--header", l]);
        }
        if let Some(n) = now {
            v.extend(["--now", n]);
        }
        let (code, out, err) = mosaic(&v);
        assert_eq!(code, 0, "{scheme}: genuine refused: {out}{err}");
        assert!(out.contains("genuine"), "{out}");
        // another secret: not genuine, exit 1 with the reason, the secret not echoed
        let mut wrong = v.clone();
        wrong[5] = "another-secret";
        if scheme == "standard-webhooks" {
            wrong[5] = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        }
        let (code, out, err) = mosaic(&wrong);
        assert_eq!(code, 1, "{scheme}: {out}{err}");
        assert!(err.contains("not genuine"), "{err}");
        assert!(!err.contains(secret) && !out.contains(secret));
        // late: outside the replay window of a timestamped scheme
        if now.is_some() {
            let mut late = v.clone();
            let last = late.len() - 1;
            late[last] = "1700009999";
            let (code, _, err) = mosaic(&late);
            assert_eq!(code, 1, "{scheme}: {err}");
        }
    }
    // a tampered body
    let (_, out, _) = mosaic(&[
        "webhook",
        "sign",
        "--scheme",
        "github",
        "--secret",
        "s3cret",
        "--body-file",
        &file,
    ]);
    let tampered = dir.join("tampered.json");
    std::fs::write(&tampered, body(10)).expect("write");
    let mut v = vec![
        "webhook".to_string(),
        "verify".into(),
        "--scheme".into(),
        "github".into(),
        "--secret".into(),
        "s3cret".into(),
        "--body-file".into(),
        tampered.to_string_lossy().to_string(),
    ];
    for l in out.lines().filter(|l| !l.is_empty()) {
        v.extend(["--header".to_string(), l.to_string()]);
    }
    let args: Vec<&str> = v.iter().map(String::as_str).collect();
    let (code, _, err) = mosaic(&args);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not genuine") && err.contains('['), "{err}");
    // cannot run: exit 2
    let missing = dir.join("missing.json").to_string_lossy().to_string();
    let (code, _, err) = mosaic(&[
        "webhook",
        "sign",
        "--scheme",
        "github",
        "--secret",
        "s",
        "--body-file",
        &missing,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot read"), "{err}");
    let (code, _, err) = mosaic(&[
        "webhook",
        "verify",
        "--scheme",
        "github",
        "--secret",
        "s",
        "--body-file",
        &missing,
        "--header",
        "X-Hub-Signature-256: sha256=00",
    ]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = mosaic(&[
        "webhook",
        "sign",
        "--scheme",
        "nosuch",
        "--secret",
        "s",
        "--body-file",
        &file,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown scheme"), "{err}");
    let (code, _, err) = mosaic(&[
        "webhook",
        "verify",
        "--scheme",
        "nosuch",
        "--secret",
        "s",
        "--body-file",
        &file,
        "--header",
        "X: y",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown scheme"), "{err}");
    let (code, _, err) = mosaic(&[
        "webhook",
        "verify",
        "--scheme",
        "github",
        "--secret",
        "s",
        "--body-file",
        &file,
        "--header",
        "no colon here",
    ]);
    assert_eq!(code, 2, "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_new_prints_a_key_whose_hash_line_validates_and_authenticates() {
    let (code, out, err) = mosaic(&["key", "new", "--tenant", "team-a"]);
    assert_eq!(code, 0, "{err}");
    let key = out.lines().next().unwrap_or_default().to_string();
    assert!(key.starts_with("mk_") && key.len() == 3 + 43, "{out}");
    let hash_line = out
        .lines()
        .find(|l| l.starts_with("keys = [\"sha256:"))
        .unwrap_or_else(|| panic!("no hash line in:\n{out}"));
    let hash = hash_line
        .trim_start_matches("keys = [\"")
        .trim_end_matches("\"]");
    assert!(
        mosaic_core::config::parse_key_hash(hash).is_some(),
        "{hash}"
    );
    let (_, again, _) = mosaic(&["key", "new"]);
    assert_ne!(again.lines().next(), Some(key.as_str()), "keys repeat");
    assert!(again.lines().any(|l| l.starts_with("keys = [\"sha256:")));

    // the printed snippet, pasted into a config, validates and authenticates the key
    let up = Mock::start("up", Behaviour::ok()).await;
    let snippet: String = out
        .lines()
        .filter(|l| !l.starts_with("mk_"))
        .map(|l| format!("{l}\n"))
        .collect();
    let cfg = format!(
        "{}{}{snippet}\n[[routes]]\nname = \"r\"\nmatch = {{ path = \"/{{*rest}}\" }}\nproviders = [\"up\"]\n",
        server(""),
        provider("up", &up.url())
    );
    let dir = tempdir();
    let path = dir.join("keys.toml");
    std::fs::write(&path, &cfg).expect("write");
    let (code, out, err) = mosaic(&["check", "--config", &path.to_string_lossy()]);
    assert_eq!(code, 0, "{out}{err}\n{cfg}");
    assert!(out.contains("1 tenant(s)"), "{out}");
    let r = LocalBinary::new().spawn(&cfg, &[]).expect("start");
    let c = Client::new(&r.base_url());
    let denied = c.get("/a").await;
    assert_eq!(denied.status, 401, "{denied:?}");
    let ok = c
        .send(
            "GET",
            "/a",
            &[("authorization", &format!("Bearer {key}"))],
            Vec::new(),
        )
        .await;
    assert_eq!((ok.status, ok.from()), (200, "up"), "{ok:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_example_config_with_its_webhook_endpoint_checks() {
    let (code, out, err) = mosaic(&[
        "check",
        "--config",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/mosaic.toml"),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("1 webhook endpoint(s)"), "{out}");
}
