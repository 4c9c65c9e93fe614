//! One file per subcommand; each returns the process exit code.

mod build;
mod bundle;
mod check;
mod history;
mod images;
mod inspect;
mod load;
mod prune;
mod rmi;
mod save;
mod tag;

use anyhow::{Context, Result};
use keel_builder::store::Store;

use crate::cli::{Cli, Command};

pub fn dispatch(cli: Cli) -> Result<u8> {
    // Building mounts overlays: its own mount namespace must come before
    // any thread exists (unshare(CLONE_NEWNS) refuses shared fs state).
    // The guardian first: forked inside the private namespace, it would
    // itself keep a killed build's overlays mounted.
    if let Command::Build(a) = &cli.command {
        build::start_guardian(&cli.root, &a.runtime);
        build::enter_private_mount_namespace()?;
    }
    let open =
        || Store::open(&cli.root).with_context(|| format!("opening store {}", cli.root.display()));
    match cli.command {
        Command::Build(a) => build::run(&open()?, a),
        Command::Images { format, quiet } => images::run(&open()?, format, quiet),
        Command::Tag { source, target } => tag::run(&open()?, &source, &target),
        Command::Rmi { images, force: _ } => rmi::run(&open()?, &images),
        Command::Inspect { image } => inspect::run(&open()?, &image),
        Command::History { image, format } => history::run(&open()?, &image, format),
        Command::Import { dir, name } => load::import(&open()?, &dir, &name),
        Command::Save {
            output,
            format,
            images,
        } => save::run(&open()?, &output, format, &images),
        Command::Load { input, tag } => load::run(&open()?, &input, tag.as_deref()),
        Command::Prune { all } => prune::run(&open()?, all),
        Command::Check => check::run(&open()?),
        Command::Bundle {
            image,
            dir,
            copy,
            args,
        } => bundle::run(&open()?, &image, &dir, copy, args),
        Command::Unbundle { dir } => bundle::unbundle(&dir),
    }
}

/// Writes to stdout; a closed pipe (`| head`) is not an error worth a message.
pub fn print(s: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("writing to stdout"),
    }
}

/// `12 seconds ago`, `3 days ago`: docker's CREATED column.
pub fn ago(rfc3339: Option<&str>) -> String {
    let Some(t) = rfc3339.and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok()) else {
        return "N/A".to_string();
    };
    let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    let (n, unit) = match secs {
        0..=59 => (secs, "second"),
        60..=3599 => (secs / 60, "minute"),
        3600..=86399 => (secs / 3600, "hour"),
        86400..=2_591_999 => (secs / 86400, "day"),
        2_592_000..=31_535_999 => (secs / 2_592_000, "month"),
        _ => (secs / 31_536_000, "year"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

/// Docker's human sizes: `1.09MB` (powers of 1000).
pub fn human_size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes}B")
    } else {
        let s = if v < 10.0 {
            format!("{v:.2}")
        } else if v < 100.0 {
            format!("{v:.1}")
        } else {
            format!("{v:.0}")
        };
        let s = if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.')
        } else {
            &s
        };
        format!("{s}{}", units[i])
    }
}

/// The 12 hex digits docker shows for an id.
pub fn short_id(d: &keel_builder::digest::Digest) -> &str {
    &d.hex()[..12]
}
