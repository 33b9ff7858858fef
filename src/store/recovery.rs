//! Reading every activity back from the store at start-up.

use super::codec::{decode_hold_slot, HoldSlot};
use super::layout::{parse_activity_key, ActivityKey};
use super::StoreError;
use crate::domain::activity::{ActivityRecord, Restored};
use std::collections::BTreeMap;

pub struct LoadedActivity {
    pub record: ActivityRecord,
    pub data: Restored,
}

fn decode<T: serde::de::DeserializeOwned>(
    path: &str,
    key: &[u8],
    v: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(v).map_err(|e| corrupt(path, key, e))
}

fn corrupt(path: &str, key: &[u8], e: serde_json::Error) -> StoreError {
    StoreError::Corrupt {
        path: path.into(),
        detail: format!("entry {}: {e}", String::from_utf8_lossy(key)),
    }
}

/// Decodes activities from their entries (every `a/...` key, or one activity's).
pub(super) fn load(
    entries: super::memtable::Entries,
    path: &str,
) -> Result<Vec<LoadedActivity>, StoreError> {
    let mut records: BTreeMap<String, ActivityRecord> = BTreeMap::new();
    let mut data: BTreeMap<String, Restored> = BTreeMap::new();
    for (k, v) in entries {
        let key = parse_activity_key(&k).ok_or_else(|| StoreError::Corrupt {
            path: path.into(),
            detail: format!("unknown key {}", String::from_utf8_lossy(&k)),
        })?;
        match key {
            ActivityKey::Record(id) => {
                records.insert(id.to_owned(), decode(path, &k, &v)?);
            }
            ActivityKey::Shuffle(_) => {}
            ActivityKey::Report(id) => {
                data.entry(id.to_owned()).or_default().report = Some(decode(path, &k, &v)?);
            }
            ActivityKey::Numbered(id, kind, n) => {
                let d = data.entry(id.to_owned()).or_default();
                match kind {
                    'p' => d.places.push((n, decode(path, &k, &v)?)),
                    'q' => d.pre.push((n, decode(path, &k, &v)?)),
                    'h' => match decode_hold_slot(&v).map_err(|e| corrupt(path, &k, e))? {
                        HoldSlot::Unspent(h) => d.holds.push(h),
                        HoldSlot::Spent(o) => d.orders.push(o),
                    },
                    'o' => d.orders.push(decode(path, &k, &v)?),
                    'l' => d.lines.push((n, decode(path, &k, &v)?)),
                    'm' => d.minutes.push((n, decode(path, &k, &v)?)),
                    'i' => d.invites.push((n, decode(path, &k, &v)?)),
                    'b' => d.bans.push((n, decode(path, &k, &v)?)),
                    'r' => d.revoked.push((n, decode(path, &k, &v)?)),
                    _ => {
                        return Err(StoreError::Corrupt {
                            path: path.into(),
                            detail: format!("unknown key {}", String::from_utf8_lossy(&k)),
                        })
                    }
                }
            }
        }
    }
    if let Some(orphan) = data.keys().find(|id| !records.contains_key(*id)) {
        return Err(StoreError::Corrupt {
            path: path.into(),
            detail: format!("entries for activity {orphan} without its record"),
        });
    }
    for d in data.values_mut() {
        newest_orders(&mut d.orders);
    }
    Ok(records
        .into_iter()
        .map(|(id, record)| LoadedActivity {
            record,
            data: data.remove(&id).unwrap_or_default(),
        })
        .collect())
}

/// One order per number, its newest version: a schema 1 order rewritten since has
/// its old `o/` key and its hold's key (`layout`).
fn newest_orders(orders: &mut Vec<crate::domain::order::Order>) {
    orders.sort_unstable_by(|a, b| a.n.cmp(&b.n).then(b.version.cmp(&a.version)));
    orders.dedup_by_key(|o| o.n);
}
