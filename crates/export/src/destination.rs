//! Where export jobs put their files (`export.destination`): a local directory, or a GCS or S3
//! bucket through the `object_store` crate (the one DataFusion already uses).
//!
//! A job writes `<id>.<ext>.part` on local disk (the destination directory, or a spool
//! directory for buckets) and [`Destination::commit`]s it when the encoder is done: a rename
//! into place, or a multipart upload (a few 8 MiB parts in flight, never the whole file in
//! memory) with the file's `Content-Type` and `Content-Disposition`, after which the spool file
//! goes. So a file under its final name is always whole, and a run that stops deletes its
//! partial file. The job's `location` is the final path or `gs://` / `s3://` URL, which
//! downloads open ([`Destination::open`]: a local file, or a presigned URL of the bucket) and
//! expiry deletes.

use std::collections::BTreeMap;
use std::fmt;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path as ObjectPath;
use object_store::signer::Signer;
use object_store::{
    Attribute, Attributes, ObjectStore, ObjectStoreExt as _, PutMultipartOptions, WriteMultipart,
};
use tokio::io::AsyncReadExt as _;

/// Bytes buffered before the file is written to.
const WRITE_BUFFER: usize = 256 * 1024;

/// Size of each part of a multipart upload (S3 wants at least 5 MiB but for the last).
const PART_BYTES: usize = 8 * 1024 * 1024;

/// Parts of an upload in flight at once.
const PARTS_IN_FLIGHT: usize = 4;

/// Where export files go.
#[derive(Debug, Clone)]
pub enum Destination {
    /// A directory of this machine (shared storage when replicas must serve each other's
    /// files).
    Local(PathBuf),
    /// A GCS or S3 bucket (and a prefix in it).
    Bucket(Arc<Bucket>),
}

impl PartialEq for Destination {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Destination::Local(a), Destination::Local(b)) => a == b,
            (Destination::Bucket(a), Destination::Bucket(b)) => a.url == b.url,
            _ => false,
        }
    }
}

/// A bucket destination: its store, its signer of presigned URLs, and the local spool
/// directory files are written to before their upload.
pub struct Bucket {
    /// As configured, e.g. `s3://exports/bqai` (no credentials).
    url: String,
    /// `s3://exports`: what a location starts with, before the object's key.
    base: String,
    prefix: ObjectPath,
    store: Arc<dyn ObjectStore>,
    signer: Arc<dyn Signer>,
    spool: PathBuf,
}

impl fmt::Debug for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bucket")
            .field("url", &self.url)
            .field("spool", &self.spool)
            .finish_non_exhaustive()
    }
}

/// A finished file, opened for a download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// A file of this machine, served by the server (with range requests).
    Local(PathBuf),
    /// A presigned URL of the bucket, for the client to fetch directly.
    Url(String),
}

/// What a committed file is labelled with in a bucket.
#[derive(Debug, Clone, Copy)]
pub struct FileLabels<'a> {
    /// Its media type.
    pub content_type: &'a str,
    /// Its download name, as [`crate::file_name`] makes it (safe to quote as is).
    pub file_name: &'a str,
}

impl Destination {
    /// Parses `export.destination`: a directory path (`file://PATH` too), or `gs://BUCKET[/PREFIX]`
    /// / `s3://BUCKET[/PREFIX]`, whose credentials and settings come from the standard
    /// environment variables (`AWS_*`, `GOOGLE_*`) and `options` (object_store's config keys,
    /// e.g. `aws_endpoint`, `aws_region`, `google_service_account`). Bucket files are spooled
    /// in `spool` before their upload.
    pub fn parse(
        text: &str,
        options: &BTreeMap<String, String>,
        spool: &Path,
    ) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("export.destination must not be empty".into());
        }
        let Some((scheme, rest)) = text.split_once("://") else {
            return Ok(Destination::Local(PathBuf::from(text)));
        };
        if scheme == "file" {
            return Ok(Destination::Local(PathBuf::from(rest)));
        }
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("export.destination {text:?} names no bucket"));
        }
        let built = |e: object_store::Error| format!("export.destination {text:?}: {e}");
        let (store, signer): (Arc<dyn ObjectStore>, Arc<dyn Signer>) = match scheme {
            "s3" => {
                use object_store::aws::AmazonS3Builder;
                let b = configured(
                    AmazonS3Builder::from_env().with_bucket_name(bucket),
                    options,
                    |b, key, value| b.with_config(key, value),
                )?;
                let s3 = Arc::new(b.build().map_err(built)?);
                (s3.clone(), s3)
            }
            "gs" => {
                use object_store::gcp::GoogleCloudStorageBuilder;
                let b = configured(
                    GoogleCloudStorageBuilder::from_env().with_bucket_name(bucket),
                    options,
                    |b, key, value| b.with_config(key, value),
                )?;
                let gcs = Arc::new(b.build().map_err(built)?);
                (gcs.clone(), gcs)
            }
            other => {
                return Err(format!(
                    "export.destination {text:?}: a directory, gs://BUCKET or s3://BUCKET, \
                     not {other}://"
                ));
            }
        };
        Ok(Destination::Bucket(Arc::new(Bucket {
            url: text.to_owned(),
            base: format!("{scheme}://{bucket}"),
            prefix: ObjectPath::from(prefix),
            store,
            signer,
            spool: spool.to_owned(),
        })))
    }

    /// Where partial files are written.
    fn scratch(&self) -> &Path {
        match self {
            Destination::Local(dir) => dir,
            Destination::Bucket(b) => &b.spool,
        }
    }

    /// Opens the partial file of job `id` (extension `ext`), creating the directory.
    pub async fn create(&self, id: &str, ext: &str) -> std::io::Result<PendingFile> {
        let dir = self.scratch();
        tokio::fs::create_dir_all(dir).await?;
        let name = format!("{id}.{ext}");
        let part = dir.join(format!("{name}.part"));
        let file = tokio::fs::File::create(&part).await?.into_std().await;
        Ok(PendingFile {
            part,
            name,
            file: Some(file),
        })
    }

    /// Puts a complete file in place (a rename, or an upload); its location.
    pub async fn commit(
        &self,
        pending: PendingFile,
        labels: FileLabels<'_>,
    ) -> std::io::Result<String> {
        match self {
            Destination::Local(dir) => {
                let done = dir.join(&pending.name);
                tokio::fs::rename(&pending.part, &done).await?;
                Ok(done.to_string_lossy().into_owned())
            }
            Destination::Bucket(b) => {
                let key = b.key(&pending.name);
                let uploaded = b.upload(&pending.part, &key, labels).await;
                pending.discard().await;
                uploaded?;
                Ok(format!("{}/{key}", b.base))
            }
        }
    }

    /// Deletes a finished file; one already gone is fine.
    pub async fn delete(&self, location: &str) -> std::io::Result<()> {
        match self {
            Destination::Local(_) => match tokio::fs::remove_file(location).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
            Destination::Bucket(b) => match b.store.delete(&b.key_of(location)?).await {
                Err(object_store::Error::NotFound { .. }) | Ok(()) => Ok(()),
                Err(e) => Err(std::io::Error::other(e)),
            },
        }
    }

    /// A finished file, for a download: the local path, or a presigned URL of the bucket
    /// valid for `ttl`.
    pub async fn open(&self, location: &str, ttl: Duration) -> std::io::Result<Stored> {
        match self {
            Destination::Local(_) => Ok(Stored::Local(PathBuf::from(location))),
            Destination::Bucket(b) => {
                let key = b.key_of(location)?;
                let url = b
                    .signer
                    .signed_url(http::Method::GET, &key, ttl)
                    .await
                    .map_err(std::io::Error::other)?;
                Ok(Stored::Url(url.to_string()))
            }
        }
    }
}

/// `builder` with each of `options` set through `set`, its key parsed as the store's config
/// key type `K`; an unknown key is an error naming it.
fn configured<B, K: std::str::FromStr>(
    builder: B,
    options: &BTreeMap<String, String>,
    set: impl Fn(B, K, &str) -> B,
) -> Result<B, String> {
    options.iter().try_fold(builder, |b, (k, v)| {
        let key = k.parse().map_err(|_| {
            format!("export.destination_options: {k:?} is not a setting of this object store")
        })?;
        Ok(set(b, key, v))
    })
}

impl Bucket {
    fn key(&self, name: &str) -> ObjectPath {
        if self.prefix.as_ref().is_empty() {
            ObjectPath::from(name)
        } else {
            self.prefix.clone().join(name)
        }
    }

    /// The object key of a location this bucket wrote.
    fn key_of(&self, location: &str) -> std::io::Result<ObjectPath> {
        location
            .strip_prefix(&self.base)
            .and_then(|rest| rest.strip_prefix('/'))
            .map(ObjectPath::from)
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "the file is not in the configured export destination",
                )
            })
    }

    /// Uploads the file at `from` to `key`, part by part.
    async fn upload(
        &self,
        from: &Path,
        key: &ObjectPath,
        labels: FileLabels<'_>,
    ) -> std::io::Result<()> {
        let mut attributes = Attributes::new();
        attributes.insert(
            Attribute::ContentType,
            labels.content_type.to_owned().into(),
        );
        attributes.insert(
            Attribute::ContentDisposition,
            format!("attachment; filename=\"{}\"", labels.file_name).into(),
        );
        let options = PutMultipartOptions {
            attributes,
            ..PutMultipartOptions::default()
        };
        let upload = self
            .store
            .put_multipart_opts(key, options)
            .await
            .map_err(std::io::Error::other)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let mut file = tokio::fs::File::open(from).await?;
        let mut buf = vec![0_u8; 1024 * 1024];
        loop {
            let read = match file.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(e);
                }
            };
            if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                let _ = writer.abort().await;
                return Err(std::io::Error::other(e));
            }
            writer.write(&buf[..read]);
        }
        writer.finish().await.map_err(std::io::Error::other)?;
        Ok(())
    }
}

/// A file being written: put in place by [`Destination::commit`], deleted by
/// [`PendingFile::discard`].
#[derive(Debug)]
pub struct PendingFile {
    part: PathBuf,
    /// `<id>.<ext>`.
    name: String,
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

    /// Deletes the partial file.
    pub async fn discard(self) {
        let _ = tokio::fs::remove_file(&self.part).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Destination, String> {
        Destination::parse(text, &BTreeMap::new(), Path::new("/spool"))
    }

    #[test]
    fn destinations_parse() {
        assert_eq!(
            parse("data/exports"),
            Ok(Destination::Local("data/exports".into()))
        );
        assert_eq!(
            parse("file:///srv/exports"),
            Ok(Destination::Local("/srv/exports".into()))
        );
        let Ok(Destination::Bucket(b)) = parse("s3://bucket/some/prefix") else {
            panic!("an s3 bucket");
        };
        assert_eq!(b.base, "s3://bucket");
        assert_eq!(b.key("x.csv").as_ref(), "some/prefix/x.csv");
        assert_eq!(
            b.key_of("s3://bucket/some/prefix/x.csv").unwrap().as_ref(),
            "some/prefix/x.csv"
        );
        assert!(b.key_of("s3://other/x.csv").is_err());
        assert!(parse("gs://bucket").is_ok());
        assert!(parse("ftp://host/x").unwrap_err().contains("ftp://"));
        assert!(parse("s3://").unwrap_err().contains("no bucket"));
        assert!(parse(" ").is_err());
        let mut options = BTreeMap::new();
        options.insert("no_such_key".to_owned(), "1".to_owned());
        assert!(
            Destination::parse("s3://b", &options, Path::new("/spool"))
                .unwrap_err()
                .contains("no_such_key")
        );
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
        let labels = FileLabels {
            content_type: "text/csv",
            file_name: "x.csv",
        };
        let location = dest.commit(pending, labels).await.unwrap();
        assert_eq!(std::fs::read(&location).unwrap(), b"a,b\r\n");
        assert_eq!(
            dest.open(&location, Duration::from_secs(1)).await.unwrap(),
            Stored::Local(location.clone().into())
        );
        dest.delete(&location).await.unwrap();
        dest.delete(&location).await.unwrap();
        assert!(!dir.path().join("job.csv").exists());

        let pending = dest.create("gone", "csv").await.unwrap();
        pending.discard().await;
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
