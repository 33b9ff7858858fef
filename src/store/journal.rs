//! The commit journal: what makes a commit durable.
//!
//! Each commit window is appended to the current segment as one checksummed frame and
//! `fdatasync`ed before anyone hears of it. sled takes the same writes in memory only;
//! a background checkpoint flushes sled every `checkpoint` interval and then deletes
//! the segments that flush covers. So a commit costs one append and one `fdatasync`
//! (about 150 us here) instead of a sled flush (which rewrites pages and, on Linux,
//! only `sync_file_range`s them: sled #1452), and sled's flush work leaves the commit
//! path. At start-up, segments still present are replayed into sled in order.
//!
//! Replaying is idempotent: a frame holds only puts and deletes of concrete keys (the
//! writer resolves outbox sequence numbers and prefix deletes before writing), so
//! applying frames sled already has, in order, ends in the same state.
//!
//! Frame: `len: u32 LE`, `crc32(payload): u32 LE`, payload. Payload: ops, each
//! `1, klen: u32, key, vlen: u32, value` (put) or `2, klen: u32, key` (delete).

use super::StoreError;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

const PUT: u8 = 1;
const DEL: u8 = 2;
const HEADER: usize = 8;

/// A frame being built; `finish` seals it.
pub(super) struct Frame {
    buf: Vec<u8>,
}

impl Frame {
    pub fn new() -> Frame {
        Frame {
            buf: vec![0; HEADER],
        }
    }

    pub fn put(&mut self, key: &[u8], value: &[u8]) {
        self.buf.push(PUT);
        self.bytes(key);
        self.bytes(value);
    }

    pub fn del(&mut self, key: &[u8]) {
        self.buf.push(DEL);
        self.bytes(key);
    }

    fn bytes(&mut self, b: &[u8]) {
        self.buf
            .extend_from_slice(&u32::try_from(b.len()).unwrap_or(u32::MAX).to_le_bytes());
        self.buf.extend_from_slice(b);
    }

    pub fn finish(mut self) -> Vec<u8> {
        let len = u32::try_from(self.buf.len() - HEADER).unwrap_or(u32::MAX);
        let crc = crc32fast::hash(&self.buf[HEADER..]);
        self.buf[..4].copy_from_slice(&len.to_le_bytes());
        self.buf[4..HEADER].copy_from_slice(&crc.to_le_bytes());
        self.buf
    }
}

/// The segment being appended to.
pub(super) struct Journal {
    dir: PathBuf,
    file: File,
    seq: u64,
    bytes: u64,
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016x}.wal"))
}

fn io_err(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Journal(format!("{}: {e}", path.display()))
}

/// The segments in `dir`, oldest first.
fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let path = entry.map_err(|e| io_err(dir, e))?.path();
        let seq = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".wal"))
            .and_then(|n| u64::from_str_radix(n, 16).ok());
        if let Some(seq) = seq {
            out.push((seq, path));
        }
    }
    out.sort();
    Ok(out)
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, e))
}

impl Journal {
    /// Starts a new segment numbered `seq`.
    pub fn create(dir: &Path, seq: u64) -> Result<Journal, StoreError> {
        let path = segment_path(dir, seq);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(|e| io_err(&path, e))?;
        sync_dir(dir)?;
        Ok(Journal {
            dir: dir.to_owned(),
            file,
            seq,
            bytes: 0,
        })
    }

    /// Appends a sealed frame and waits until it is on disk.
    pub fn append(&mut self, frame: &[u8]) -> Result<(), StoreError> {
        let path = || segment_path(&self.dir, self.seq);
        self.file.write_all(frame).map_err(|e| io_err(&path(), e))?;
        self.file.sync_data().map_err(|e| io_err(&path(), e))?;
        self.bytes += frame.len() as u64;
        Ok(())
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Moves on to a new segment; returns the number of the one it closed, which a
    /// checkpoint may delete once sled holds everything applied so far.
    pub fn rotate(&mut self) -> Result<u64, StoreError> {
        let next = Journal::create(&self.dir, self.seq + 1)?;
        let closed = std::mem::replace(self, next);
        Ok(closed.seq)
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }
}

/// Deletes every segment numbered `upto` or lower (sled was flushed past them).
pub(super) fn delete_upto(dir: &Path, upto: u64) -> Result<(), StoreError> {
    for (seq, path) in segments(dir)? {
        if seq <= upto {
            fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
        }
    }
    Ok(())
}

/// One decoded operation of a frame.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Op<'a> {
    Put(&'a [u8], &'a [u8]),
    Del(&'a [u8]),
}

/// The frames of one segment's bytes, in order. `Err(offset)` ends the iteration at
/// a frame that is cut short or fails its checksum.
fn frames(data: &[u8]) -> impl Iterator<Item = Result<&[u8], usize>> {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at >= data.len() {
            return None;
        }
        let start = at;
        let header = data.get(at..at + HEADER);
        let frame = header.and_then(|h| {
            let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
            let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
            let payload = data.get(at + HEADER..at + HEADER + len)?;
            (crc32fast::hash(payload) == crc).then_some((payload, len))
        });
        match frame {
            Some((payload, len)) => {
                at += HEADER + len;
                Some(Ok(payload))
            }
            None => {
                at = data.len();
                Some(Err(start))
            }
        }
    })
}

/// The operations of one (checksummed) payload.
pub(super) fn ops(payload: &[u8]) -> Result<Vec<Op<'_>>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    let bytes = |at: &mut usize| -> Result<&[u8], String> {
        let len = payload
            .get(*at..*at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or("a length runs past the frame")?;
        let b = payload
            .get(*at + 4..*at + 4 + len)
            .ok_or("a key or value runs past the frame")?;
        *at += 4 + len;
        Ok(b)
    };
    while at < payload.len() {
        let tag = payload[at];
        at += 1;
        match tag {
            PUT => {
                let k = bytes(&mut at)?;
                let v = bytes(&mut at)?;
                out.push(Op::Put(k, v));
            }
            DEL => out.push(Op::Del(bytes(&mut at)?)),
            t => return Err(format!("unknown operation {t}")),
        }
    }
    Ok(out)
}

/// Replays every segment in `dir` into `db` (creating `dir` if needed), flushes sled,
/// deletes the segments, and returns the number for the next segment.
///
/// The last segment may end in a frame cut short by a crash: it was never
/// acknowledged (acknowledgement follows `fdatasync`), so it is dropped with a
/// warning. A bad frame anywhere else means the disk lost acknowledged data: start-up
/// stops rather than run on a silently older state.
pub(super) fn replay(db: &sled::Db, dir: &Path) -> Result<u64, StoreError> {
    fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let segs = segments(dir)?;
    let corrupt = |path: &Path, detail: String| StoreError::Corrupt {
        path: path.display().to_string(),
        detail,
    };
    let mut replayed = 0u64;
    for (i, (_, path)) in segs.iter().enumerate() {
        let data = fs::read(path).map_err(|e| io_err(path, e))?;
        for frame in frames(&data) {
            let payload = match frame {
                Ok(p) => p,
                Err(at) if i + 1 == segs.len() => {
                    tracing::warn!(segment = %path.display(), offset = at, dropped_bytes = data.len() - at,
                        "journal ends in an incomplete frame (a crash mid-append); it was never acknowledged");
                    break;
                }
                Err(at) => {
                    return Err(corrupt(
                        path,
                        format!("journal frame at byte {at} is damaged"),
                    ))
                }
            };
            let mut batch = sled::Batch::default();
            for op in ops(payload).map_err(|e| corrupt(path, format!("journal frame: {e}")))? {
                match op {
                    Op::Put(k, v) => batch.insert(k, v),
                    Op::Del(k) => batch.remove(k),
                }
            }
            db.apply_batch(batch)?;
            replayed += 1;
        }
    }
    db.flush()?;
    if replayed > 0 {
        tracing::info!(
            frames = replayed,
            segments = segs.len(),
            "replayed the journal"
        );
    }
    let next = segs.last().map_or(0, |(seq, _)| seq + 1);
    if let Some((last, _)) = segs.last() {
        delete_upto(dir, *last)?;
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(ops: &[(&[u8], Option<&[u8]>)]) -> Vec<u8> {
        let mut f = Frame::new();
        for (k, v) in ops {
            match v {
                Some(v) => f.put(k, v),
                None => f.del(k),
            }
        }
        f.finish()
    }

    fn temp_db() -> (tempfile::TempDir, sled::Db) {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = sled::Config::new()
            .path(dir.path().join("db"))
            .open()
            .expect("sled opens");
        (dir, db)
    }

    #[test]
    fn frames_round_trip() {
        let f = frame(&[(b"a", Some(b"1")), (b"b", None), (b"", Some(b""))]);
        let payloads: Vec<_> = frames(&f).collect();
        assert_eq!(payloads.len(), 1);
        let payload = payloads[0].expect("intact");
        assert_eq!(
            ops(payload).expect("decodes"),
            vec![Op::Put(b"a", b"1"), Op::Del(b"b"), Op::Put(b"", b"")]
        );
    }

    #[test]
    fn replay_applies_in_order_and_empties_the_journal() {
        let (dir, db) = temp_db();
        let jdir = dir.path().join("journal");
        fs::create_dir_all(&jdir).expect("dir");
        let mut j = Journal::create(&jdir, 3).expect("segment");
        j.append(&frame(&[(b"k", Some(b"1")), (b"gone", Some(b"x"))]))
            .expect("append");
        j.rotate().expect("rotate");
        j.append(&frame(&[(b"k", Some(b"2")), (b"gone", None)]))
            .expect("append");
        assert_eq!(j.seq(), 4);
        let next = replay(&db, &jdir).expect("replays");
        assert_eq!(next, 5);
        assert_eq!(db.get(b"k").expect("get").as_deref(), Some(&b"2"[..]));
        assert_eq!(db.get(b"gone").expect("get"), None);
        assert!(segments(&jdir).expect("lists").is_empty());
        // Replaying the same frames again (a crash before the delete) is harmless.
        assert_eq!(replay(&db, &jdir).expect("replays"), 0);
        assert_eq!(db.get(b"k").expect("get").as_deref(), Some(&b"2"[..]));
    }

    #[test]
    fn a_torn_last_frame_is_dropped_but_damage_before_the_end_refuses_start() {
        let (dir, db) = temp_db();
        let jdir = dir.path().join("journal");
        fs::create_dir_all(&jdir).expect("dir");
        let good = frame(&[(b"a", Some(b"1"))]);
        let torn = frame(&[(b"b", Some(b"2"))]);
        let mut bytes = good.clone();
        bytes.extend_from_slice(&torn[..torn.len() - 1]);
        fs::write(segment_path(&jdir, 0), &bytes).expect("write");
        assert_eq!(replay(&db, &jdir).expect("the torn tail is dropped"), 1);
        assert_eq!(db.get(b"a").expect("get").as_deref(), Some(&b"1"[..]));
        assert_eq!(db.get(b"b").expect("get"), None);

        // The same damage in a segment that is not the last: acknowledged data is gone.
        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        fs::write(segment_path(&jdir, 7), &flipped).expect("write");
        fs::write(segment_path(&jdir, 8), &good).expect("write");
        assert!(matches!(
            replay(&db, &jdir),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
