//! Build progress in BuildKit's shapes: `plain` prints numbered step lines
//! (`#3 [build 2/5] RUN make`, the step's output prefixed `#3 `, then
//! `#3 CACHED` or `#3 DONE 0.4s`); `auto` on a terminal redraws the current
//! step with its elapsed time and the last lines of its output; `quiet`
//! prints nothing (the caller prints the image id).

use std::io::{IsTerminal, Write};
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Auto,
    Plain,
    Quiet,
}

/// How many output lines the live view keeps under the current step.
const LIVE_TAIL: usize = 6;

pub struct Progress {
    mode: Mode,
    live: bool,
    out: Box<dyn Write + Send>,
    step: usize,
    title: String,
    started: Instant,
    build_started: Instant,
    partial: Vec<u8>,
    tail: Vec<String>,
    /// Lines drawn by the live view since the last step line.
    drawn: usize,
}

impl Progress {
    pub fn new(mode: Mode) -> Progress {
        let live = mode == Mode::Auto && std::io::stderr().is_terminal();
        Progress::to_writer(mode, live, Box::new(std::io::stderr()))
    }

    pub fn to_writer(mode: Mode, live: bool, out: Box<dyn Write + Send>) -> Progress {
        Progress {
            mode,
            live,
            out,
            step: 0,
            title: String::new(),
            started: Instant::now(),
            build_started: Instant::now(),
            partial: Vec::new(),
            tail: Vec::new(),
            drawn: 0,
        }
    }

    fn quiet(&self) -> bool {
        self.mode == Mode::Quiet
    }

    /// A new step: `title` is e.g. `[build 2/5] RUN make`.
    pub fn step(&mut self, title: &str) {
        self.step += 1;
        self.title = title.to_string();
        self.started = Instant::now();
        self.partial.clear();
        self.tail.clear();
        self.drawn = 0;
        if self.quiet() {
            return;
        }
        let line = format!("#{} {}\n", self.step, title);
        let _ = self.out.write_all(line.as_bytes());
        let _ = self.out.flush();
    }

    /// Output of the current step's process, as it comes.
    pub fn output(&mut self, data: &[u8]) {
        if self.quiet() {
            return;
        }
        self.partial.extend_from_slice(data);
        while let Some(nl) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=nl).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            self.emit_line(text);
        }
        if self.live {
            self.redraw();
        }
    }

    fn emit_line(&mut self, text: String) {
        if self.live {
            self.tail.push(text);
            if self.tail.len() > LIVE_TAIL {
                self.tail.remove(0);
            }
        } else {
            let secs = self.started.elapsed().as_secs_f64();
            let _ = writeln!(self.out, "#{} {:.3} {}", self.step, secs, text);
        }
    }

    fn redraw(&mut self) {
        // Move up over what the live view drew, clear it, draw again.
        let mut s = String::new();
        if self.drawn > 0 {
            s.push_str(&format!("\x1b[{}A", self.drawn));
        }
        s.push_str("\x1b[J");
        for line in &self.tail {
            let cut: String = line.chars().take(120).collect();
            s.push_str(&format!("\x1b[2m#{} {}\x1b[0m\n", self.step, cut));
        }
        s.push_str(&format!(
            "\x1b[34m => {} {:.1}s\x1b[0m\n",
            self.title,
            self.started.elapsed().as_secs_f64()
        ));
        self.drawn = self.tail.len() + 1;
        let _ = self.out.write_all(s.as_bytes());
        let _ = self.out.flush();
    }

    fn flush_partial(&mut self) {
        if !self.partial.is_empty() {
            let text = String::from_utf8_lossy(&self.partial).into_owned();
            self.partial.clear();
            self.emit_line(text);
        }
    }

    fn clear_live(&mut self) {
        if self.live && self.drawn > 0 {
            let _ = write!(self.out, "\x1b[{}A\x1b[J", self.drawn);
            self.drawn = 0;
        }
    }

    pub fn cached(&mut self) {
        if self.quiet() {
            return;
        }
        self.clear_live();
        let _ = writeln!(self.out, "#{} CACHED", self.step);
    }

    pub fn done(&mut self) {
        if self.quiet() {
            return;
        }
        self.flush_partial();
        self.clear_live();
        let secs = self.started.elapsed().as_secs_f64();
        let _ = writeln!(self.out, "#{} DONE {:.1}s", self.step, secs);
    }

    /// The step failed: in the live view its output is printed in full.
    pub fn failed(&mut self, message: &str) {
        if self.quiet() {
            return;
        }
        self.flush_partial();
        if self.live {
            self.clear_live();
            for line in std::mem::take(&mut self.tail) {
                let _ = writeln!(self.out, "#{} {}", self.step, line);
            }
        }
        let _ = writeln!(self.out, "#{} ERROR: {}", self.step, message);
    }

    pub fn finish(&mut self, message: &str) {
        if self.quiet() {
            return;
        }
        let secs = self.build_started.elapsed().as_secs_f64();
        let _ = writeln!(self.out, "{message} in {secs:.1}s");
        let _ = self.out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn plain_numbers_steps_and_prefixes_output() {
        let buf = Shared::default();
        let mut p = Progress::to_writer(Mode::Plain, false, Box::new(buf.clone()));
        p.step("[1/2] FROM busybox");
        p.cached();
        p.step("[2/2] RUN echo hi");
        p.output(b"hi\npart");
        p.output(b"ial\n");
        p.done();
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "#1 [1/2] FROM busybox");
        assert_eq!(lines[1], "#1 CACHED");
        assert_eq!(lines[2], "#2 [2/2] RUN echo hi");
        assert!(
            lines[3].starts_with("#2 0.") && lines[3].ends_with(" hi"),
            "{}",
            lines[3]
        );
        assert!(lines[4].ends_with(" partial"), "{}", lines[4]);
        assert!(lines[5].starts_with("#2 DONE "), "{}", lines[5]);
    }

    #[test]
    fn quiet_prints_nothing() {
        let buf = Shared::default();
        let mut p = Progress::to_writer(Mode::Quiet, false, Box::new(buf.clone()));
        p.step("[1/1] RUN x");
        p.output(b"noise\n");
        p.done();
        p.finish("built");
        assert!(buf.0.lock().unwrap().is_empty());
    }
}
