//! `logs [-f] [-t] [--tail N] [--since T] [--until T]`.

use super::{Result, Shim, ShimError};
use crate::container::{status, Status};
use crate::log::reader::{parse_time_arg, read, ReadOptions};

pub fn logs(
    shim: &Shim,
    name: &str,
    follow: bool,
    timestamps: bool,
    tail: &str,
    since: Option<&str>,
    until: Option<&str>,
) -> Result<i32> {
    let meta = shim.containers().resolve(name)?;
    let now = chrono::Utc::now();
    let tail = match tail {
        "all" | "" => None,
        n => Some(n.parse::<usize>().map_err(|_| ShimError::Flag {
            flag: "--tail",
            value: n.to_string(),
            reason: "want a number or \"all\"".to_string(),
        })?),
    };
    let opts = ReadOptions {
        follow,
        timestamps,
        tail,
        since: since.map(|s| parse_time_arg(s, now)).transpose()?,
        until: until.map(|s| parse_time_arg(s, now)).transpose()?,
    };
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    let stop = || {
        !matches!(
            status(&shim.paths, &meta),
            Status::Running { .. } | Status::Created
        )
    };
    read(&shim.paths, &meta.id, opts, &mut out, &mut err, &stop)?;
    Ok(0)
}
