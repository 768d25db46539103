//! `flint logs FUNCTION [--follow]`: prints a function's log streams from the data dir, oldest
//! stream first, and with `--follow` keeps printing what is appended (like `tail -f`).

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;

#[derive(Args)]
pub struct LogsArgs {
    /// The function's name.
    function: String,
    /// Keep printing new log lines as they are written.
    #[arg(short, long)]
    follow: bool,
    /// The data directory the server uses.
    #[arg(long, default_value_os_t = crate::default_data_dir())]
    data_dir: PathBuf,
    /// The account that owns the function.
    #[arg(long, default_value = "000000000000")]
    account: String,
    /// The region the function lives in.
    #[arg(long, default_value = "us-east-1")]
    region: String,
}

pub fn run(args: LogsArgs) -> anyhow::Result<()> {
    // <stream>.log files, where the stream name (`YYYY/MM/DD/[$LATEST]<id>`) makes
    // sub-directories.
    let dir = flint_store::Layout::new(&args.data_dir).function_logs(
        &args.account,
        &args.region,
        &args.function,
    );
    let mut offsets: Vec<(PathBuf, u64)> = Vec::new();
    let mut out = std::io::stdout().lock();
    loop {
        for stream in streams(&dir)? {
            let start = offsets
                .iter()
                .find(|(p, _)| *p == stream)
                .map_or(0, |(_, o)| *o);
            let end = copy_from(&stream, start, &mut out)?;
            match offsets.iter_mut().find(|(p, _)| *p == stream) {
                Some(entry) => entry.1 = end,
                None => offsets.push((stream, end)),
            }
        }
        out.flush()?;
        if !args.follow {
            if offsets.is_empty() {
                anyhow::bail!(
                    "no logs for function {} in {} ({} {})",
                    args.function,
                    args.data_dir.display(),
                    args.account,
                    args.region
                );
            }
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The function's log stream files (found at any depth), oldest first.
fn streams(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
        };
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            let meta = entry.metadata()?;
            if meta.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "log") {
                files.push((meta.created().or_else(|_| meta.modified())?, path));
            }
        }
    }
    files.sort();
    Ok(files.into_iter().map(|(_, p)| p).collect())
}

/// Copies `path` from byte `start` to `out`; returns the new end offset.
fn copy_from(path: &Path, start: u64, out: &mut impl Write) -> anyhow::Result<u64> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let len = file.metadata()?.len();
    if len <= start {
        return Ok(start.min(len));
    }
    file.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::with_capacity((len - start) as usize);
    file.take(len - start).read_to_end(&mut buf)?;
    out.write_all(&buf)?;
    Ok(start + buf.len() as u64)
}
