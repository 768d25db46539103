//! Reading the engine's log streams from the data dir: `logs/<account>/<region>/<function>/
//! <stream>.log`, each beside its `<stream>.idx` (its log group on the first line, then
//! `<byte offset> <unix ms>` for every batch of lines the engine wrote). A stream without an index
//! (written by an older Flint) is in `/aws/lambda/<function>` and its events carry the file's
//! modification time.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// One log stream: one execution environment's output.
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    pub group: String,
    /// `YYYY/MM/DD/[$LATEST]<32 hex>`.
    pub name: String,
    pub path: PathBuf,
    /// Unix ms of its first and last batch (file times when it has no index).
    pub first_ms: i64,
    pub last_ms: i64,
    pub bytes: u64,
}

/// One log event: a line of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Its line number in the stream (0-based).
    pub line: usize,
    pub timestamp: i64,
    pub message: String,
}

/// An account's logs in one region.
#[derive(Debug, Clone)]
pub struct LogStore {
    root: PathBuf,
}

fn ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl LogStore {
    /// `root` is `logs/<account>/<region>` of the data dir.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Every stream of every function, in no particular order.
    pub fn streams(&self) -> std::io::Result<Vec<Stream>> {
        let mut out = Vec::new();
        let functions = match std::fs::read_dir(&self.root) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        for f in functions {
            let f = f?;
            if !f.file_type()?.is_dir() {
                continue;
            }
            let function = f.file_name().to_string_lossy().into_owned();
            let dir = f.path();
            let mut pending = vec![dir.clone()];
            while let Some(d) = pending.pop() {
                for entry in std::fs::read_dir(&d)? {
                    let entry = entry?;
                    let path = entry.path();
                    if entry.file_type()?.is_dir() {
                        pending.push(path);
                        continue;
                    }
                    if path.extension().is_none_or(|e| e != "log") {
                        continue;
                    }
                    let Some(name) = path
                        .strip_prefix(&dir)
                        .ok()
                        .and_then(|p| p.to_str())
                        .and_then(|p| p.strip_suffix(".log"))
                        .map(str::to_string)
                    else {
                        continue;
                    };
                    let meta = entry.metadata()?;
                    let modified = meta.modified().map_or(0, ms);
                    let index = read_index(&path);
                    let group = index
                        .group
                        .filter(|g| !g.is_empty())
                        .unwrap_or_else(|| format!("/aws/lambda/{function}"));
                    out.push(Stream {
                        group,
                        name,
                        first_ms: index.batches.first().map_or(modified, |b| b.1),
                        last_ms: index.batches.last().map_or(modified, |b| b.1),
                        bytes: meta.len(),
                        path,
                    });
                }
            }
        }
        Ok(out)
    }

    /// A stream's events, oldest first.
    pub fn events(&self, stream: &Stream) -> std::io::Result<Vec<Event>> {
        let data = std::fs::read(&stream.path)?;
        let index = read_index(&stream.path);
        let mut out = Vec::new();
        let mut offset = 0usize;
        let mut batch = 0usize;
        for (line, raw) in data.split_inclusive(|&b| b == b'\n').enumerate() {
            // A line written after the last complete index entry belongs to its batch.
            while batch + 1 < index.batches.len() && index.batches[batch + 1].0 <= offset as u64 {
                batch += 1;
            }
            let timestamp = index.batches.get(batch).map_or(stream.last_ms, |b| b.1);
            offset += raw.len();
            let text = String::from_utf8_lossy(raw);
            let text = text.trim_end_matches(['\n', '\r']);
            if text.is_empty() {
                continue;
            }
            out.push(Event {
                line,
                timestamp,
                message: text.to_string(),
            });
        }
        Ok(out)
    }

    /// The complete lines a stream gained after byte `offset` (events numbered from 0 within
    /// them), and the offset after the last of them: what a live tail reads each second. A line
    /// still being written (no newline yet) waits for the next read.
    pub fn events_after(&self, stream: &Stream, offset: u64) -> std::io::Result<(Vec<Event>, u64)> {
        use std::io::{Read, Seek, SeekFrom};
        let mut file = std::fs::File::open(&stream.path)?;
        let len = file.metadata()?.len();
        // A file that shrank was replaced: read it from its start.
        let offset = if len < offset { 0 } else { offset };
        file.seek(SeekFrom::Start(offset))?;
        let mut data = Vec::new();
        file.read_to_end(&mut data)?;
        let complete = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let index = read_index(&stream.path);
        let mut out = Vec::new();
        let mut at = offset;
        for raw in data[..complete].split_inclusive(|&b| b == b'\n') {
            let timestamp = index
                .batches
                .iter()
                .take_while(|b| b.0 <= at)
                .last()
                .map_or(stream.last_ms, |b| b.1);
            at += raw.len() as u64;
            let text = String::from_utf8_lossy(raw);
            let text = text.trim_end_matches(['\n', '\r']);
            if text.is_empty() {
                continue;
            }
            out.push(Event {
                line: out.len(),
                timestamp,
                message: text.to_string(),
            });
        }
        Ok((out, offset + complete as u64))
    }
}

#[derive(Default)]
struct Index {
    group: Option<String>,
    /// (byte offset, unix ms), in offset order.
    batches: Vec<(u64, i64)>,
}

fn read_index(stream: &Path) -> Index {
    let Ok(text) = std::fs::read_to_string(stream.with_extension("idx")) else {
        return Index::default();
    };
    let mut lines = text.lines();
    let group = lines.next().map(str::to_string);
    let batches = lines
        .filter_map(|l| {
            let (o, t) = l.split_once(' ')?;
            Some((o.parse().ok()?, t.parse().ok()?))
        })
        .collect();
    Index { group, batches }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_take_the_time_of_their_batch_and_streams_their_group() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let f = dir.path().join("fn/2026/01/02");
        std::fs::create_dir_all(&f)?;
        std::fs::write(f.join("[$LATEST]ab.log"), "one\ntwo\n\nthree\n")?;
        std::fs::write(f.join("[$LATEST]ab.idx"), "/custom/group\n0 1000\n8 2000\n")?;
        std::fs::write(f.join("[$LATEST]cd.log"), "old\n")?;
        let store = LogStore::new(dir.path());
        let mut streams = store.streams()?;
        streams.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(streams.len(), 2);
        assert_eq!(streams[0].name, "2026/01/02/[$LATEST]ab");
        assert_eq!(streams[0].group, "/custom/group");
        assert_eq!((streams[0].first_ms, streams[0].last_ms), (1000, 2000));
        assert_eq!(streams[1].group, "/aws/lambda/fn");
        let events = store.events(&streams[0])?;
        let got: Vec<(i64, &str)> = events
            .iter()
            .map(|e| (e.timestamp, e.message.as_str()))
            .collect();
        assert_eq!(got, vec![(1000, "one"), (1000, "two"), (2000, "three")]);
        Ok(())
    }

    #[test]
    fn events_after_an_offset_are_the_complete_lines_since() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let f = dir.path().join("fn");
        std::fs::create_dir_all(&f)?;
        std::fs::write(f.join("s.log"), "one\ntwo\nthr")?;
        std::fs::write(f.join("s.idx"), "/aws/lambda/fn\n0 1000\n4 2000\n")?;
        let store = LogStore::new(dir.path());
        let stream = store.streams()?.remove(0);
        let (events, next) = store.events_after(&stream, 4)?;
        let got: Vec<(i64, &str)> = events
            .iter()
            .map(|e| (e.timestamp, e.message.as_str()))
            .collect();
        assert_eq!((got, next), (vec![(2000, "two")], 8));
        assert!(
            store.events_after(&stream, 8)?.0.is_empty(),
            "a partial line waits"
        );
        assert_eq!(
            store.events_after(&stream, 100)?.1,
            8,
            "a replaced file is re-read"
        );
        Ok(())
    }

    #[test]
    fn a_missing_root_has_no_streams() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        assert!(LogStore::new(dir.path().join("nope")).streams()?.is_empty());
        Ok(())
    }
}
