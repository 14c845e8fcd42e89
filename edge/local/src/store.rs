//! The key-value store behind core's KV seam: the L2 cache tier and the state snapshot.
//!
//! - `memory` (default): in this process only; L1 is then the whole cache.
//! - `file`: a redb database file; survives restarts.
//! - `redis`: shared by every instance pointing at the same Redis: breaker state (through the
//!   snapshot, see [`crate::server`]), the cache and rate-limit state.
//!
//! Values are opaque bytes (core encodes cache entries, snapshots and webhook records); keys are
//! namespaced with [`STATE_KEY`], `mosaic:cache:` (`mosaic_core::tier::store_key`) and `mosaic:hooks:` (see [`crate::hooks`]).
//! `list` serves the webhook outbox scan and the dead-letter list: a prefix scan in memory and
//! redb, `SCAN MATCH` (never `KEYS`) in Redis. Every call is bounded in time; a store that fails makes
//! the cache miss and the snapshot wait, it never fails a request.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mosaic_core::Config;
use redb::{Database, Durability, TableDefinition};

/// Key of the state snapshot.
pub const STATE_KEY: &str = "mosaic:state";
/// Longest a store call may take.
const OP_TIMEOUT: Duration = Duration::from_millis(1000);

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");

/// A store failure, for logs.
#[derive(Debug, Clone)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

/// A key-value store with per-key expiry.
pub trait Kv: Send + Sync {
    /// The value under `key`, unless absent or expired.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;
    /// Stores `value` under `key`, for `ttl` when given. `durable` asks for the write to reach
    /// disk before returning (snapshots), else it may be lazy (cache entries).
    fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
        durable: bool,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Removes `key` (removing a missing key is not an error).
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Every live key starting with `prefix`, in any order.
    fn list(&self, prefix: &str) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
}

/// A value and when it expires.
type Expiring = (Vec<u8>, Option<Instant>);

/// In-process store.
#[derive(Default)]
pub struct MemoryStore {
    map: Mutex<HashMap<String, Expiring>>,
}

impl Kv for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let m = self.map.lock().map_err(err)?;
        Ok(m.get(key)
            .filter(|(_, exp)| exp.is_none_or(|e| e > Instant::now()))
            .map(|(v, _)| v.clone()))
    }
    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
        _durable: bool,
    ) -> Result<(), StoreError> {
        let mut m = self.map.lock().map_err(err)?;
        m.insert(key.to_string(), (value, ttl.map(|t| Instant::now() + t)));
        Ok(())
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.map.lock().map_err(err)?.remove(key);
        Ok(())
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut m = self.map.lock().map_err(err)?;
        // listing is periodic (the webhook outbox scan): a good moment to drop expired entries
        let now = Instant::now();
        m.retain(|_, (_, exp)| exp.is_none_or(|e| e > now));
        Ok(m.keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }
}

/// A redb file. Values carry their expiry (ms since the epoch, 0 for none) in 8 leading bytes.
pub struct FileStore {
    db: Arc<Database>,
}

fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl FileStore {
    /// Opens or creates the database at `path`.
    ///
    /// # Errors
    /// When the file cannot be opened (another process holds it, no permission, corrupt).
    pub fn open(path: &str) -> Result<FileStore, StoreError> {
        let db = Database::create(path)
            .map_err(|e| StoreError(format!("cannot open store file `{path}`: {e}")))?;
        Ok(FileStore { db: Arc::new(db) })
    }

    fn get_sync(db: &Database, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let r = db.begin_read().map_err(err)?;
        let t = match r.open_table(TABLE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(err(e)),
        };
        let Some(v) = t.get(key).map_err(err)? else {
            return Ok(None);
        };
        let v = v.value();
        if v.len() < 8 {
            return Ok(None);
        }
        let mut exp = [0u8; 8];
        exp.copy_from_slice(&v[..8]);
        let exp = u64::from_be_bytes(exp);
        if exp != 0 && exp <= epoch_ms() {
            return Ok(None);
        }
        Ok(Some(v[8..].to_vec()))
    }

    fn put_sync(
        db: &Database,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        durable: bool,
    ) -> Result<(), StoreError> {
        let exp = ttl.map_or(0, |t| epoch_ms().saturating_add(t.as_millis() as u64));
        let mut buf = Vec::with_capacity(value.len() + 8);
        buf.extend_from_slice(&exp.to_be_bytes());
        buf.extend_from_slice(value);
        let mut w = db.begin_write().map_err(err)?;
        w.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        });
        {
            let mut t = w.open_table(TABLE).map_err(err)?;
            t.insert(key, buf.as_slice()).map_err(err)?;
        }
        w.commit().map_err(err)
    }

    fn delete_sync(db: &Database, key: &str) -> Result<(), StoreError> {
        let mut w = db.begin_write().map_err(err)?;
        w.set_durability(Durability::Immediate);
        {
            let mut t = w.open_table(TABLE).map_err(err)?;
            t.remove(key).map_err(err)?;
        }
        w.commit().map_err(err)
    }

    fn list_sync(db: &Database, prefix: &str) -> Result<Vec<String>, StoreError> {
        let r = db.begin_read().map_err(err)?;
        let t = match r.open_table(TABLE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(err(e)),
        };
        let now = epoch_ms();
        let mut out = Vec::new();
        for entry in t.range(prefix..).map_err(err)? {
            let (k, v) = entry.map_err(err)?;
            let k = k.value();
            if !k.starts_with(prefix) {
                break;
            }
            let v = v.value();
            let exp = v
                .get(..8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map_or(0, u64::from_be_bytes);
            if exp == 0 || exp > now {
                out.push(k.to_string());
            }
        }
        Ok(out)
    }
}

impl Kv for FileStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let db = Arc::clone(&self.db);
        let key = key.to_string();
        tokio::task::spawn_blocking(move || FileStore::get_sync(&db, &key))
            .await
            .map_err(err)?
    }
    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
        durable: bool,
    ) -> Result<(), StoreError> {
        let db = Arc::clone(&self.db);
        let key = key.to_string();
        tokio::task::spawn_blocking(move || FileStore::put_sync(&db, &key, &value, ttl, durable))
            .await
            .map_err(err)?
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let db = Arc::clone(&self.db);
        let key = key.to_string();
        tokio::task::spawn_blocking(move || FileStore::delete_sync(&db, &key))
            .await
            .map_err(err)?
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let db = Arc::clone(&self.db);
        let prefix = prefix.to_string();
        tokio::task::spawn_blocking(move || FileStore::list_sync(&db, &prefix))
            .await
            .map_err(err)?
    }
}

/// A Redis server, through a reconnecting connection manager.
pub struct RedisStore {
    conn: redis::aio::ConnectionManager,
}

impl RedisStore {
    /// Connects to `url`.
    ///
    /// # Errors
    /// When the URL is invalid or the server does not answer within a few seconds.
    pub async fn connect(url: &str) -> Result<RedisStore, StoreError> {
        let client =
            redis::Client::open(url).map_err(|e| StoreError(format!("invalid redis url: {e}")))?;
        let conn = tokio::time::timeout(
            Duration::from_secs(5),
            redis::aio::ConnectionManager::new(client),
        )
        .await
        .map_err(|_| StoreError(String::from("redis did not answer within 5 s")))?
        .map_err(|e| StoreError(format!("cannot connect to redis: {e}")))?;
        Ok(RedisStore { conn })
    }
}

impl Kv for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut c = self.conn.clone();
        let cmd = redis::cmd("GET").arg(key).clone();
        tokio::time::timeout(OP_TIMEOUT, cmd.query_async::<Option<Vec<u8>>>(&mut c))
            .await
            .map_err(|_| StoreError(String::from("redis GET timed out")))?
            .map_err(err)
    }
    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
        _durable: bool,
    ) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value);
        if let Some(t) = ttl {
            cmd.arg("PX").arg((t.as_millis() as u64).max(1));
        }
        tokio::time::timeout(OP_TIMEOUT, cmd.query_async::<()>(&mut c))
            .await
            .map_err(|_| StoreError(String::from("redis SET timed out")))?
            .map_err(err)
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        let cmd = redis::cmd("DEL").arg(key).clone();
        tokio::time::timeout(OP_TIMEOUT, cmd.query_async::<()>(&mut c))
            .await
            .map_err(|_| StoreError(String::from("redis DEL timed out")))?
            .map_err(err)
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        // SCAN, not KEYS: it does not block the server; the pattern escapes glob characters
        let mut pattern = String::with_capacity(prefix.len() + 1);
        for ch in prefix.chars() {
            if matches!(ch, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(ch);
        }
        pattern.push('*');
        let mut c = self.conn.clone();
        let mut cursor: u64 = 0;
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + OP_TIMEOUT * 10;
        loop {
            let cmd = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(500)
                .clone();
            let (next, keys): (u64, Vec<String>) =
                tokio::time::timeout_at(deadline, cmd.query_async(&mut c))
                    .await
                    .map_err(|_| StoreError(String::from("redis SCAN timed out")))?
                    .map_err(err)?;
            out.extend(keys);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

/// The configured store.
pub enum Store {
    /// In memory.
    Memory(MemoryStore),
    /// redb file.
    File(FileStore),
    /// Redis.
    Redis(RedisStore),
}

impl Store {
    /// Opens the store `config.store` names.
    ///
    /// # Errors
    /// When it cannot be opened or reached.
    pub async fn open(config: &Config) -> Result<Store, StoreError> {
        match config.store.kind.as_str() {
            "file" => {
                let path = config
                    .store
                    .path
                    .clone()
                    .unwrap_or_else(|| String::from("mosaic.redb"));
                tokio::task::spawn_blocking(move || FileStore::open(&path))
                    .await
                    .map_err(err)?
                    .map(Store::File)
            }
            "redis" => {
                let url = config.store.url.clone().unwrap_or_default();
                RedisStore::connect(&url).await.map(Store::Redis)
            }
            _ => Ok(Store::Memory(MemoryStore::default())),
        }
    }

    /// Whether this store is shared beyond the process's L1 (worth a second cache tier).
    #[must_use]
    pub fn is_tiered(&self) -> bool {
        !matches!(self, Store::Memory(_))
    }

    /// Whether other instances may write the same keys.
    #[must_use]
    pub fn is_shared(&self) -> bool {
        matches!(self, Store::Redis(_))
    }

    /// The kind name.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Store::Memory(_) => "memory",
            Store::File(_) => "file",
            Store::Redis(_) => "redis",
        }
    }
}

impl Kv for Store {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Store::Memory(s) => s.get(key).await,
            Store::File(s) => s.get(key).await,
            Store::Redis(s) => s.get(key).await,
        }
    }
    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
        durable: bool,
    ) -> Result<(), StoreError> {
        match self {
            Store::Memory(s) => s.put(key, value, ttl, durable).await,
            Store::File(s) => s.put(key, value, ttl, durable).await,
            Store::Redis(s) => s.put(key, value, ttl, durable).await,
        }
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self {
            Store::Memory(s) => s.delete(key).await,
            Store::File(s) => s.delete(key).await,
            Store::Redis(s) => s.delete(key).await,
        }
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        match self {
            Store::Memory(s) => s.list(prefix).await,
            Store::File(s) => s.list(prefix).await,
            Store::Redis(s) => s.list(prefix).await,
        }
    }
}

/// Reads the state snapshot of a persistent store once (for `mosaic explain`).
///
/// # Errors
/// When the store cannot be opened (e.g. a running server holds the file).
pub fn load_snapshot(config: &Config) -> Result<Option<Vec<u8>>, StoreError> {
    if config.store.kind == "memory" {
        return Ok(None);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(err)?;
    rt.block_on(async {
        let s = Store::open(config).await?;
        s.get(STATE_KEY).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn file_store_round_trips_and_expires() {
        let dir = std::env::temp_dir().join(format!(
            "mosaic-store-{}-{}",
            std::process::id(),
            epoch_ms()
        ));
        let path = dir.to_string_lossy().to_string();
        let s = match FileStore::open(&path) {
            Ok(s) => s,
            Err(e) => panic!("open: {e}"),
        };
        assert!(matches!(s.get("k").await, Ok(None)));
        assert!(s.put("k", b"v".to_vec(), None, true).await.is_ok());
        assert_eq!(s.get("k").await.ok().flatten().as_deref(), Some(&b"v"[..]));
        assert!(s
            .put("e", b"v".to_vec(), Some(Duration::from_millis(1)), false)
            .await
            .is_ok());
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(matches!(s.get("e").await, Ok(None)));
        drop(s);
        let _ = std::fs::remove_file(&dir);
    }

    #[tokio::test]
    async fn memory_store_expires() {
        let s = MemoryStore::default();
        assert!(s
            .put("a", vec![1], Some(Duration::from_millis(1)), false)
            .await
            .is_ok());
        assert!(s.put("b", vec![2], None, false).await.is_ok());
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(matches!(s.get("a").await, Ok(None)));
        assert_eq!(s.get("b").await.ok().flatten(), Some(vec![2]));
    }
}
