//! Files that appear complete or not at all: written to a temporary file beside the destination,
//! flushed and synced, then renamed over it. A scan that fails or is interrupted drops the
//! temporary file and leaves whatever was at the destination before.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// A file being written; it replaces `dest` on [`commit`](AtomicFile::commit) only.
#[derive(Debug)]
pub struct AtomicFile {
    dest: PathBuf,
    tmp: PathBuf,
    out: Option<BufWriter<File>>,
}

fn tmp_path(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    dest.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

impl AtomicFile {
    pub fn create(dest: &Path) -> std::io::Result<Self> {
        if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = tmp_path(dest);
        let out = BufWriter::new(File::create(&tmp)?);
        Ok(AtomicFile {
            dest: dest.to_owned(),
            tmp,
            out: Some(out),
        })
    }

    pub fn writer(&mut self) -> &mut impl Write {
        // `out` is only taken by `commit`, which consumes `self`.
        self.out.as_mut().unwrap_or_else(|| unreachable!())
    }

    /// Flushes, syncs and renames over the destination.
    pub fn commit(mut self) -> std::io::Result<()> {
        if let Some(out) = self.out.take() {
            let file = out.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
        }
        std::fs::rename(&self.tmp, &self.dest)
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.out.is_some() {
            self.out = None;
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `bytes` to `dest` atomically.
pub fn write(dest: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = AtomicFile::create(dest)?;
    f.writer().write_all(bytes)?;
    f.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_appears_until_commit() {
        let dir = tempfile::tempdir().expect("tmp");
        let dest = dir.path().join("sub").join("out.jsonl");
        let mut f = AtomicFile::create(&dest).expect("create");
        f.writer().write_all(b"half").expect("write");
        assert!(!dest.exists());
        drop(f);
        assert!(!dest.exists());
        assert_eq!(
            std::fs::read_dir(dest.parent().expect("dir"))
                .expect("ls")
                .count(),
            0
        );
        write(&dest, b"whole").expect("write");
        assert_eq!(std::fs::read(&dest).expect("read"), b"whole");
    }
}
