//! runc-compatible log lines. containerd's runc shim and podman read the
//! runtime's `--log` file (`--log-format json`) and show the `msg` of the last
//! `error` line as the failure, so the shape matters:
//! `{"level":"error","msg":"...","time":"2026-01-02T03:04:05Z"}`; the text
//! format is logrus' `time="..." level=error msg="..."`.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

pub struct RuncLogLayer {
    out: Mutex<Box<dyn Write + Send>>,
    format: LogFormat,
}

#[derive(Default)]
struct Fields {
    message: String,
    extra: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.extra, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.extra, " {}={:?}", field.name(), value);
        }
    }
}

fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

/// One log line in runc's shape, without the trailing newline.
pub fn format_line(format: LogFormat, level: &str, msg: &str, time: &str) -> String {
    match format {
        LogFormat::Json => {
            serde_json::json!({ "level": level, "msg": msg, "time": time }).to_string()
        }
        LogFormat::Text => format!(
            "time=\"{time}\" level={level} msg={}",
            serde_json::Value::String(msg.to_string())
        ),
    }
}

impl<S: Subscriber> Layer<S> for RuncLogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let msg = if fields.extra.is_empty() {
            fields.message
        } else {
            format!("{}{}", fields.message, fields.extra)
        };
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let line = format_line(
            self.format,
            level_name(event.metadata().level()),
            &msg,
            &time,
        );
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }
}

/// Installs the process-wide subscriber. Without `--debug` only our own
/// warnings and errors are kept: libcontainer logs every failure at each
/// level of its call chain, and the final error line must be the one that
/// carries the whole story.
pub fn init(log_file: Option<&Path>, format: LogFormat, debug: bool) -> std::io::Result<()> {
    let out: Box<dyn Write + Send> = match log_file {
        Some(path) => Box::new(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?,
        ),
        None => Box::new(std::io::stderr()),
    };
    let filter = if debug {
        EnvFilter::new("debug")
    } else {
        EnvFilter::new(
            "keel_runtime=warn,keel_runtime::seccomp=warn,libcontainer=off,libcgroups=off",
        )
    };
    let layer = RuncLogLayer {
        out: Mutex::new(out),
        format,
    };
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_has_the_fields_containerd_reads() {
        let line = format_line(
            LogFormat::Json,
            "error",
            "container \"x\" does not exist",
            "T",
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "container \"x\" does not exist");
        assert_eq!(v["time"], "T");
    }

    #[test]
    fn text_line_quotes_the_message_like_logrus() {
        let line = format_line(LogFormat::Text, "error", "a \"b\"", "T");
        assert_eq!(line, r#"time="T" level=error msg="a \"b\"""#);
    }
}
