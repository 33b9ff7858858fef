//! What the journal holds and sled does not have yet: the writes since the last
//! checkpoint, in memory, over sled for every read.
//!
//! sled inserts cost about 1.4 ms a commit window under the purchase benchmark (each
//! insert copies its leaf node), all of it on the one writer thread. Kept here, a
//! window costs a few map inserts; sled gets each key once per checkpoint (a hold put
//! at admission and deleted at purchase reaches it as one delete), applied by the
//! checkpoint thread off the commit path.
//!
//! Two maps: `active` takes new writes; `frozen` is the one a checkpoint is copying
//! into sled. A read looks in `active`, then `frozen`, then sled.

use super::StoreError;
use std::collections::BTreeMap;
use std::iter::Peekable;
use std::ops::Bound;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// A key's latest write: a value, or `None` for deleted.
pub(super) type Writes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Keys and values in key order.
pub(super) type Entries = Vec<(Vec<u8>, Vec<u8>)>;

#[derive(Default)]
struct Tables {
    active: Writes,
    frozen: Option<Arc<Writes>>,
}

#[derive(Default)]
pub(super) struct Memtable {
    tables: RwLock<Tables>,
}

impl Memtable {
    fn read(&self) -> RwLockReadGuard<'_, Tables> {
        self.tables.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Tables> {
        self.tables.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Records one window's writes, in order.
    pub fn apply(&self, writes: Vec<(Vec<u8>, Option<Vec<u8>>)>) {
        let mut t = self.write();
        for (k, v) in writes {
            t.active.insert(k, v);
        }
    }

    /// Starts a checkpoint: the active writes become the frozen ones. `None` while the
    /// previous checkpoint still runs, or when there is nothing to write.
    pub fn freeze(&self) -> Option<Arc<Writes>> {
        let mut t = self.write();
        if t.frozen.is_some() || t.active.is_empty() {
            return None;
        }
        let frozen = Arc::new(std::mem::take(&mut t.active));
        t.frozen = Some(Arc::clone(&frozen));
        Some(frozen)
    }

    /// The writes the running checkpoint copies into sled.
    pub fn frozen(&self) -> Option<Arc<Writes>> {
        self.read().frozen.clone()
    }

    /// Ends a checkpoint: sled now holds the frozen writes.
    pub fn thaw(&self) {
        self.write().frozen = None;
    }

    /// `Some(write)` when the memtable knows the key's latest write.
    pub fn get(&self, key: &[u8]) -> Option<Option<Vec<u8>>> {
        let t = self.read();
        t.active
            .get(key)
            .or_else(|| t.frozen.as_ref().and_then(|f| f.get(key)))
            .cloned()
    }

    /// The greatest key under `prefix` written since the last checkpoint, deleted or not.
    pub fn last_under(&self, prefix: &[u8]) -> Option<Vec<u8>> {
        let t = self.read();
        // The prefix's range ends before the prefix with its last byte raised.
        let mut end = prefix.to_vec();
        let upper = match end.last_mut() {
            Some(b) if *b < u8::MAX => {
                *b += 1;
                Bound::Excluded(&end[..])
            }
            _ => Bound::Unbounded,
        };
        let last = |w: &Writes| {
            w.range::<[u8], _>((Bound::Included(prefix), upper))
                .next_back()
                .filter(|(k, _)| k.starts_with(prefix))
                .map(|(k, _)| k.clone())
        };
        let active = last(&t.active);
        let frozen = t.frozen.as_deref().and_then(last);
        active.max(frozen)
    }

    /// Keys and values under `prefix` in key order, at most `limit`: the memtable's
    /// writes over sled's contents.
    pub fn scan(&self, db: &sled::Db, prefix: &[u8], limit: usize) -> Result<Entries, StoreError> {
        self.scan_from(db, prefix, prefix, limit)
    }

    /// As `scan`, from the first key at or after `from` (which starts with `prefix`).
    pub fn scan_from(
        &self,
        db: &sled::Db,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> Result<Entries, StoreError> {
        let t = self.read();
        let empty = Writes::new();
        let frozen = t.frozen.as_deref().unwrap_or(&empty);
        let mut layers = [under(&t.active, prefix, from), under(frozen, prefix, from)];
        let mut disk = db
            .range(from..)
            .take_while(|r| r.as_ref().map_or(true, |(k, _)| k.starts_with(prefix)))
            .peekable();
        let mut out = Vec::new();
        while out.len() < limit {
            if let Some(Err(_)) = disk.peek() {
                disk.next().transpose()?;
            }
            let disk_key = disk
                .peek()
                .and_then(|r| r.as_ref().ok())
                .map(|(k, _)| &k[..]);
            let mem_key = layers
                .iter_mut()
                .filter_map(|l| l.peek().map(|(k, _)| k.as_slice()))
                .min();
            let key: Vec<u8> = match (mem_key, disk_key) {
                (None, None) => break,
                (Some(m), Some(d)) => m.min(d).to_vec(),
                (Some(m), None) => m.to_vec(),
                (None, Some(d)) => d.to_vec(),
            };
            // The newest layer holding the key decides; every layer moves past it.
            let mut value: Option<Option<Vec<u8>>> = None;
            for layer in &mut layers {
                if layer.peek().is_some_and(|(k, _)| **k == key[..]) {
                    let (_, v) = layer.next().expect("peeked");
                    value.get_or_insert_with(|| v.clone());
                }
            }
            if disk_key.is_some_and(|d| *d == key[..]) {
                let (_, v) = disk.next().expect("peeked")?;
                value.get_or_insert_with(|| Some(v.to_vec()));
            }
            if let Some(Some(v)) = value {
                out.push((key, v));
            }
        }
        Ok(out)
    }
}

type Layer<'a> = Peekable<Box<dyn Iterator<Item = (&'a Vec<u8>, &'a Option<Vec<u8>>)> + 'a>>;

fn under<'a>(w: &'a Writes, prefix: &'a [u8], from: &'a [u8]) -> Layer<'a> {
    let it: Box<dyn Iterator<Item = _>> = Box::new(
        w.range::<[u8], _>((Bound::Included(from), Bound::Unbounded))
            .take_while(move |(k, _)| k.starts_with(prefix)),
    );
    it.peekable()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(k: &str, v: Option<&str>) -> (Vec<u8>, Option<Vec<u8>>) {
        (k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec()))
    }

    #[test]
    fn reads_see_active_over_frozen_over_sled() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = sled::Config::new()
            .path(dir.path())
            .open()
            .expect("sled opens");
        for (k, v) in [
            ("p/1", "disk"),
            ("p/2", "disk"),
            ("p/4", "disk"),
            ("q/1", "disk"),
        ] {
            db.insert(k, v).expect("insert");
        }
        let m = Memtable::default();
        m.apply(vec![kv("p/2", None), kv("p/3", Some("frozen"))]);
        assert!(m.freeze().is_some());
        assert!(m.freeze().is_none(), "one checkpoint at a time");
        m.apply(vec![kv("p/3", Some("active")), kv("p/5", Some("active"))]);
        m.apply(vec![kv("p/4", None)]);

        let all = m.scan(&db, b"p/", usize::MAX).expect("scans");
        let got: Vec<(String, String)> = all
            .into_iter()
            .map(|(k, v)| {
                (
                    String::from_utf8(k).expect("utf8"),
                    String::from_utf8(v).expect("utf8"),
                )
            })
            .collect();
        let want = [("p/1", "disk"), ("p/3", "active"), ("p/5", "active")];
        assert_eq!(
            got,
            want.map(|(k, v)| (k.to_owned(), v.to_owned())).to_vec()
        );
        assert_eq!(m.scan(&db, b"p/", 2).expect("scans").len(), 2);
        assert_eq!(m.get(b"p/2"), Some(None));
        assert_eq!(m.get(b"p/3"), Some(Some(b"active".to_vec())));
        assert_eq!(m.get(b"p/1"), None, "unknown here: sled decides");

        assert_eq!(m.last_under(b"p/"), Some(b"p/5".to_vec()));
        assert_eq!(
            m.last_under(b"q/"),
            None,
            "sled's keys are not the memtable's"
        );
        m.thaw();
        assert_eq!(m.get(b"p/2"), None);
        assert_eq!(m.get(b"p/5"), Some(Some(b"active".to_vec())));
    }
}
