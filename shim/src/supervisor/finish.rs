//! The end of a container: exit record, runtime state removed, with
//! `auto_remove` the container itself, then last words to attached clients.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::sys::wait::WaitStatus;

use super::event_loop::Loop;
use super::exit_code_for_status;
use crate::attach::frame::Frame;
use crate::container::{ExitRecord, Paths};

/// How long clients get to take their last output and the exit frame.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(2);

impl Loop {
    pub(super) fn finish(&mut self, paths: &Paths, status: WaitStatus) {
        let id = self.id.clone();
        self.flush_log();
        let (code, signal) = exit_code_for_status(status).unwrap_or((super::EXIT_OWN_ERROR, None));
        let record = ExitRecord {
            code,
            signal,
            started_at: self.started_at.clone(),
            finished_at: super::launch::now(),
        };
        if let Err(e) = write_exit_record(paths, &id, &record) {
            tracing::error!(container = %id, "{e}");
        }
        // Nobody new: the container is gone.
        self.listener = None;
        // Clean up before telling the clients, as `docker run --rm` returns
        // only once the container is removed: a client that exits and
        // removes our directories right away (a test's temp dir, a script's
        // `rm -rf`) would otherwise beat `runtime delete` and leave the
        // container's cgroups behind.
        if let Err(e) = self.runtime.delete(&id, true) {
            tracing::warn!(container = %id, "runtime delete: {e}");
        }
        if self.meta.auto_remove {
            remove_container(paths, &id);
        }
        for c in &mut self.clients {
            c.push(&Frame::Exit(code));
        }
        self.say_goodbye();
    }

    /// Lets clients take what is queued for them, within a bound: a client
    /// that does not read does not keep the supervisor alive.
    fn say_goodbye(&mut self) {
        let deadline = Instant::now() + GOODBYE_TIMEOUT;
        loop {
            for c in &mut self.clients {
                c.flush();
            }
            let mut pfds: Vec<libc::pollfd> = self
                .clients
                .iter()
                .filter(|c| c.pending())
                .map(|c| crate::io::pollfd(c.sock().as_fd(), libc::POLLOUT))
                .collect();
            let left = deadline.saturating_duration_since(Instant::now());
            if pfds.is_empty() || left.is_zero() {
                break;
            }
            if crate::io::poll(&mut pfds, left.as_millis() as i32).is_err() {
                break;
            }
        }
        self.clients.clear();
    }
}

fn write_exit_record(paths: &Paths, id: &str, record: &ExitRecord) -> Result<(), String> {
    let path = paths.exit(id);
    let tmp = path.with_extension("json.tmp");
    let data = serde_json::to_vec(record).map_err(|e| format!("encoding exit record: {e}"))?;
    // Readers see the old file or the whole new one, never a torn write.
    std::fs::write(&tmp, data)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

/// `--rm`: bundle (its overlay unmounted, upper dir included), then the
/// record through the store, which also frees the name (a plain removal of
/// the container dir left the name reserved, pointing at nothing).
fn remove_container(paths: &Paths, id: &str) {
    let bundle = paths.bundle(id);
    if bundle.exists() {
        if let Err(e) = keel_builder::bundle::remove_bundle(&bundle) {
            tracing::error!(container = %id, "removing bundle: {e}");
            return;
        }
    }
    if let Err(e) = crate::container::ContainerStore::new(paths.clone()).remove(id) {
        tracing::error!(container = %id, "removing the container: {e}");
    }
}
