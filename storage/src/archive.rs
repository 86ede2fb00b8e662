//! Unpacking `.tar.gz`, `.tgz`, `.tar` and `.zip` archives, refusing entries that would land
//! outside the destination. Only regular files and folders are written; links are skipped.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Component, Path, PathBuf};

/// The archive formats this crate unpacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    TarGz,
    Tar,
    Zip,
}

/// The archive format a file name announces, if any.
pub(crate) fn kind(name: &str) -> Option<Kind> {
    let name = name.to_ascii_lowercase();
    if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        Some(Kind::TarGz)
    } else if name.ends_with(".tar") {
        Some(Kind::Tar)
    } else if name.ends_with(".zip") {
        Some(Kind::Zip)
    } else {
        None
    }
}

/// Unpacks `archive` into the existing folder `dest` (blocking). Returns the number of files
/// written; the error is a one-line description.
pub(crate) fn unpack(archive: &Path, kind: Kind, dest: &Path) -> Result<u64, String> {
    let file = File::open(archive).map_err(|e| format!("cannot open: {e}"))?;
    let reader = BufReader::new(file);
    let files = match kind {
        Kind::TarGz => unpack_tar(flate2::read::GzDecoder::new(reader), dest)?,
        Kind::Tar => unpack_tar(reader, dest)?,
        Kind::Zip => unpack_zip(archive, dest)?,
    };
    if files == 0 {
        return Err("holds no file".into());
    }
    Ok(files)
}

/// The entry's path made relative and checked: only normal components (and `.`), nothing
/// absolute, no `..`.
fn safe_relative(name: &Path) -> Result<PathBuf, String> {
    let mut out = PathBuf::new();
    for component in name.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "entry {:?} would escape the destination folder",
                    name.display().to_string()
                ));
            }
        }
    }
    Ok(out)
}

fn write_file(dest: &Path, relative: &Path, mut from: impl Read) -> Result<(), String> {
    let target = dest.join(relative);
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let mut file =
        File::create(&target).map_err(|e| format!("cannot create {}: {e}", target.display()))?;
    std::io::copy(&mut from, &mut file)
        .map_err(|e| format!("cannot unpack {}: {e}", relative.display()))?;
    Ok(())
}

fn unpack_tar(reader: impl Read, dest: &Path) -> Result<u64, String> {
    use tar::EntryType;
    let mut archive = tar::Archive::new(reader);
    let mut files = 0;
    let entries = archive.entries().map_err(|e| format!("unreadable: {e}"))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("unreadable: {e}"))?;
        let name = entry
            .path()
            .map_err(|e| format!("bad entry name: {e}"))?
            .into_owned();
        let relative = safe_relative(&name)?;
        if relative.as_os_str().is_empty() {
            continue;
        }
        match entry.header().entry_type() {
            EntryType::Regular | EntryType::Continuous => {
                write_file(dest, &relative, entry)?;
                files += 1;
            }
            EntryType::Directory => {
                std::fs::create_dir_all(dest.join(&relative))
                    .map_err(|e| format!("cannot create {}: {e}", relative.display()))?;
            }
            other => {
                tracing::warn!(entry = %name.display(), kind = ?other, "skipping archive entry that is not a file or folder");
            }
        }
    }
    Ok(files)
}

fn unpack_zip(path: &Path, dest: &Path) -> Result<u64, String> {
    let file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let mut archive =
        zip::ZipArchive::new(BufReader::new(file)).map_err(|e| format!("unreadable: {e}"))?;
    let mut files = 0;
    for i in 0..archive.len() {
        let entry = archive
            .by_index(i)
            .map_err(|e| format!("unreadable: {e}"))?;
        let raw = entry.name().to_string();
        // Check the raw name ourselves (a clear message), then zip's own check.
        let relative = safe_relative(Path::new(&raw))?;
        if entry.enclosed_name().is_none() {
            return Err(format!("entry {raw:?} would escape the destination folder"));
        }
        if relative.as_os_str().is_empty() {
            continue;
        }
        if entry.is_dir() {
            std::fs::create_dir_all(dest.join(&relative))
                .map_err(|e| format!("cannot create {}: {e}", relative.display()))?;
        } else if entry.is_symlink() {
            tracing::warn!(entry = %raw, "skipping symbolic link in archive");
        } else {
            write_file(dest, &relative, entry)?;
            files += 1;
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_announce_the_format() {
        assert_eq!(kind("m.tar.gz"), Some(Kind::TarGz));
        assert_eq!(kind("M.TGZ"), Some(Kind::TarGz));
        assert_eq!(kind("m.tar"), Some(Kind::Tar));
        assert_eq!(kind("m.zip"), Some(Kind::Zip));
        assert_eq!(kind("model.onnx"), None);
    }

    #[test]
    fn parent_and_absolute_entries_are_refused() {
        assert!(safe_relative(Path::new("../evil")).is_err());
        assert!(safe_relative(Path::new("a/../../evil")).is_err());
        assert!(safe_relative(Path::new("/etc/passwd")).is_err());
        assert_eq!(
            safe_relative(Path::new("./a/b.onnx")).unwrap(),
            PathBuf::from("a/b.onnx")
        );
    }

    #[test]
    fn a_tar_with_a_parent_entry_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("evil.tar");
        // tar's builder refuses `..`, so write the raw header name by hand.
        let mut header = tar::Header::new_gnu();
        header.as_gnu_mut().unwrap().name[..9].copy_from_slice(b"../escape");
        header.set_size(1);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        let mut builder = tar::Builder::new(File::create(&archive).unwrap());
        builder.append(&header, &b"x"[..]).unwrap();
        builder.finish().unwrap();
        drop(builder);
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let err = unpack(&archive, Kind::Tar, &out).unwrap_err();
        assert!(err.contains("escape"), "{err}");
        assert!(!dir.path().join("escape").exists());
    }
}
