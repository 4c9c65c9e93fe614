//! The attach socket's framing: `[kind u8][len u32 BE][payload]`.

/// Bytes before every payload.
pub const HEADER: usize = 5;
/// Neither side sends more in one frame; the supervisor reads container
/// output in chunks no larger than this.
pub const MAX_PAYLOAD: usize = 32 * 1024;

pub mod kind {
    // client -> supervisor
    pub const HELLO: u8 = 0x01;
    pub const STDIN: u8 = 0x02;
    pub const STDIN_CLOSE: u8 = 0x03;
    pub const RESIZE: u8 = 0x04;
    pub const SIGNAL: u8 = 0x05;
    pub const START: u8 = 0x06;
    // supervisor -> client
    pub const STDOUT: u8 = 0x81;
    pub const STDERR: u8 = 0x82;
    pub const EXIT: u8 = 0x83;
    pub const ERROR: u8 = 0x84;
    pub const STARTED: u8 = 0x85;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Which streams the client wants; must come first on an attach
    /// connection. Output goes only to clients that said hello.
    Hello {
        stdin: bool,
        stdout: bool,
        stderr: bool,
    },
    Stdin(Vec<u8>),
    /// The client's stdin ended: the container's stdin is closed (a pipe)
    /// or left alone (a pty, shared with later attaches).
    StdinClose,
    Resize {
        rows: u16,
        cols: u16,
    },
    Signal(i32),
    /// Run `runtime start` on a created container.
    Start,
    /// Output; with a tty, the one stream comes as stdout.
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    /// The container's exit code (docker's: 128+N for signal N).
    Exit(i32),
    Error(String),
    Started,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("attach protocol: unknown frame kind {kind:#04x}")]
    UnknownKind { kind: u8 },
    #[error("attach protocol: frame kind {kind:#04x} of {len} bytes exceeds the {MAX_PAYLOAD}-byte limit")]
    TooLong { kind: u8, len: usize },
    #[error("attach protocol: frame kind {kind:#04x}: {reason}")]
    BadPayload { kind: u8, reason: &'static str },
}

/// Appends one frame's header; the caller appends `len` payload bytes.
pub fn encode_header(kind: u8, len: usize, out: &mut Vec<u8>) {
    debug_assert!(len <= MAX_PAYLOAD);
    out.push(kind);
    out.extend_from_slice(&(len as u32).to_be_bytes());
}

/// Appends a data frame without building a [`Frame`] first: the output
/// path runs for every chunk a container writes.
pub fn encode_data(kind: u8, data: &[u8], out: &mut Vec<u8>) {
    if data.is_empty() {
        encode_header(kind, 0, out);
    }
    for chunk in data.chunks(MAX_PAYLOAD) {
        encode_header(kind, chunk.len(), out);
        out.extend_from_slice(chunk);
    }
}

impl Frame {
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Frame::Hello {
                stdin,
                stdout,
                stderr,
            } => {
                let flags = (*stdin as u8) | (*stdout as u8) << 1 | (*stderr as u8) << 2;
                encode_header(kind::HELLO, 1, out);
                out.push(flags);
            }
            Frame::Stdin(d) => encode_data(kind::STDIN, d, out),
            Frame::StdinClose => encode_header(kind::STDIN_CLOSE, 0, out),
            Frame::Resize { rows, cols } => {
                encode_header(kind::RESIZE, 4, out);
                out.extend_from_slice(&rows.to_be_bytes());
                out.extend_from_slice(&cols.to_be_bytes());
            }
            Frame::Signal(n) => {
                encode_header(kind::SIGNAL, 4, out);
                out.extend_from_slice(&n.to_be_bytes());
            }
            Frame::Start => encode_header(kind::START, 0, out),
            Frame::Stdout(d) => encode_data(kind::STDOUT, d, out),
            Frame::Stderr(d) => encode_data(kind::STDERR, d, out),
            Frame::Exit(code) => {
                encode_header(kind::EXIT, 4, out);
                out.extend_from_slice(&code.to_be_bytes());
            }
            Frame::Error(msg) => {
                let bytes = &msg.as_bytes()[..msg.len().min(MAX_PAYLOAD)];
                encode_header(kind::ERROR, bytes.len(), out);
                out.extend_from_slice(bytes);
            }
            Frame::Started => encode_header(kind::STARTED, 0, out),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode(&mut v);
        v
    }

    fn decode(kind: u8, p: &[u8]) -> Result<Frame, FrameError> {
        let exact = |n: usize| {
            if p.len() == n {
                Ok(())
            } else {
                Err(FrameError::BadPayload {
                    kind,
                    reason: "wrong payload length",
                })
            }
        };
        let be32 = |p: &[u8]| i32::from_be_bytes([p[0], p[1], p[2], p[3]]);
        Ok(match kind {
            kind::HELLO => {
                exact(1)?;
                Frame::Hello {
                    stdin: p[0] & 1 != 0,
                    stdout: p[0] & 2 != 0,
                    stderr: p[0] & 4 != 0,
                }
            }
            kind::STDIN => Frame::Stdin(p.to_vec()),
            kind::STDIN_CLOSE => {
                exact(0)?;
                Frame::StdinClose
            }
            kind::RESIZE => {
                exact(4)?;
                Frame::Resize {
                    rows: u16::from_be_bytes([p[0], p[1]]),
                    cols: u16::from_be_bytes([p[2], p[3]]),
                }
            }
            kind::SIGNAL => {
                exact(4)?;
                Frame::Signal(be32(p))
            }
            kind::START => {
                exact(0)?;
                Frame::Start
            }
            kind::STDOUT => Frame::Stdout(p.to_vec()),
            kind::STDERR => Frame::Stderr(p.to_vec()),
            kind::EXIT => {
                exact(4)?;
                Frame::Exit(be32(p))
            }
            kind::ERROR => Frame::Error(String::from_utf8_lossy(p).into_owned()),
            kind::STARTED => {
                exact(0)?;
                Frame::Started
            }
            _ => return Err(FrameError::UnknownKind { kind }),
        })
    }
}

/// Reassembles frames from whatever pieces a stream delivers.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole frame, None when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.buf.len() < HEADER {
            return Ok(None);
        }
        let kind = self.buf[0];
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > MAX_PAYLOAD {
            return Err(FrameError::TooLong { kind, len });
        }
        if self.buf.len() < HEADER + len {
            return Ok(None);
        }
        let frame = Frame::decode(kind, &self.buf[HEADER..HEADER + len]);
        self.buf.drain(..HEADER + len);
        if self.buf.is_empty() && self.buf.capacity() > 2 * (HEADER + MAX_PAYLOAD) {
            // One burst should not pin its buffer for the session's life.
            self.buf = Vec::new();
        }
        frame.map(Some)
    }

    /// Bytes held that do not make a whole frame yet.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_frames() -> Vec<Frame> {
        vec![
            Frame::Hello {
                stdin: true,
                stdout: false,
                stderr: true,
            },
            Frame::Stdin(b"input".to_vec()),
            Frame::StdinClose,
            Frame::Resize {
                rows: 40,
                cols: 132,
            },
            Frame::Signal(15),
            Frame::Start,
            Frame::Stdout(b"out\n".to_vec()),
            Frame::Stderr(Vec::new()),
            Frame::Exit(137),
            Frame::Error("no such container".into()),
            Frame::Started,
        ]
    }

    #[test]
    fn every_frame_round_trips_even_fed_byte_by_byte() {
        let frames = all_frames();
        let mut bytes = Vec::new();
        for f in &frames {
            f.encode(&mut bytes);
        }
        let mut d = Decoder::new();
        let mut got = Vec::new();
        for b in bytes {
            d.feed(&[b]);
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, frames);
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn header_layout_is_kind_then_big_endian_length() {
        assert_eq!(
            Frame::Exit(3).to_bytes(),
            [kind::EXIT, 0, 0, 0, 4, 0, 0, 0, 3]
        );
        assert_eq!(
            Frame::Resize { rows: 1, cols: 258 }.to_bytes(),
            [kind::RESIZE, 0, 0, 0, 4, 0, 1, 1, 2]
        );
    }

    #[test]
    fn big_data_is_split_into_frames_within_the_limit() {
        let data = vec![7u8; MAX_PAYLOAD * 2 + 10];
        let mut bytes = Vec::new();
        encode_data(kind::STDOUT, &data, &mut bytes);
        let mut d = Decoder::new();
        d.feed(&bytes);
        let mut total = Vec::new();
        while let Some(f) = d.next_frame().unwrap() {
            match f {
                Frame::Stdout(p) => {
                    assert!(p.len() <= MAX_PAYLOAD);
                    total.extend(p);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(total, data);
    }

    #[test]
    fn bad_input_is_refused_with_the_kind() {
        let mut d = Decoder::new();
        d.feed(&[0x7f, 0, 0, 0, 0]);
        assert_eq!(d.next_frame(), Err(FrameError::UnknownKind { kind: 0x7f }));

        let mut d = Decoder::new();
        d.feed(&[kind::STDIN, 0xff, 0, 0, 0]);
        assert!(matches!(
            d.next_frame(),
            Err(FrameError::TooLong {
                kind: kind::STDIN,
                ..
            })
        ));

        let mut d = Decoder::new();
        d.feed(&[kind::SIGNAL, 0, 0, 0, 1, 9]);
        assert!(matches!(
            d.next_frame(),
            Err(FrameError::BadPayload {
                kind: kind::SIGNAL,
                ..
            })
        ));
    }
}
