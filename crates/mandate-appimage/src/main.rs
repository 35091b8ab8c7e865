//! `mandate-appimage-runtime`: the program at the head of Mandate's
//! AppImage (see the library's documentation). Run as the AppImage, it
//! unpacks the image once into the user's cache and runs its `AppRun`
//! with the AppImage's environment: `APPIMAGE` (this file), `APPDIR`
//! (the unpacked copy), `ARGV0` and `OWD` (the directory it was started
//! in). Its own options, which it takes only as the first argument:
//!
//!   --appimage-extract          unpack the image into ./squashfs-root
//!   --appimage-extract-and-run  run it (what it does anyway)
//!   --appimage-offset           print where the image starts
//!   --appimage-version          print the runtime's version
//!   --appimage-help             print this

use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::ExitCode;

use mandate_appimage::{
    Failure, Result, cache_root, image_key, image_offset, prepared, prune, unpack,
};

const HELP: &str = "\
The AppImage of Mandate. Run it to start the app; what follows
--appimage-... options goes to the app.

  --appimage-extract          unpack the image into ./squashfs-root
  --appimage-extract-and-run  start the app (the default)
  --appimage-offset           print where the image starts in this file
  --appimage-version          print the runtime's version
  --appimage-help             print this

The image is unpacked once per version into
$XDG_CACHE_HOME/mandate/appimage (~/.cache/mandate/appimage), and run
from there; copies of other versions unused for 7 days are removed.
";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("mandate-appimage: {failure}");
            ExitCode::from(failure.status)
        }
    }
}

fn run() -> Result<()> {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let argv0 = if args.is_empty() {
        Default::default()
    } else {
        args.remove(0)
    };
    let option = args
        .first()
        .and_then(|a| a.to_str())
        .filter(|a| a.starts_with("--appimage-"))
        .map(str::to_owned);
    if option.is_some() {
        args.remove(0);
    }
    let say = |text: &str| {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
    };
    match option.as_deref() {
        Some("--appimage-help") => {
            say(HELP);
            return Ok(());
        }
        Some("--appimage-version") => {
            say(&format!("{}\n", env!("CARGO_PKG_VERSION")));
            return Ok(());
        }
        None | Some("--appimage-extract-and-run" | "--appimage-offset" | "--appimage-extract") => {}
        Some(other) => {
            return Err(Failure::usage(format!(
                "unknown option {other}; --appimage-help lists the options"
            )));
        }
    }

    let appimage = std::env::current_exe()
        .map_err(|e| Failure::io("cannot find the AppImage's own file", e))?;
    let mut file = std::fs::File::open(&appimage)
        .map_err(|e| Failure::io(format!("cannot open {}", appimage.display()), e))?;
    let offset = image_offset(&mut file)?;
    match option.as_deref() {
        Some("--appimage-offset") => {
            say(&format!("{offset}\n"));
            return Ok(());
        }
        Some("--appimage-extract") => {
            let dest = Path::new("squashfs-root");
            if dest.symlink_metadata().is_ok() {
                return Err(Failure::usage(
                    "./squashfs-root is there already; move it away first",
                ));
            }
            unpack(&appimage, offset, dest)?;
            say("squashfs-root\n");
            return Ok(());
        }
        _ => {}
    }

    let key = image_key(&mut file, offset)?;
    drop(file);
    let root = cache_root()?;
    let appdir = prepared(&appimage, offset, &key, &root)?;
    prune(&root, &key);
    let mut command = std::process::Command::new(appdir.join("AppRun"));
    command
        .args(&args)
        .env("APPIMAGE", &appimage)
        .env("APPDIR", &appdir)
        .env("ARGV0", &argv0);
    if let Ok(cwd) = std::env::current_dir() {
        command.env("OWD", cwd);
    }
    // `exec` returns only when it failed.
    let error = command.exec();
    Err(Failure::io(
        format!("cannot run {}", appdir.join("AppRun").display()),
        error,
    ))
}
