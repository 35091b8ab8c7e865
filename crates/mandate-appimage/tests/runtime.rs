//! The runtime, run as an AppImage: the built binary with the magic
//! written in and a SquashFS image appended, as scripts/appimage.sh makes
//! the real one (there with mksquashfs; here with backhand's writer).

use std::fs;
use std::io::Cursor;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use backhand::compression::Compressor;
use backhand::{FilesystemCompressor, FilesystemWriter, NodeHeader};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const RUNTIME: &str = env!("CARGO_BIN_EXE_mandate-appimage-runtime");

const APPRUN: &str = "#!/bin/sh\nprintf '%s\\n' \"$APPIMAGE\" \"$APPDIR\" \"$ARGV0\" \"$OWD\" \"$@\"\ncat \"$APPDIR/usr/share/greeting\"\n";

fn header(mode: u16) -> NodeHeader {
    NodeHeader::new(mode, 0, 0, 0)
}

/// A gzip SquashFS image of what `fill` pushes.
fn image(fill: impl FnOnce(&mut FilesystemWriter)) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let mut fs = FilesystemWriter::default();
    fs.set_compressor(FilesystemCompressor::new(Compressor::Gzip, None)?);
    fill(&mut fs);
    let mut out = Cursor::new(Vec::new());
    fs.write(&mut out)?;
    Ok(out.into_inner())
}

/// An AppDir like the real one, in little: AppRun, a directory, a file
/// with a narrow mode, one with the set-user-ID bit, and a link.
fn appdir(fs: &mut FilesystemWriter) {
    let ok = [
        fs.push_file(
            Cursor::new(APPRUN.as_bytes().to_vec()),
            "AppRun",
            header(0o755),
        ),
        fs.push_dir("usr", header(0o755)),
        fs.push_dir("usr/share", header(0o755)),
        fs.push_file(
            Cursor::new(b"hello from the image\n".to_vec()),
            "usr/share/greeting",
            header(0o640),
        ),
        fs.push_file(
            Cursor::new(b"#!/bin/sh\n".to_vec()),
            "usr/share/setuid",
            header(0o4755),
        ),
        fs.push_symlink("usr/share/greeting", "greeting.txt", header(0o777)),
    ];
    assert!(ok.iter().all(Result::is_ok), "{ok:?}");
}

/// The runtime with `AI\x02` at bytes 8 to 10 and `image` after it.
fn appimage(dir: &Path, image: &[u8]) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let mut bytes = fs::read(RUNTIME)?;
    bytes[8..11].copy_from_slice(b"AI\x02");
    bytes.extend_from_slice(image);
    let path = dir.join("Mandate.AppImage");
    fs::write(&path, bytes)?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

/// Runs `appimage`. A test that has just written its file may meet
/// `ETXTBSY` while another test's thread forks with that file still open
/// for writing (until the child's `exec` closes it): that is retried.
fn run(appimage: &Path, cache: &Path, cwd: &Path, args: &[&str]) -> Result<Output, std::io::Error> {
    let mut tries = 0;
    loop {
        let result = Command::new(appimage)
            .args(args)
            .current_dir(cwd)
            .env("XDG_CACHE_HOME", cache)
            .output();
        match result {
            Err(e) if e.raw_os_error() == Some(26) && tries < 100 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn copies(cache: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(cache.join("mandate/appimage"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn runs_apprun_from_a_private_copy_made_once() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let cache = tmp.path().join("cache");
    let file = appimage(tmp.path(), &image(appdir)?)?;
    let out = run(&file, &cache, tmp.path(), &["one", "two words"])?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let root = cache.join("mandate/appimage");
    assert_eq!(lines[0], file.to_string_lossy(), "APPIMAGE");
    let appdir = PathBuf::from(lines[1]);
    assert_eq!(appdir.parent(), Some(root.as_path()), "APPDIR");
    assert_eq!(lines[3], tmp.path().to_string_lossy(), "OWD");
    assert_eq!(&lines[4..], ["one", "two words", "hello from the image"]);

    assert_eq!(fs::metadata(&root)?.mode() & 0o777, 0o700);
    assert_eq!(
        fs::metadata(appdir.join("usr/share/greeting"))?.mode() & 0o7777,
        0o640
    );
    assert_eq!(
        fs::metadata(appdir.join("usr/share/setuid"))?.mode() & 0o7777,
        0o755,
        "set-user-ID dropped"
    );
    assert_eq!(
        fs::read_link(appdir.join("greeting.txt"))?,
        Path::new("usr/share/greeting")
    );

    // Again: the same copy, not unpacked a second time.
    let inode = fs::metadata(appdir.join("usr/share/greeting"))?.ino();
    let out = run(&file, &cache, tmp.path(), &[])?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().nth(1), Some(lines[1]));
    assert_eq!(
        fs::metadata(appdir.join("usr/share/greeting"))?.ino(),
        inode
    );
    assert_eq!(copies(&cache).len(), 1);

    // A copy damaged since (its AppRun removed) is made again.
    fs::remove_file(appdir.join("AppRun"))?;
    let out = run(&file, &cache, tmp.path(), &[])?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().nth(1), Some(lines[1]));
    assert!(appdir.join("AppRun").is_file());
    assert_eq!(copies(&cache).len(), 1);
    Ok(())
}

#[test]
fn removes_stale_copies_and_keeps_recent_ones() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let cache = tmp.path().join("cache");
    let root = cache.join("mandate/appimage");
    fs::create_dir_all(&root)?;
    fs::set_permissions(&root, fs::Permissions::from_mode(0o700))?;
    let old = "0123456789abcdef0123456789abcdef";
    let recent = "fedcba9876543210fedcba9876543210";
    // A partial copy of a start that died (no process has this PID: the
    // kernel's limit is 4194304).
    let dead = ".00000000000000000000000000000000.4194305";
    for name in [old, recent, dead, "not-a-copy"] {
        fs::create_dir(root.join(name))?;
    }
    let eight_days_ago = SystemTime::now() - Duration::from_secs(8 * 24 * 3600);
    fs::File::open(root.join(old))?.set_modified(eight_days_ago)?;
    fs::File::open(root.join("not-a-copy"))?.set_modified(eight_days_ago)?;

    let file = appimage(tmp.path(), &image(appdir)?)?;
    let out = run(&file, &cache, tmp.path(), &[])?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let key = text(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|d| d.rsplit('/').next().map(str::to_owned));
    let mut kept = vec![
        recent.to_owned(),
        "not-a-copy".to_owned(),
        key.unwrap_or_default(),
    ];
    kept.sort();
    assert_eq!(copies(&cache), kept);
    Ok(())
}

#[test]
fn its_own_options() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let cache = tmp.path().join("cache");
    let file = appimage(tmp.path(), &image(appdir)?)?;
    let runtime_len = fs::metadata(RUNTIME)?.len();

    let out = run(&file, &cache, tmp.path(), &["--appimage-offset"])?;
    assert!(out.status.success());
    assert_eq!(text(&out.stdout).trim(), runtime_len.to_string());

    let out = run(&file, &cache, tmp.path(), &["--appimage-extract"])?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        fs::read_to_string(tmp.path().join("squashfs-root/usr/share/greeting"))?,
        "hello from the image\n"
    );
    let again = run(&file, &cache, tmp.path(), &["--appimage-extract"])?;
    assert_eq!(again.status.code(), Some(2));
    assert!(
        text(&again.stderr).contains("squashfs-root is there already"),
        "{}",
        text(&again.stderr)
    );

    let out = run(&file, &cache, tmp.path(), &["--appimage-help"])?;
    assert!(out.status.success() && text(&out.stdout).contains("--appimage-extract"));
    let out = run(&file, &cache, tmp.path(), &["--appimage-version"])?;
    assert_eq!(text(&out.stdout).trim(), env!("CARGO_PKG_VERSION"));
    let out = run(&file, &cache, tmp.path(), &["--appimage-mount"])?;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown option --appimage-mount"));
    // Only the first argument is the runtime's: later ones go to the app.
    let out = run(&file, &cache, tmp.path(), &["x", "--appimage-offset"])?;
    assert!(out.status.success());
    assert!(
        text(&out.stdout).contains("\nx\n--appimage-offset\n"),
        "{}",
        text(&out.stdout)
    );
    // Nothing was unpacked into the cache for the options alone.
    assert_eq!(copies(&cache).len(), 1, "only the run above");
    Ok(())
}

/// A refused image leaves no copy behind, whole or partial, and says why.
fn refused(file: &Path, cache: &Path, cwd: &Path, status: i32, why: &str) -> TestResult {
    let out = run(file, cache, cwd, &[])?;
    assert_eq!(
        out.status.code(),
        Some(status),
        "{}: {}{}",
        file.display(),
        text(&out.stdout),
        text(&out.stderr)
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("mandate-appimage: ") && stderr.contains(why),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "AppRun did not run");
    assert_eq!(
        copies(cache),
        Vec::<String>::new(),
        "nothing left in the cache"
    );
    Ok(())
}

#[test]
fn refuses_what_it_cannot_run_and_leaves_nothing() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let cache = tmp.path().join("cache");
    let dir = |name: &str| -> Result<PathBuf, std::io::Error> {
        let d = tmp.path().join(name);
        fs::create_dir(&d)?;
        Ok(d)
    };

    let device = image(|fs| {
        appdir(fs);
        assert!(
            fs.push_char_device(0x0501, "usr/tty", header(0o666))
                .is_ok()
        );
    })?;
    refused(
        &appimage(&dir("device")?, &device)?,
        &cache,
        tmp.path(),
        65,
        "not a file, a directory or a link",
    )?;

    let no_apprun = image(|fs| assert!(fs.push_dir("usr", header(0o755)).is_ok()))?;
    refused(
        &appimage(&dir("empty")?, &no_apprun)?,
        &cache,
        tmp.path(),
        65,
        "holds no AppRun",
    )?;

    let whole = image(appdir)?;
    // Cut inside what the superblock says is used (its `bytes_used`, at
    // byte 40), not in the padding after it.
    let mut used = [0u8; 8];
    used.copy_from_slice(&whole[40..48]);
    let cut = usize::try_from(u64::from_le_bytes(used))? / 2;
    refused(
        &appimage(&dir("cut")?, &whole[..cut])?,
        &cache,
        tmp.path(),
        65,
        "cut short",
    )?;
    refused(
        &appimage(&dir("none")?, &[])?,
        &cache,
        tmp.path(),
        65,
        "holds no image",
    )?;
    refused(
        &appimage(&dir("junk")?, &[0x55; 4096])?,
        &cache,
        tmp.path(),
        65,
        "not a SquashFS",
    )?;

    // Without the magic, the runtime is no AppImage.
    let bare = dir("bare")?.join("runtime");
    let mut bytes = fs::read(RUNTIME)?;
    bytes.extend_from_slice(&whole);
    fs::write(&bare, bytes)?;
    fs::set_permissions(&bare, fs::Permissions::from_mode(0o755))?;
    refused(&bare, &cache, tmp.path(), 65, "not an AppImage of type 2")?;
    Ok(())
}

#[test]
fn refuses_a_cache_others_may_write_to() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let cache = tmp.path().join("cache");
    let root = cache.join("mandate/appimage");
    fs::create_dir_all(&root)?;
    fs::set_permissions(&root, fs::Permissions::from_mode(0o777))?;
    let file = appimage(tmp.path(), &image(appdir)?)?;
    let out = run(&file, &cache, tmp.path(), &[])?;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("nobody else may write to"),
        "{}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    Ok(())
}
