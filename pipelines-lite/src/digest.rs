//! Content digests: SHA-256 of a file, or of a folder's sorted relative paths and file digests.

use std::io;
use std::path::Path;

use sha2::{Digest, Sha256};

/// `sha256:<hex>` of the file or folder at `path`.
pub fn content_digest(path: &Path) -> io::Result<String> {
    let mut hasher = Sha256::new();
    add(path, Path::new(""), &mut hasher)?;
    Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
}

fn add(path: &Path, relative: &Path, hasher: &mut Sha256) -> io::Result<()> {
    let meta = std::fs::metadata(path)?;
    if meta.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)?.collect::<io::Result<_>>()?;
        entries.sort_by_key(|e| e.file_name());
        hasher.update(b"dir\0");
        for e in entries {
            add(&e.path(), &relative.join(e.file_name()), hasher)?;
        }
    } else {
        hasher.update(relative.to_string_lossy().as_bytes());
        hasher.update(b"\0");
        let mut file = std::fs::File::open(path)?;
        let mut file_hasher = Sha256::new();
        io::copy(&mut file, &mut file_hasher)?;
        hasher.update(file_hasher.finalize());
    }
    Ok(())
}

/// SHA-256 hex of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Copies a file or folder (copies, not links: a step that edits its input in place must not
/// change a cached result).
pub fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    if std::fs::metadata(from)?.is_dir() {
        std::fs::create_dir_all(to)?;
        for e in std::fs::read_dir(from)? {
            let e = e?;
            copy_tree(&e.path(), &to.join(e.file_name()))?;
        }
        Ok(())
    } else {
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(from, to).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_changed_byte_changes_the_digest_of_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("d/a"), b"hello").unwrap();
        let before = content_digest(&dir.path().join("d")).unwrap();
        assert_eq!(before, content_digest(&dir.path().join("d")).unwrap());
        std::fs::write(dir.path().join("d/a"), b"hellp").unwrap();
        assert_ne!(before, content_digest(&dir.path().join("d")).unwrap());
    }
}
