//! `spin-testhost`: a **test fixture** component that implements the Spin
//! host interfaces `fermyon:spin/key-value@2.0.0` and
//! `fermyon:spin/variables@2.0.0` (the ones spin-sdk 5.2 imports; every Spin
//! 2.x–4.x host provides them) on top of plain WASI p2 (filesystem and
//! environment), so that a Spin HTTP component can be composed with it and
//! served by `wasmtime serve`, which has no Spin interfaces of its own.
//!
//! This is NOT part of the product; it only stands in for the Spin host in
//! tests. Both interfaces are stateless in memory: every call goes to the
//! filesystem or the environment, so wasmtime may freely create and drop
//! instances between requests.
//!
//! # Key-value
//!
//! * Root directory: the guest path in env `SPIN_KV_DIR`, default `/kv`
//!   (give it with `wasmtime serve --dir HOST_DIR::/kv`).
//! * Allowed store labels: env `SPIN_KV_STORES`, comma-separated, default
//!   `default`; `*` allows any label. Opening another label gives
//!   `error::no-such-store` (like Spin without the label in the manifest).
//! * Store `LABEL` lives in `<root>/<LABEL>/`, created on `open`.
//! * One file per key; the file name is the key percent-encoded: bytes
//!   `[A-Za-z0-9_-]` are kept, every other byte (including `.`, `/`, `%`)
//!   becomes `%XX` (upper-case hex). So names never start with `.`, and
//!   temporary files (`.tmp-*`, written then renamed for atomic `set`) are
//!   never listed as keys. Keys whose encoding exceeds 255 bytes, or empty
//!   keys, are rejected with `error::other`.
//!
//! # Variables
//!
//! `get(name)` reads env `SPIN_VARIABLE_<NAME upper-cased>`, e.g.
//! `admin_token` -> `SPIN_VARIABLE_ADMIN_TOKEN` (the same mapping as Spin's
//! environment-variable provider). Names must match Spin's rules
//! (`[a-z][a-z0-9_]*`, no `__`, no trailing `_`) or `invalid-name` is
//! returned; an unset variable gives `undefined`.

use std::cell::Cell;
use std::path::PathBuf;

wit_bindgen::generate!({
    world: "testhost",
    path: "wit",
    generate_all,
});

use exports::fermyon::spin::key_value::{self as kv, Error as KvError};
use exports::fermyon::spin::variables::{self as vars, Error as VarError};

struct Host;

export!(Host);

// ---------------------------------------------------------------- key-value

const MAX_NAME: usize = 255;

fn kv_root() -> PathBuf {
    PathBuf::from(std::env::var("SPIN_KV_DIR").unwrap_or_else(|_| "/kv".to_string()))
}

fn label_allowed(label: &str) -> bool {
    let allowed = std::env::var("SPIN_KV_STORES").unwrap_or_else(|_| "default".to_string());
    allowed
        .split(',')
        .map(str::trim)
        .any(|a| a == "*" || a == label)
}

fn valid_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 64
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Percent-encode a key into a single safe file name.
pub fn encode_key(key: &str) -> Option<String> {
    if key.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[(b >> 4) as usize]));
            out.push(char::from(b"0123456789ABCDEF"[(b & 15) as usize]));
        }
    }
    (out.len() <= MAX_NAME).then_some(out)
}

/// Inverse of [`encode_key`]; `None` for names that are not encoded keys.
pub fn decode_key(name: &str) -> Option<String> {
    let b = name.as_bytes();
    if b.is_empty() || b[0] == b'.' {
        return None;
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn io_err(what: &str, e: std::io::Error) -> KvError {
    KvError::Other(format!("{what}: {e}"))
}

thread_local! {
    static TMP_SEQ: Cell<u64> = const { Cell::new(0) };
}

pub struct Store {
    dir: PathBuf,
}

impl Store {
    fn key_path(&self, key: &str) -> Result<PathBuf, KvError> {
        encode_key(key)
            .map(|n| self.dir.join(n))
            .ok_or_else(|| KvError::Other(format!("invalid key (empty or too long): {} bytes", key.len())))
    }

    fn list_keys(&self) -> Result<Vec<String>, KvError> {
        let mut keys = Vec::new();
        for ent in std::fs::read_dir(&self.dir).map_err(|e| io_err("read_dir", e))? {
            let ent = ent.map_err(|e| io_err("read_dir entry", e))?;
            if let Some(k) = ent.file_name().to_str().and_then(decode_key) {
                keys.push(k);
            }
        }
        keys.sort();
        Ok(keys)
    }
}

impl kv::GuestStore for Store {
    fn open(label: String) -> Result<kv::Store, KvError> {
        if !valid_label(&label) || !label_allowed(&label) {
            return Err(KvError::NoSuchStore);
        }
        let dir = kv_root().join(&label);
        std::fs::create_dir_all(&dir).map_err(|e| io_err("open store dir", e))?;
        Ok(kv::Store::new(Store { dir }))
    }

    fn get(&self, key: String) -> Result<Option<Vec<u8>>, KvError> {
        match std::fs::read(self.key_path(&key)?) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", e)),
        }
    }

    fn set(&self, key: String, value: Vec<u8>) -> Result<(), KvError> {
        let path = self.key_path(&key)?;
        let seq = TMP_SEQ.with(|c| {
            c.set(c.get() + 1);
            c.get()
        });
        let nonce = u64::from_le_bytes(random_bytes());
        let tmp = self.dir.join(format!(".tmp-{nonce:016x}-{seq}"));
        std::fs::write(&tmp, &value).map_err(|e| io_err("write", e))?;
        std::fs::rename(&tmp, &path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io_err("rename", e)
        })
    }

    fn delete(&self, key: String) -> Result<(), KvError> {
        match std::fs::remove_file(self.key_path(&key)?) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("delete", e)),
        }
    }

    fn exists(&self, key: String) -> Result<bool, KvError> {
        match std::fs::metadata(self.key_path(&key)?) {
            Ok(m) => Ok(m.is_file()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err("stat", e)),
        }
    }

    fn get_keys(&self) -> Result<Vec<String>, KvError> {
        self.list_keys()
    }
}

impl kv::Guest for Host {
    type Store = Store;
}

/// Random bytes from the standard library's hasher seed (wasi:random under
/// the hood), used only for temp-file names.
fn random_bytes() -> [u8; 8] {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish().to_le_bytes()
}

// ---------------------------------------------------------------- variables

/// Spin variable-name rules: `[a-z][a-z0-9_]*`, no `__`, no trailing `_`.
pub fn valid_var_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
        && !name.contains("__")
        && !name.ends_with('_')
}

/// `admin_token` -> `SPIN_VARIABLE_ADMIN_TOKEN`.
pub fn var_env_name(name: &str) -> String {
    format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase())
}

impl vars::Guest for Host {
    fn get(name: String) -> Result<String, VarError> {
        if !valid_var_name(&name) {
            return Err(VarError::InvalidName(format!(
                "invalid variable name {name:?}: must match [a-z][a-z0-9_]*, no '__', no trailing '_'"
            )));
        }
        match std::env::var(var_env_name(&name)) {
            Ok(v) => Ok(v),
            Err(std::env::VarError::NotPresent) => {
                Err(VarError::Undefined(format!("no variable for {name:?}")))
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(VarError::Provider(format!("variable {name:?} is not valid UTF-8")))
            }
        }
    }
}
