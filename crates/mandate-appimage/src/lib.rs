//! The runtime of Mandate's AppImage (docs/release.md, "The AppImage").
//!
//! An AppImage of type 2 is a small program, this one, with a SquashFS
//! image appended: the image starts where the ELF file ends (the end of
//! its section header table), and bytes 8 to 10 of the file are
//! `AI\x02`, which tells AppImage tools what they hold. The image is an
//! AppDir: `AppRun`, the `.desktop` entry, the icon, and the app with the
//! libraries it needs under `usr/`.
//!
//! The reference runtime mounts the image with FUSE. This one does what
//! that runtime does with `--appimage-extract-and-run`, every time: it
//! unpacks the image once per version into the user's cache
//! (`$XDG_CACHE_HOME/mandate/appimage/KEY`, private to the user) and runs
//! `AppRun` from there. So it needs neither FUSE nor `libfuse2`, which
//! many systems no longer ship, at the price of the unpacked copy on
//! disk. A version's copy is made in a directory of its own and renamed
//! into place only when whole, so an interrupted start leaves nothing
//! that a later one would run.

use std::collections::HashSet;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use backhand::{FilesystemReader, InnerNode};
use sha2::{Digest as _, Sha256};

/// What bytes 8 to 10 of an AppImage of type 2 hold.
pub const MAGIC: [u8; 3] = *b"AI\x02";

/// Another version's unpacked copy is removed once it has not been
/// started for this long.
pub const KEEP_UNUSED: Duration = Duration::from_secs(7 * 24 * 3600);

/// Why the runtime could not go on: a sentence for the user, and the exit
/// status.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub status: u8,
}

impl Failure {
    fn new(status: u8, message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            status,
        }
    }

    /// The file is not an AppImage this runtime can read.
    pub fn image(message: impl Into<String>) -> Failure {
        Failure::new(65, message)
    }

    /// Reading or writing a file failed.
    pub fn io(what: impl std::fmt::Display, error: io::Error) -> Failure {
        Failure::new(74, format!("{what}: {error}"))
    }

    /// The command line asks for what the runtime does not do.
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure::new(2, message)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

pub type Result<T> = std::result::Result<T, Failure>;

/// Where the SquashFS image starts in `file`: the end of the ELF file
/// (its section header table, which linkers write last). Checks the
/// AppImage magic on the way.
pub fn image_offset(file: &mut File) -> Result<u64> {
    let mut header = [0u8; 64];
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_exact(&mut header))
        .map_err(|_| Failure::image("the file is too short to be an AppImage"))?;
    if &header[..4] != b"\x7fELF" {
        return Err(Failure::image("the file is not an ELF executable"));
    }
    if header[8..11] != MAGIC {
        return Err(Failure::image(
            "the file is not an AppImage of type 2 (bytes 8 to 10 are not AI\\x02)",
        ));
    }
    if header[5] != 1 {
        return Err(Failure::image("the ELF file is not little-endian"));
    }
    let u16_at = |at: usize| u64::from(u16::from_le_bytes([header[at], header[at + 1]]));
    let (shoff, shentsize, shnum) = match header[4] {
        // ELFCLASS32: e_shoff at 0x20 (4 bytes), e_shentsize 0x2e, e_shnum 0x30.
        1 => {
            let shoff =
                u32::from_le_bytes([header[0x20], header[0x21], header[0x22], header[0x23]]);
            (u64::from(shoff), u16_at(0x2e), u16_at(0x30))
        }
        // ELFCLASS64: e_shoff at 0x28 (8 bytes), e_shentsize 0x3a, e_shnum 0x3c.
        2 => {
            let mut shoff = [0u8; 8];
            shoff.copy_from_slice(&header[0x28..0x30]);
            (u64::from_le_bytes(shoff), u16_at(0x3a), u16_at(0x3c))
        }
        _ => {
            return Err(Failure::image(
                "the ELF file's class is neither 32 nor 64 bits",
            ));
        }
    };
    let end = shoff
        .checked_add(shentsize * shnum)
        .ok_or_else(|| Failure::image("the ELF file's section table is out of range"))?;
    let length = file
        .metadata()
        .map_err(|e| Failure::io("cannot read the AppImage's size", e))?
        .len();
    if end == 0 || end >= length {
        return Err(Failure::image(
            "the AppImage holds no image after its runtime",
        ));
    }
    Ok(end)
}

/// The name of a version's unpacked copy: 32 hex digits of the SHA-256 of
/// the image's superblock (its size, its tables' places, the time it was
/// made), the image's length, and the AppImage file's modification time.
/// A new download or build of the file gets a new copy.
pub fn image_key(file: &mut File, offset: u64) -> Result<String> {
    let metadata = file
        .metadata()
        .map_err(|e| Failure::io("cannot read the AppImage's metadata", e))?;
    let superblock = superblock(file, offset, metadata.len())?;
    let mut hash = Sha256::new();
    hash.update(superblock);
    hash.update((metadata.len() - offset).to_le_bytes());
    hash.update(metadata.mtime().to_le_bytes());
    hash.update(metadata.mtime_nsec().to_le_bytes());
    Ok(hash
        .finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The image's superblock, checked: SquashFS 4.0, and all of the bytes it
/// says it uses there in the file, `length` bytes long. (A reader may
/// otherwise take a cut image's missing tables for empty ones.)
pub fn superblock(file: &mut File, offset: u64, length: u64) -> Result<[u8; 96]> {
    let mut superblock = [0u8; 96];
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.read_exact(&mut superblock))
        .map_err(|_| Failure::image("the AppImage's image is cut short"))?;
    if &superblock[..4] != b"hsqs" {
        return Err(Failure::image(
            "the AppImage's image is not a SquashFS file system",
        ));
    }
    if superblock[28..32] != [4, 0, 0, 0] {
        return Err(Failure::image("the AppImage's image is not SquashFS 4.0"));
    }
    let mut used = [0u8; 8];
    used.copy_from_slice(&superblock[40..48]);
    if u64::from_le_bytes(used) > length.saturating_sub(offset) {
        return Err(Failure::image("the AppImage's image is cut short"));
    }
    Ok(superblock)
}

/// Unpacks the image at `offset` of `appimage` into `dest`, which must
/// not exist. Only directories, regular files and symbolic links are
/// made; a path outside the image's root, a device, a pipe or a socket
/// refuses the whole image. Modes keep their permission bits only (no
/// set-user-ID, set-group-ID or sticky bit). On failure `dest` is
/// removed.
pub fn unpack(appimage: &Path, offset: u64, dest: &Path) -> Result<()> {
    let result = unpack_into(appimage, offset, dest);
    if result.is_err() {
        let _ = fs::remove_dir_all(dest);
    }
    result
}

fn unpack_into(appimage: &Path, offset: u64, dest: &Path) -> Result<()> {
    let mut file = File::open(appimage)
        .map_err(|e| Failure::io(format!("cannot open {}", appimage.display()), e))?;
    let length = file
        .metadata()
        .map_err(|e| Failure::io("cannot read the AppImage's size", e))?
        .len();
    superblock(&mut file, offset, length)?;
    let image = FilesystemReader::from_reader_with_offset(BufReader::new(file), offset)
        .map_err(|e| Failure::image(format!("the AppImage's image cannot be read: {e}")))?;
    DirBuilder::new()
        .mode(0o700)
        .create(dest)
        .map_err(|e| Failure::io(format!("cannot make {}", dest.display()), e))?;
    // The directories made so far: a node goes only into one of them, so
    // nothing is ever written through a link.
    let mut made: HashSet<PathBuf> = HashSet::from([PathBuf::new()]);
    for node in image.files() {
        let relative = inside(&node.fullpath)?;
        if relative.as_os_str().is_empty() {
            continue; // the root: `dest` itself
        }
        let parent = relative.parent().unwrap_or(Path::new(""));
        if !made.contains(parent) {
            return Err(Failure::image(format!(
                "the image puts {} inside something that is not one of its directories",
                node.fullpath.display()
            )));
        }
        let path = dest.join(&relative);
        let mode = u32::from(node.header.permissions) & 0o777;
        let failed = |e| Failure::io(format!("cannot unpack {}", node.fullpath.display()), e);
        match &node.inner {
            InnerNode::Dir(_) => {
                // The owner keeps the right to write and enter it, so that
                // its content can be unpacked and later removed.
                DirBuilder::new()
                    .mode(mode | 0o700)
                    .create(&path)
                    .map_err(failed)?;
                made.insert(relative);
            }
            InnerNode::File(entry) => {
                let mut reader = image
                    .file(entry)
                    .reader_checked()
                    .map_err(|e| Failure::image(format!("{}: {e}", node.fullpath.display())))?;
                // `create_new` (O_CREAT | O_EXCL) fails on anything already
                // there, a link included, rather than follow it.
                let out = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(mode)
                    .open(&path)
                    .map_err(failed)?;
                let mut out = BufWriter::with_capacity(1 << 17, out);
                io::copy(&mut reader, &mut out)
                    .and_then(|_| out.flush())
                    .map_err(|e| {
                        if e.kind() == io::ErrorKind::Other
                            || e.kind() == io::ErrorKind::InvalidData
                        {
                            Failure::image(format!(
                                "{} cannot be read: {e}",
                                node.fullpath.display()
                            ))
                        } else {
                            failed(e)
                        }
                    })?;
            }
            InnerNode::Symlink(link) => {
                std::os::unix::fs::symlink(&link.link, &path).map_err(failed)?;
            }
            InnerNode::CharacterDevice(_)
            | InnerNode::BlockDevice(_)
            | InnerNode::NamedPipe
            | InnerNode::Socket => {
                return Err(Failure::image(format!(
                    "the image holds {}, which is not a file, a directory or a link",
                    node.fullpath.display()
                )));
            }
        }
    }
    if !dest.join("AppRun").is_file() {
        return Err(Failure::image("the image holds no AppRun"));
    }
    Ok(())
}

/// A node's path, relative to the image's root: only plain names, no
/// `..` and no `.`.
fn inside(path: &Path) -> Result<PathBuf> {
    let mut relative = PathBuf::new();
    for component in path.components() {
        match component {
            Component::RootDir => {}
            Component::Normal(name) => relative.push(name),
            _ => {
                return Err(Failure::image(format!(
                    "the image names a path outside its root: {}",
                    path.display()
                )));
            }
        }
    }
    Ok(relative)
}

/// The directory of the unpacked copies: `$XDG_CACHE_HOME/mandate/appimage`
/// (`~/.cache/...` when that is unset or not absolute), made private to
/// the user. It must be a directory the user owns, not a link, that
/// nobody else may write to.
pub fn cache_root() -> Result<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .map(|home| home.join(".cache"))
        })
        .ok_or_else(|| {
            Failure::usage("neither XDG_CACHE_HOME nor HOME names a directory to unpack into")
        })?;
    let root = base.join("mandate").join("appimage");
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&root)
        .map_err(|e| Failure::io(format!("cannot make {}", root.display()), e))?;
    let metadata = fs::symlink_metadata(&root)
        .map_err(|e| Failure::io(format!("cannot read {}", root.display()), e))?;
    let own = metadata.uid() == effective_uid()?;
    if !metadata.is_dir() || !own || metadata.mode() & 0o022 != 0 {
        return Err(Failure::usage(format!(
            "{} must be a directory of yours that nobody else may write to",
            root.display()
        )));
    }
    Ok(root)
}

/// The user the runtime runs as, from `/proc/self/status` (no `libc`
/// needed for one number).
fn effective_uid() -> Result<u32> {
    let status = fs::read_to_string("/proc/self/status")
        .map_err(|e| Failure::io("cannot read /proc/self/status", e))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|euid| euid.parse().ok())
        .ok_or_else(|| Failure::new(74, "/proc/self/status names no user"))
}

/// The unpacked copy of the image at `offset` of `appimage`, made if it
/// is not there yet, in `root`: unpacked beside it under a name of its
/// own, then renamed into place whole. Another start racing this one
/// keeps whichever copy was renamed first. Marks the copy as used now.
pub fn prepared(appimage: &Path, offset: u64, key: &str, root: &Path) -> Result<PathBuf> {
    let dir = root.join(key);
    if !dir.join("AppRun").is_file() {
        // A copy is renamed into place whole, so one without its AppRun
        // was damaged since (a file removed from the cache): made again.
        if dir.symlink_metadata().is_ok() {
            let _ = fs::remove_dir_all(&dir);
        }
        let partial = root.join(format!(".{key}.{}", std::process::id()));
        let _ = fs::remove_dir_all(&partial);
        unpack(appimage, offset, &partial)?;
        if let Err(error) = fs::rename(&partial, &dir) {
            let _ = fs::remove_dir_all(&partial);
            if !dir.join("AppRun").is_file() {
                return Err(Failure::io(
                    format!("cannot move the copy to {}", dir.display()),
                    error,
                ));
            }
        }
    }
    if let Ok(handle) = File::open(&dir) {
        let _ = handle.set_modified(SystemTime::now());
    }
    Ok(dir)
}

/// Removes other versions' copies not started for `KEEP_UNUSED`, and
/// partial copies whose process is gone. What cannot be removed stays.
pub fn prune(root: &Path, keep: &str) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let stale = if let Some(rest) = name.strip_prefix('.') {
            // `.KEY.PID`: a copy being made, or left by a start that died.
            rest.rsplit_once('.')
                .and_then(|(_, pid)| pid.parse::<u32>().ok())
                .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
        } else {
            is_key(name)
                && name != keep
                && entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|used| used.elapsed().ok())
                    .is_some_and(|idle| idle > KEEP_UNUSED)
        };
        if stale {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

fn is_key(name: &str) -> bool {
    name.len() == 32
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_takes_plain_names_only() {
        assert_eq!(
            inside(Path::new("/usr/bin/x")).ok(),
            Some(PathBuf::from("usr/bin/x"))
        );
        assert_eq!(inside(Path::new("/")).ok(), Some(PathBuf::new()));
        for bad in ["/usr/../etc", "./x", "../x"] {
            let error = inside(Path::new(bad)).err().map(|f| f.status);
            assert_eq!(error, Some(65), "{bad}");
        }
    }

    #[test]
    fn keys_are_32_lowercase_hex_digits() {
        assert!(is_key("0123456789abcdef0123456789abcdef"));
        assert!(!is_key("0123456789ABCDEF0123456789abcdef"));
        assert!(!is_key("0123456789abcdef"));
        assert!(!is_key(".0123456789abcdef0123456789abcde"));
    }
}
