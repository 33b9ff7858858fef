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
//! `1, klen: u32, key, vlen: u32, value` (put) or `2, klen: u32, key` (delete). A
//! frame always holds at least one op, so a zero length is damage (a zero-filled
//! tail would otherwise read as empty frames).
//!
//! A segment whose append failed is never appended to again (`seal`): it is cut back
//! to the frames whose `fdatasync` succeeded and the writer moves on to a new one.
//!
//! Segments are written over zeros where they can be: a background thread fills a
//! spare file with zeros ahead of time (`prepare_spare`) and a new segment takes it
//! over by a rename. An append then overwrites blocks the file already has, so its
//! `fdatasync` writes the data alone and not the inode (whose size would otherwise
//! change with every append): 175 against 250 us here for a 13 KB frame. So the last
//! segment may end in zeros; a closed one is cut back to its frames when the writer
//! moves on, so only the last may.

use super::faults::Faults;
use super::StoreError;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const PUT: u8 = 1;
const DEL: u8 = 2;
const HEADER: usize = 8;

/// The zero-filled file the next segment takes over; `SPARE_PARTIAL` while filling.
const SPARE: &str = "spare";
const SPARE_PARTIAL: &str = "spare.partial";
/// How much of a spare is written between pauses: the fill shares the disk with
/// the appends and must not hold up their `fdatasync`s for long.
const SPARE_CHUNK: usize = 1 << 20;
const SPARE_PAUSE: std::time::Duration = std::time::Duration::from_millis(2);

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
    /// Bytes whose `fdatasync` succeeded: everything after them is not durable.
    bytes: u64,
    /// The file took over a spare: it is longer than its frames (zeros follow them).
    over_zeros: bool,
    faults: Arc<Faults>,
}

pub(super) fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016x}.wal"))
}

fn io_err(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Journal(format!("{}: {e}", path.display()))
}

/// The segments in `dir`, oldest first.
pub(super) fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
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
    /// Starts a new segment numbered `seq`, over the spare if one is ready.
    pub fn create(dir: &Path, seq: u64, faults: Arc<Faults>) -> Result<Journal, StoreError> {
        let path = segment_path(dir, seq);
        let over_zeros = match fs::rename(dir.join(SPARE), &path) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(io_err(&path, e)),
        };
        let file = OpenOptions::new()
            .create_new(!over_zeros)
            .write(true)
            .open(&path)
            .map_err(|e| io_err(&path, e))?;
        sync_dir(dir)?;
        Ok(Journal {
            dir: dir.to_owned(),
            file,
            seq,
            bytes: 0,
            over_zeros,
            faults,
        })
    }

    /// Appends a sealed frame and waits until it is on disk. After an error the
    /// segment must be sealed, not appended to: what the failed append left in the file
    /// (and in the page cache) is unknown.
    pub fn append(&mut self, frame: &[u8]) -> Result<(), StoreError> {
        let path = || segment_path(&self.dir, self.seq);
        self.file
            .write_all_at(frame, self.bytes)
            .map_err(|e| io_err(&path(), e))?;
        if self.faults.sync_fails() {
            let injected = std::io::Error::other("fdatasync failed (injected EIO)");
            return Err(io_err(&path(), injected));
        }
        self.file.sync_data().map_err(|e| io_err(&path(), e))?;
        self.bytes += frame.len() as u64;
        Ok(())
    }

    /// After a failed append: cuts the segment back to the bytes whose sync succeeded,
    /// makes the cut durable, and reads the file back to check it now ends exactly
    /// after its last whole frame. An empty segment is removed instead. The failed
    /// write is never retried here and never trusted: its writes go to a new segment.
    pub fn seal(&self) -> Result<(), StoreError> {
        let path = segment_path(&self.dir, self.seq);
        if self.bytes == 0 {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&path, e)),
            }
            return sync_dir(&self.dir);
        }
        self.file
            .set_len(self.bytes)
            .and_then(|()| self.file.sync_all())
            .map_err(|e| io_err(&path, e))?;
        let data = fs::read(&path).map_err(|e| io_err(&path, e))?;
        let whole = frames(&data).try_fold(0u64, |n, f| f.map(|p| n + (HEADER + p.len()) as u64));
        if whole != Ok(self.bytes) || data.len() as u64 != self.bytes {
            return Err(StoreError::Journal(format!(
                "{}: cut back to {} bytes, it does not read back as whole frames",
                path.display(),
                self.bytes
            )));
        }
        Ok(())
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Moves on to a new segment; returns the number of the one it closed, which a
    /// checkpoint may delete once sled holds everything applied so far.
    pub fn rotate(&mut self) -> Result<u64, StoreError> {
        if self.over_zeros {
            // Only the last segment may end in zeros (`replay`).
            self.file
                .set_len(self.bytes)
                .and_then(|()| self.file.sync_all())
                .map_err(|e| io_err(&segment_path(&self.dir, self.seq), e))?;
            self.over_zeros = false;
        }
        let next = self.successor()?;
        let closed = std::mem::replace(self, next);
        Ok(closed.seq)
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The segment after this one, for the writer to move on to after `seal`.
    pub fn successor(&self) -> Result<Journal, StoreError> {
        Journal::create(&self.dir, self.seq + 1, Arc::clone(&self.faults))
    }
}

/// Fills a spare segment of `bytes` zeros for the next `Journal::create`, unless one
/// at least that large is ready. Run off the commit path; in chunks with pauses, so the appends'
/// `fdatasync`s are not queued behind one long write. A spare only appears (by a
/// rename) once all of it is on disk.
pub(super) fn prepare_spare(dir: &Path, bytes: u64) -> Result<(), StoreError> {
    let spare = dir.join(SPARE);
    if fs::metadata(&spare).is_ok_and(|m| m.len() >= bytes) {
        return Ok(());
    }
    let partial = dir.join(SPARE_PARTIAL);
    let filled = (|| {
        let mut file = File::create(&partial)?;
        let zeros = vec![0u8; SPARE_CHUNK];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(SPARE_CHUNK as u64) as usize;
            file.write_all(&zeros[..n])?;
            file.sync_data()?;
            left -= n as u64;
            std::thread::sleep(SPARE_PAUSE);
        }
        file.sync_all()?;
        fs::rename(&partial, &spare)
    })();
    if let Err(e) = filled {
        // A full disk, say: the room goes back to the journal and sled.
        let _ = fs::remove_file(&partial);
        return Err(io_err(&partial, e));
    }
    sync_dir(dir)
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

/// The payload of an intact frame starting at byte `at`, if one does: a non-zero
/// length that fits in `data` and a matching checksum.
fn frame_at(data: &[u8], at: usize) -> Option<&[u8]> {
    let h = data.get(at..at.checked_add(HEADER)?)?;
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
    let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    let payload = data.get(at + HEADER..(at + HEADER).checked_add(len)?)?;
    (len > 0 && crc32fast::hash(payload) == crc).then_some(payload)
}

/// The frames of one segment's bytes, in order. `Err(offset)` ends the iteration at
/// a frame that is cut short, empty or fails its checksum.
fn frames(data: &[u8]) -> impl Iterator<Item = Result<&[u8], usize>> {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at >= data.len() {
            return None;
        }
        let start = at;
        match frame_at(data, at) {
            Some(payload) => {
                at += HEADER + payload.len();
                Some(Ok(payload))
            }
            None => {
                at = data.len();
                Some(Err(start))
            }
        }
    })
}

/// The first byte after `damaged` where an intact frame starts, if any. A crash
/// mid-append leaves at most one partial frame at the end; an intact frame after the
/// damage means the damage is not that, and what follows was acknowledged.
fn intact_frame_after(data: &[u8], damaged: usize) -> Option<usize> {
    (damaged + 1..data.len().saturating_sub(HEADER)).find(|&at| frame_at(data, at).is_some())
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
/// The last segment may end in a damaged frame: one cut short by a crash mid-append,
/// its bytes not all written (zeros, or stale bytes after a power loss), so never
/// acknowledged (acknowledgement follows `fdatasync`); it is dropped with a warning.
/// A bad frame anywhere else (in an earlier segment, or followed by an intact frame)
/// means the disk lost acknowledged data: start-up stops, naming the segment and the
/// byte, rather than run on a silently older state.
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
                // The unwritten rest of a segment that took over a spare.
                Err(at) if i + 1 == segs.len() && data[at..].iter().all(|b| *b == 0) => break,
                Err(at) => match (i + 1 == segs.len(), intact_frame_after(&data, at)) {
                    (true, None) => {
                        tracing::warn!(segment = %path.display(), offset = at, dropped_bytes = data.len() - at,
                            "journal ends in an incomplete frame (a crash mid-append); it was never acknowledged");
                        break;
                    }
                    (true, Some(next)) => {
                        return Err(corrupt(
                            path,
                            format!("journal frame at byte {at} is damaged and an intact frame follows at byte {next}: acknowledged commits would be lost"),
                        ))
                    }
                    (false, _) => {
                        return Err(corrupt(
                            path,
                            format!("journal frame at byte {at} is damaged in a segment that is not the last: acknowledged commits would be lost"),
                        ))
                    }
                },
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
mod tests;
