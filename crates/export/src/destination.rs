//! Where export jobs put their files (`export.destination`): a local directory.
//!
//! A job writes `<id>.<ext>.part` and renames it to `<id>.<ext>` once the encoder is done, so a
//! file under its final name is always whole; a run that stops deletes its partial file. The
//! job's `location` is the final path, which downloads read (with range requests) and expiry
//! deletes.

use std::io::BufWriter;
use std::path::{Path, PathBuf};

/// Bytes buffered before the file is written to.
const WRITE_BUFFER: usize = 256 * 1024;

/// Where export files go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A directory of this machine (shared storage when replicas must serve each other's
    /// files).
    Local(PathBuf),
}

impl Destination {
    /// Parses `export.destination`: a directory path (`file://` optional). Object store URLs
    /// (`gs://`, `s3://`) are refused with a message saying so.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("export.destination must not be empty".into());
        }
        if let Some((scheme, _)) = text.split_once("://")
            && scheme != "file"
        {
            return Err(format!(
                "export.destination {text:?}: only a local directory (or file://PATH) is \
                 supported in this version; gs:// and s3:// are not"
            ));
        }
        Ok(Destination::Local(PathBuf::from(
            text.strip_prefix("file://").unwrap_or(text),
        )))
    }

    /// Opens the partial file of job `id` (extension `ext`), creating the directory.
    pub async fn create(&self, id: &str, ext: &str) -> std::io::Result<PendingFile> {
        let Destination::Local(dir) = self;
        tokio::fs::create_dir_all(dir).await?;
        let done = dir.join(format!("{id}.{ext}"));
        let part = dir.join(format!("{id}.{ext}.part"));
        let file = tokio::fs::File::create(&part).await?.into_std().await;
        Ok(PendingFile {
            part,
            done,
            file: Some(file),
        })
    }

    /// Deletes a finished file; one already gone is fine.
    pub async fn delete(&self, location: &str) -> std::io::Result<()> {
        match tokio::fs::remove_file(location).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// The local path of a finished file, for downloads.
    pub fn local_path<'a>(&self, location: &'a str) -> &'a Path {
        Path::new(location)
    }
}

/// A file being written: renamed into place by [`PendingFile::commit`], deleted by
/// [`PendingFile::discard`].
#[derive(Debug)]
pub struct PendingFile {
    part: PathBuf,
    done: PathBuf,
    file: Option<std::fs::File>,
}

impl PendingFile {
    /// The buffered writer the encoder writes into (once).
    pub fn writer(&mut self) -> std::io::Result<BufWriter<std::fs::File>> {
        let file = self
            .file
            .take()
            .ok_or_else(|| std::io::Error::other("the export file was handed out already"))?;
        Ok(BufWriter::with_capacity(WRITE_BUFFER, file))
    }

    /// Moves the complete file under its final name; its location.
    pub async fn commit(self) -> std::io::Result<String> {
        tokio::fs::rename(&self.part, &self.done).await?;
        Ok(self.done.to_string_lossy().into_owned())
    }

    /// Deletes the partial file.
    pub async fn discard(self) {
        let _ = tokio::fs::remove_file(&self.part).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse() {
        assert_eq!(
            Destination::parse("data/exports"),
            Ok(Destination::Local("data/exports".into()))
        );
        assert_eq!(
            Destination::parse("file:///srv/exports"),
            Ok(Destination::Local("/srv/exports".into()))
        );
        assert!(
            Destination::parse("s3://bucket/x")
                .unwrap_err()
                .contains("s3://")
        );
        assert!(Destination::parse(" ").is_err());
    }

    #[tokio::test]
    async fn a_file_appears_under_its_name_only_when_committed() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let dest = Destination::Local(dir.path().to_owned());
        let mut pending = dest.create("job", "csv").await.unwrap();
        let mut w = pending.writer().unwrap();
        w.write_all(b"a,b\r\n").unwrap();
        w.flush().unwrap();
        drop(w);
        assert!(!dir.path().join("job.csv").exists());
        let location = pending.commit().await.unwrap();
        assert_eq!(std::fs::read(&location).unwrap(), b"a,b\r\n");
        dest.delete(&location).await.unwrap();
        dest.delete(&location).await.unwrap();
        assert!(!dir.path().join("job.csv").exists());

        let pending = dest.create("gone", "csv").await.unwrap();
        pending.discard().await;
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
