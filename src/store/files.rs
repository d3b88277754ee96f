//! Job files, content-addressed: a file is stored once under the SHA-256 of its bytes, in a
//! local folder (the default: `{data_dir}/files`) or an S3 bucket (AWS, MinIO, any S3 API) by
//! configuration. Files move in bounded chunks both ways: never held whole in memory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How much of a file is read or sent at a time.
const CHUNK: usize = 256 * 1024;
/// Parts of an S3 multipart upload (S3's minimum part is 5 MiB); also the most an upload holds.
const PART: usize = 5 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("files url {0:?}: use a folder path, file:///folder or s3://bucket[/prefix]")]
    BadUrl(String),
    #[error("file storage: {0}")]
    Storage(#[from] object_store::Error),
    #[error("file storage: {0}")]
    Io(#[from] std::io::Error),
}

/// Where job files live.
#[derive(Clone, Debug)]
pub struct FileStore {
    objects: Arc<dyn ObjectStore>,
    /// What the configuration said, for the log.
    pub location: String,
}

impl FileStore {
    /// `url`: a folder (`/var/lib/makrcave/files`, `file:///...`) or `s3://bucket[/prefix]`,
    /// S3 settings from the usual `AWS_*` environment variables (`AWS_ENDPOINT` for MinIO,
    /// `AWS_ALLOW_HTTP=true` for a plain-HTTP endpoint).
    pub fn open(url: &str) -> Result<FileStore, FilesError> {
        let objects: Arc<dyn ObjectStore> = if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(FilesError::BadUrl(url.to_string()));
            }
            let s3 = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket).build()?;
            if prefix.trim_matches('/').is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(object_store::prefix::PrefixStore::new(s3, prefix.trim_matches('/')))
            }
        } else {
            let folder = PathBuf::from(url.strip_prefix("file://").unwrap_or(url));
            if folder.as_os_str().is_empty() || url.contains("://") && !url.starts_with("file://") {
                return Err(FilesError::BadUrl(url.to_string()));
            }
            std::fs::create_dir_all(&folder)?;
            Arc::new(object_store::local::LocalFileSystem::new_with_prefix(&folder)?)
        };
        Ok(FileStore { objects, location: url.to_string() })
    }

    fn key(sha256: &str) -> ObjectPath {
        // Two levels of fan-out keep a local folder's directories small.
        ObjectPath::from(format!("jobs/{}/{}", &sha256[..2.min(sha256.len())], sha256))
    }

    /// Whether a file with these bytes is stored already.
    pub async fn contains(&self, sha256: &str) -> Result<bool, FilesError> {
        match self.objects.head(&Self::key(sha256)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Stores the local file at `path` under `sha256`, unless a file with these bytes is there
    /// already.
    pub async fn put_file(&self, sha256: &str, path: &Path) -> Result<(), FilesError> {
        if self.contains(sha256).await? {
            return Ok(());
        }
        let mut source = tokio::fs::File::open(path).await?;
        let upload = self.objects.put_multipart(&Self::key(sha256)).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
        let mut buffer = vec![0u8; CHUNK];
        loop {
            let read = source.read(&mut buffer).await?;
            if read == 0 {
                break;
            }
            // At most two parts in flight: memory stays bounded whatever the file's size.
            writer.wait_for_capacity(2).await?;
            writer.write(&buffer[..read]);
        }
        writer.finish().await?;
        Ok(())
    }

    /// The size in bytes of a stored file.
    pub async fn size(&self, sha256: &str) -> Result<u64, FilesError> {
        Ok(self.objects.head(&Self::key(sha256)).await?.size)
    }

    /// A stored file's size and its bytes as a stream of chunks (to send it over HTTP).
    pub async fn read(
        &self,
        sha256: &str,
    ) -> Result<(u64, futures_util::stream::BoxStream<'static, Result<bytes::Bytes, FilesError>>), FilesError> {
        let found = self.objects.get(&Self::key(sha256)).await?;
        let size = found.meta.size;
        Ok((size, found.into_stream().map(|chunk| chunk.map_err(FilesError::from)).boxed()))
    }

    /// Copies the stored file to `destination` on the local disk (the machine adapters send
    /// files from there), chunk by chunk.
    pub async fn copy_to(&self, sha256: &str, destination: &Path) -> Result<(), FilesError> {
        if let Some(parent) = destination.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let mut stream = self.objects.get(&Self::key(sha256)).await?.into_stream();
        let mut file = tokio::fs::File::create(destination).await?;
        while let Some(chunk) = stream.next().await {
            file.write_all(&chunk?).await?;
        }
        file.flush().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_file_goes_in_and_comes_out_the_same() {
        let folder = tempfile::tempdir().unwrap();
        let files = FileStore::open(folder.path().join("store").to_str().unwrap()).unwrap();
        let source = folder.path().join("upload");
        let bytes: Vec<u8> = (0..(PART + 12_345)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&source, &bytes).unwrap();
        let sha = "ab".repeat(32);
        assert!(!files.contains(&sha).await.unwrap());
        files.put_file(&sha, &source).await.unwrap();
        assert!(files.contains(&sha).await.unwrap());
        files.put_file(&sha, &source).await.unwrap();
        let copy = folder.path().join("out/copy.gcode");
        files.copy_to(&sha, &copy).await.unwrap();
        assert_eq!(std::fs::read(&copy).unwrap(), bytes);
    }

    #[test]
    fn urls() {
        assert!(matches!(FileStore::open("ftp://host/x"), Err(FilesError::BadUrl(_))));
        assert!(matches!(FileStore::open("s3://"), Err(FilesError::BadUrl(_))));
        assert!(matches!(FileStore::open(""), Err(FilesError::BadUrl(_))));
    }
}
