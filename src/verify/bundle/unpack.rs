//! Unpacking a bundle, bounded: only regular files and directories under
//! the bundle's top directory, no more than [`MAX_UNPACKED`] bytes once
//! decompressed and [`MAX_ENTRIES`] entries. A symlink, a device, a hard
//! link or a decompression bomb is refused with a clear message before
//! anything is written, with memory bounded by one read buffer. A refusal
//! is a failed verdict (the bundle was tampered with); a file that is no
//! bundle at all is a usage error.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::anyhow;

use super::BundleError;

use crate::sample::ROOT;

/// The most a bundle may decompress to (tar headers included).
pub const MAX_UNPACKED: u64 = 4 << 30;
/// The most entries a bundle may hold.
pub const MAX_ENTRIES: u64 = 4_000_000;
/// The most a tar extension entry (a long name, PAX attributes) may hold:
/// the tar reader keeps it in memory.
const MAX_EXTENSION: u64 = 64 << 10;

/// Unpacks a bundle into `dir`; returns the bundle's root directory.
pub fn unpack(bundle: &Path, dir: &Path) -> Result<PathBuf, BundleError> {
    unpack_bounded(bundle, dir, MAX_UNPACKED)
}

/// [`unpack`] with a bound of `limit` decompressed bytes.
pub(crate) fn unpack_bounded(
    bundle: &Path,
    dir: &Path,
    limit: u64,
) -> Result<PathBuf, BundleError> {
    let name = bundle.display();
    let refuse = |msg: String| BundleError::Failed(anyhow!(msg));
    let open = || {
        let file = std::fs::File::open(bundle).map_err(|e| {
            BundleError::NotABundle(anyhow::Error::new(e).context(format!("cannot open {name}")))
        })?;
        Ok::<_, BundleError>(Bounded {
            inner: flate2::read::GzDecoder::new(file),
            left: limit,
        })
    };
    // First the shape of every entry, reading through the data without
    // keeping it (raw: long names are entries of their own here, not read
    // into memory): nothing is written unless the whole bundle is sound.
    let mut archive = tar::Archive::new(open()?);
    let mut count = 0u64;
    let mut total = 0u64;
    let read_err = |e: std::io::Error| match too_big(&e, limit) {
        Some(refusal) => BundleError::Failed(refusal),
        None => BundleError::NotABundle(
            anyhow::Error::new(e).context(format!("{name} is not a readable .tar.gz bundle")),
        ),
    };
    for entry in archive.entries().map_err(read_err)?.raw(true) {
        let mut entry = entry.map_err(read_err)?;
        count += 1;
        if count > MAX_ENTRIES {
            return Err(refuse(format!(
                "{name} holds more than {MAX_ENTRIES} entries: refused"
            )));
        }
        let kind = entry.header().entry_type();
        let size = entry.header().size().map_err(read_err)?;
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let extension = kind.is_gnu_longname()
            || kind.is_gnu_longlink()
            || kind.is_pax_local_extensions()
            || kind.is_pax_global_extensions();
        if extension && size > MAX_EXTENSION {
            return Err(refuse(format!(
                "{name}: a tar extension entry of {size} bytes: refused (a bundle never needs more than {MAX_EXTENSION})"
            )));
        }
        if !extension && !kind.is_file() && !kind.is_dir() {
            return Err(refuse(format!(
                "{name}: `{path}` is a {}, not a regular file: refused (a bundle holds regular files only)",
                kind_name(kind)
            )));
        }
        total = total.saturating_add(size);
        if total > limit {
            return Err(refuse(format!(
                "{name} unpacks to more than {limit} bytes (`{path}` alone claims {size}): refused, as a decompression bomb would be"
            )));
        }
        std::io::copy(&mut entry, &mut std::io::sink()).map_err(read_err)?;
    }
    drop(archive);
    // Then the files, each confined to `dir` (tar rejects `..` and
    // absolute paths) and under the bundle's top directory.
    let mut archive = tar::Archive::new(open()?);
    for entry in archive.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        let path = entry.path().map_err(read_err)?.into_owned();
        if !path.strip_prefix(".").unwrap_or(&path).starts_with(ROOT) {
            return Err(BundleError::NotABundle(anyhow!(
                "{name} is not an Exhibit sample bundle: `{}` lies outside {ROOT}/",
                path.display()
            )));
        }
        if !entry.unpack_in(dir).map_err(read_err)? {
            return Err(refuse(format!(
                "{name}: `{}` would unpack outside the bundle: refused",
                path.display()
            )));
        }
    }
    let root = dir.join(ROOT);
    if !root.join("sample.json").is_file() {
        return Err(BundleError::NotABundle(anyhow!(
            "{name} is not an Exhibit sample bundle (no {ROOT}/sample.json)"
        )));
    }
    Ok(root)
}

fn kind_name(kind: tar::EntryType) -> &'static str {
    match kind {
        tar::EntryType::Symlink => "symbolic link",
        tar::EntryType::Link => "hard link",
        tar::EntryType::Char => "character device",
        tar::EntryType::Block => "block device",
        tar::EntryType::Fifo => "FIFO",
        _ => "special entry",
    }
}

/// The marker [`Bounded`] puts in the error it returns past its bound.
const TOO_BIG: &str = "decompresses to more than the bound";

fn too_big(e: &std::io::Error, limit: u64) -> Option<anyhow::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.to_string().contains(TOO_BIG) {
            return Some(anyhow::anyhow!(
                "the bundle decompresses to more than {limit} bytes: refused, as a decompression bomb would be"
            ));
        }
        cur = err.source();
    }
    None
}

/// A reader that fails once more than `left` bytes have come through.
struct Bounded<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            return Err(std::io::Error::other(TOO_BIG));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    /// A .tar.gz at `path` whose entries `add` appends.
    fn tarball(path: &Path, add: impl FnOnce(&mut tar::Builder<Vec<u8>>)) {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, format!("{ROOT}/sample.json"), &b"{}"[..])
            .unwrap();
        add(&mut b);
        let tar = b.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(path).unwrap(),
            flate2::Compression::fast(),
        );
        gz.write_all(&tar).unwrap();
        gz.finish().unwrap();
    }

    fn refusal(r: Result<PathBuf, BundleError>) -> String {
        match r {
            Err(BundleError::Failed(e)) => format!("{e:#}"),
            other => panic!("not refused as a failure: {other:?}"),
        }
    }

    #[test]
    fn a_symlink_or_device_entry_is_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.tar.gz");
        tarball(&path, |b| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, format!("{ROOT}/blobs/x"), "/dev/zero")
                .unwrap();
        });
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let e = refusal(unpack(&path, &out));
        assert!(
            e.contains("`exhibit-sample/blobs/x` is a symbolic link, not a regular file: refused"),
            "{e}"
        );
        assert_eq!(
            std::fs::read_dir(&out).unwrap().count(),
            0,
            "nothing written"
        );

        tarball(&path, |b| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Char);
            h.set_size(0);
            h.set_cksum();
            b.append_data(&mut h, format!("{ROOT}/zero"), &[][..])
                .unwrap();
        });
        let e = refusal(unpack(&path, &out));
        assert!(e.contains("is a character device"), "{e}");
    }

    #[test]
    fn a_decompression_bomb_is_refused_with_memory_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        // A header that claims a terabyte, followed by far less.
        let path = dir.path().join("claims.tar.gz");
        tarball(&path, |b| {
            let mut h = tar::Header::new_gnu();
            h.set_size(1 << 40);
            h.set_mode(0o644);
            h.set_path(format!("{ROOT}/blobs/bomb")).unwrap();
            h.set_cksum();
            b.get_mut().extend_from_slice(h.as_bytes());
            b.get_mut().extend(std::iter::repeat_n(0u8, 1 << 20));
        });
        let e = refusal(unpack(&path, &out));
        assert!(e.contains("claims 1099511627776): refused"), "{e}");
        // Honest headers, but more than the bound in all.
        let path = dir.path().join("big.tar.gz");
        tarball(&path, |b| {
            for i in 0..4 {
                let mut h = tar::Header::new_gnu();
                h.set_size(1 << 20);
                h.set_mode(0o644);
                h.set_cksum();
                b.append_data(
                    &mut h,
                    format!("{ROOT}/f{i}"),
                    std::io::repeat(0).take(1 << 20),
                )
                .unwrap();
            }
        });
        let e = refusal(unpack_bounded(&path, &out, 3 << 20));
        assert!(e.contains("unpacks to more than 3145728 bytes"), "{e}");
        assert!(unpack_bounded(&path, &out, 5 << 20).is_ok());
    }
}
