//! How `ps` and `inspect` show containers, as docker's do.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::ids::short_id;
use super::status::{process_start_time, Status};
use super::{ContainerMeta, ExitRecord, Paths};

/// docker's zero time, shown for "never".
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// go-units' `HumanDuration`: what `5 minutes ago` and `Up 3 hours` say.
pub fn human_duration(d: Duration) -> String {
    let secs = d.num_seconds();
    if secs < 1 {
        return "Less than a second".into();
    }
    if secs == 1 {
        return "1 second".into();
    }
    if secs < 60 {
        return format!("{secs} seconds");
    }
    let minutes = d.num_minutes();
    if minutes == 1 {
        return "About a minute".into();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    // Hours are rounded to the nearest, the rest truncated, as Go's.
    let hours = (d.num_milliseconds() + 1_800_000) / 3_600_000;
    if hours == 1 {
        return "About an hour".into();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", d.num_hours() / 24 / 365)
}

/// At most `max` characters, the last replaced by `…` when cut.
pub fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Go's `strconv.Quote` for what `ps` shows: printable characters kept,
/// quotes, backslashes and control characters escaped.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// `Up 3 minutes`, `Exited (0) 2 seconds ago`, `Created`, `Dead`.
/// `started` is when a running container's process started.
pub fn status_text(status: &Status, started: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match status {
        Status::Created => "Created".into(),
        Status::Running { .. } => match started {
            Some(t) => format!("Up {}", human_duration(now - t)),
            None => "Up".into(),
        },
        Status::Exited { code, finished_at } => match parse_time(finished_at) {
            Some(t) => format!("Exited ({code}) {} ago", human_duration(now - t)),
            None => format!("Exited ({code})"),
        },
        Status::Dead => "Dead".into(),
    }
}

/// One line of `ps`, each cell as docker prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PsRow {
    pub id: String,
    pub image: String,
    pub command: String,
    pub created: String,
    pub status: String,
    pub names: String,
}

impl PsRow {
    /// `trunc` is docker's default; `--no-trunc` shows full ids and commands.
    pub fn new(meta: &ContainerMeta, status: &Status, now: DateTime<Utc>, trunc: bool) -> PsRow {
        let started = match status {
            Status::Running { pid } if *pid > 0 => process_start_time(*pid),
            _ => None,
        };
        Self::with_start(meta, status, started, now, trunc)
    }

    /// [`PsRow::new`] with the start time of a running container given.
    pub fn with_start(
        meta: &ContainerMeta,
        status: &Status,
        started: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        trunc: bool,
    ) -> PsRow {
        let command = meta.args.join(" ");
        PsRow {
            id: if trunc {
                short_id(&meta.id).to_string()
            } else {
                meta.id.clone()
            },
            image: meta.image.clone(),
            command: go_quote(&if trunc {
                ellipsis(&command, 20)
            } else {
                command
            }),
            created: match parse_time(&meta.created) {
                Some(t) => format!("{} ago", human_duration(now - t)),
                None => String::new(),
            },
            status: status_text(status, started, now),
            names: meta.name.clone(),
        }
    }
}

/// The `ps` table, header included, columns padded as docker's tabwriter
/// does: three spaces after the widest cell, at least ten wide.
pub fn ps_table(rows: &[PsRow]) -> String {
    let header = [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "NAMES",
    ];
    let cells: Vec<[&str; 6]> = std::iter::once(header)
        .chain(rows.iter().map(|r| {
            [
                r.id.as_str(),
                r.image.as_str(),
                r.command.as_str(),
                r.created.as_str(),
                r.status.as_str(),
                r.names.as_str(),
            ]
        }))
        .collect();
    let mut widths = [0usize; 6];
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count() + 3).max(10);
        }
    }
    let mut out = String::new();
    for row in &cells {
        for (i, c) in row.iter().enumerate() {
            out.push_str(c);
            if i + 1 < row.len() {
                out.extend(std::iter::repeat_n(' ', widths[i] - c.chars().count()));
            }
        }
        out.push('\n');
    }
    out
}

/// `inspect`'s document for one container, in docker's shape and key order.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Inspect {
    pub id: String,
    pub created: String,
    pub path: String,
    pub args: Vec<String>,
    pub state: InspectState,
    pub image: String,
    pub log_path: String,
    pub name: String,
    pub host_config: InspectHostConfig,
    pub config: InspectConfig,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectState {
    pub status: String,
    pub running: bool,
    pub paused: bool,
    pub restarting: bool,
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    pub dead: bool,
    pub pid: i32,
    pub exit_code: i32,
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectHostConfig {
    pub auto_remove: bool,
    pub log_config: InspectLogConfig,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectLogConfig {
    #[serde(rename = "Type")]
    pub kind: String,
    pub config: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectConfig {
    pub tty: bool,
    pub open_stdin: bool,
    pub env: Vec<String>,
    pub cmd: Option<Vec<String>>,
    pub image: String,
    pub entrypoint: Option<Vec<String>>,
}

impl Inspect {
    pub fn new(paths: &Paths, meta: &ContainerMeta, status: &Status) -> Inspect {
        let exit = ExitRecord::load(&paths.exit(&meta.id));
        let started = match status {
            Status::Running { pid } if *pid > 0 => process_start_time(*pid)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)),
            _ => exit.as_ref().and_then(|e| e.started_at.clone()),
        };
        let (pid, exit_code, finished) = match status {
            Status::Running { pid } => (*pid, 0, None),
            Status::Exited { code, finished_at } => (0, *code, Some(finished_at.clone())),
            Status::Created | Status::Dead => (0, 0, None),
        };
        let mut log_opts = std::collections::BTreeMap::new();
        if let Some(size) = meta.log_max_size {
            log_opts.insert("max-size".to_string(), size.to_string());
        }
        if meta.log_max_files > 0 {
            log_opts.insert("max-file".to_string(), meta.log_max_files.to_string());
        }
        Inspect {
            id: meta.id.clone(),
            created: meta.created.clone(),
            path: meta.args.first().cloned().unwrap_or_default(),
            args: meta.args.iter().skip(1).cloned().collect(),
            state: InspectState {
                status: status.docker_name().into(),
                running: matches!(status, Status::Running { .. }),
                paused: false,
                restarting: false,
                oom_killed: false,
                dead: matches!(status, Status::Dead),
                pid,
                exit_code,
                error: String::new(),
                started_at: started.unwrap_or_else(|| ZERO_TIME.into()),
                finished_at: finished.unwrap_or_else(|| ZERO_TIME.into()),
            },
            image: meta.image_id.clone(),
            log_path: paths.log(&meta.id).display().to_string(),
            name: format!("/{}", meta.name),
            host_config: InspectHostConfig {
                auto_remove: meta.auto_remove,
                log_config: InspectLogConfig {
                    kind: "json-file".into(),
                    config: log_opts,
                },
            },
            config: InspectConfig {
                tty: meta.tty,
                open_stdin: meta.stdin,
                env: meta.env.clone(),
                cmd: meta.cmd.clone(),
                image: meta.image.clone(),
                entrypoint: meta.entrypoint.clone(),
            },
        }
    }
}

/// What `inspect` prints: a JSON array, four-space indented as docker's.
pub fn inspect_json(docs: &[Inspect]) -> String {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    // Plain structs of strings, numbers and maps with string keys cannot
    // fail to serialise.
    if docs.serialize(&mut ser).is_err() {
        return "[]".into();
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::store::tests::meta;

    fn at(s: &str) -> DateTime<Utc> {
        parse_time(s).unwrap()
    }

    #[test]
    fn human_durations_as_go_units() {
        let s = Duration::seconds;
        assert_eq!(
            human_duration(Duration::milliseconds(300)),
            "Less than a second"
        );
        assert_eq!(human_duration(s(1)), "1 second");
        assert_eq!(human_duration(s(59)), "59 seconds");
        assert_eq!(human_duration(s(60)), "About a minute");
        assert_eq!(human_duration(s(119)), "About a minute");
        assert_eq!(human_duration(s(120)), "2 minutes");
        assert_eq!(human_duration(s(59 * 60)), "59 minutes");
        assert_eq!(human_duration(s(60 * 60)), "About an hour");
        assert_eq!(human_duration(s(89 * 60)), "About an hour");
        assert_eq!(human_duration(s(90 * 60)), "2 hours");
        assert_eq!(human_duration(s(47 * 3600)), "47 hours");
        assert_eq!(human_duration(s(48 * 3600)), "2 days");
        assert_eq!(human_duration(s(14 * 86400)), "2 weeks");
        assert_eq!(human_duration(s(60 * 86400)), "2 months");
        assert_eq!(human_duration(s(800 * 86400)), "2 years");
    }

    #[test]
    fn command_is_quoted_and_cut_to_20() {
        assert_eq!(go_quote(&ellipsis("sh", 20)), "\"sh\"");
        assert_eq!(
            go_quote(&ellipsis("sh -c 'while true; do echo hi; done'", 20)),
            "\"sh -c 'while true; …\""
        );
        assert_eq!(ellipsis("exactly twenty chars", 20), "exactly twenty chars");
        assert_eq!(
            go_quote("say \"hi\"\n\t\\ é\u{1}"),
            r#""say \"hi\"\n\t\\ é\x01""#
        );
    }

    #[test]
    fn status_texts() {
        let now = at("2024-01-01T01:00:00Z");
        assert_eq!(status_text(&Status::Created, None, now), "Created");
        assert_eq!(status_text(&Status::Dead, None, now), "Dead");
        assert_eq!(
            status_text(
                &Status::Running { pid: 1 },
                Some(at("2024-01-01T00:57:00Z")),
                now
            ),
            "Up 3 minutes"
        );
        let exited = Status::Exited {
            code: 0,
            finished_at: "2024-01-01T00:59:58Z".into(),
        };
        assert_eq!(status_text(&exited, None, now), "Exited (0) 2 seconds ago");
        let killed = Status::Exited {
            code: 137,
            finished_at: "2023-12-31T23:00:00.5Z".into(),
        };
        assert_eq!(status_text(&killed, None, now), "Exited (137) 2 hours ago");
    }

    #[test]
    fn ps_rows_and_table() {
        let mut m = meta("web");
        m.created = "2024-01-01T00:55:00Z".into();
        m.args = vec![
            "sh".into(),
            "-c".into(),
            "while true; do sleep 1; done".into(),
        ];
        let now = at("2024-01-01T01:00:00Z");
        let started = Some(at("2024-01-01T00:57:00Z"));
        let row = PsRow::with_start(&m, &Status::Running { pid: 9 }, started, now, true);
        assert_eq!(row.id, &m.id[..12]);
        assert_eq!(row.command, "\"sh -c while true; d…\"");
        assert_eq!(row.created, "5 minutes ago");
        assert_eq!(row.status, "Up 3 minutes");
        assert_eq!(row.names, "web");
        let full = PsRow::with_start(&m, &Status::Created, None, now, false);
        assert_eq!(full.id, m.id);
        assert_eq!(full.command, "\"sh -c while true; do sleep 1; done\"");

        let table = ps_table(&[row]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "CONTAINER ID   IMAGE            COMMAND                  CREATED         STATUS         NAMES"
        );
        assert_eq!(
            lines[1],
            format!(
                "{}   busybox:latest   \"sh -c while true; d…\"   5 minutes ago   Up 3 minutes   web",
                &m.id[..12]
            )
        );
    }

    #[test]
    fn inspect_has_dockers_shape() {
        let d = tempfile::tempdir().unwrap();
        let paths = Paths::new(d.path().join("root"), d.path().join("run"));
        let mut m = meta("web");
        m.log_max_size = Some(1 << 20);
        m.log_max_files = 3;
        m.tty = true;
        std::fs::create_dir_all(paths.container_dir(&m.id)).unwrap();
        let rec = ExitRecord {
            code: 3,
            signal: None,
            started_at: Some("2024-01-01T00:00:00Z".into()),
            finished_at: "2024-01-01T00:00:05Z".into(),
        };
        std::fs::write(paths.exit(&m.id), serde_json::to_vec(&rec).unwrap()).unwrap();
        let status = Status::Exited {
            code: 3,
            finished_at: rec.finished_at.clone(),
        };
        let text = inspect_json(&[Inspect::new(&paths, &m, &status)]);
        assert!(text.starts_with("[\n    {\n        \"Id\": "), "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let c = &v[0];
        assert_eq!(c["Id"], m.id.as_str());
        assert_eq!(c["Name"], "/web");
        assert_eq!(c["Path"], "sh");
        assert_eq!(c["Args"], serde_json::json!(["-c", "echo hi"]));
        assert_eq!(c["State"]["Status"], "exited");
        assert_eq!(c["State"]["Running"], false);
        assert_eq!(c["State"]["ExitCode"], 3);
        assert_eq!(c["State"]["Pid"], 0);
        assert_eq!(c["State"]["StartedAt"], "2024-01-01T00:00:00Z");
        assert_eq!(c["State"]["FinishedAt"], "2024-01-01T00:00:05Z");
        assert_eq!(c["Config"]["Tty"], true);
        assert_eq!(c["Config"]["OpenStdin"], false);
        assert_eq!(c["Config"]["Env"], serde_json::json!(["PATH=/bin"]));
        assert_eq!(
            c["Config"]["Cmd"],
            serde_json::json!(["sh", "-c", "echo hi"])
        );
        assert_eq!(c["Config"]["Entrypoint"], serde_json::Value::Null);
        assert_eq!(c["Config"]["Image"], "busybox:latest");
        assert_eq!(c["HostConfig"]["AutoRemove"], false);
        assert_eq!(c["HostConfig"]["LogConfig"]["Type"], "json-file");
        assert_eq!(
            c["HostConfig"]["LogConfig"]["Config"]["max-size"],
            "1048576"
        );
        assert_eq!(c["HostConfig"]["LogConfig"]["Config"]["max-file"], "3");
        assert_eq!(c["LogPath"], paths.log(&m.id).display().to_string());

        let created = inspect_json(&[Inspect::new(&paths, &meta("x"), &Status::Created)]);
        let v: serde_json::Value = serde_json::from_str(&created).unwrap();
        assert_eq!(v[0]["State"]["StartedAt"], ZERO_TIME);
        assert_eq!(v[0]["State"]["Status"], "created");
    }
}
