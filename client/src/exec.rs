//! The framing of `nanocl exec` on its upgraded connection (`Upgrade: nanocl-exec`), shared
//! by the CLI and nanocld.
//!
//! Both ways, a frame is one byte of type, four bytes of length (big-endian) and the
//! payload. Docker's own attach stream cannot carry what the CLI needs besides the output —
//! the command's exit code, a terminal resize, the end of the input — so nanocld speaks this
//! instead and translates.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The `Upgrade` header's protocol name.
pub const PROTOCOL: &str = "nanocl-exec";

/// The largest payload either side sends or accepts.
pub const MAX_PAYLOAD: usize = 1 << 20;

/// One frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Client → server: bytes for the command's standard input.
    Stdin(Vec<u8>),
    /// Client → server: the input ended (the command reads end-of-file).
    StdinClosed,
    /// Client → server: the terminal is now this size.
    Resize {
        /// Rows.
        rows: u16,
        /// Columns.
        cols: u16,
    },
    /// Server → client: the command's standard output (everything, with a tty).
    Stdout(Vec<u8>),
    /// Server → client: the command's standard error.
    Stderr(Vec<u8>),
    /// Server → client, last: the command exited with this code.
    Exit(i32),
    /// Server → client, last: the command could not run, and why.
    Error(String),
}

impl Frame {
    fn parts(&self) -> (u8, Vec<u8>) {
        match self {
            Frame::Stdin(b) => (0, b.clone()),
            Frame::StdinClosed => (1, Vec::new()),
            Frame::Resize { rows, cols } => {
                let mut p = rows.to_be_bytes().to_vec();
                p.extend_from_slice(&cols.to_be_bytes());
                (2, p)
            }
            Frame::Stdout(b) => (10, b.clone()),
            Frame::Stderr(b) => (11, b.clone()),
            Frame::Exit(code) => (12, code.to_be_bytes().to_vec()),
            Frame::Error(text) => (13, text.as_bytes().to_vec()),
        }
    }

    fn from_parts(kind: u8, p: Vec<u8>) -> std::io::Result<Frame> {
        let bad =
            |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
        Ok(match kind {
            0 => Frame::Stdin(p),
            1 => Frame::StdinClosed,
            2 => {
                let [r0, r1, c0, c1] = p[..] else {
                    return Err(bad("a resize frame holds 4 bytes"));
                };
                Frame::Resize {
                    rows: u16::from_be_bytes([r0, r1]),
                    cols: u16::from_be_bytes([c0, c1]),
                }
            }
            10 => Frame::Stdout(p),
            11 => Frame::Stderr(p),
            12 => {
                let bytes: [u8; 4] = p[..]
                    .try_into()
                    .map_err(|_| bad("an exit frame holds 4 bytes"))?;
                Frame::Exit(i32::from_be_bytes(bytes))
            }
            13 => Frame::Error(String::from_utf8_lossy(&p).into_owned()),
            other => return Err(bad(&format!("unknown exec frame type {other}"))),
        })
    }
}

/// Writes one frame and flushes it.
pub async fn write(io: &mut (impl AsyncWrite + Unpin), frame: &Frame) -> std::io::Result<()> {
    let (kind, payload) = frame.parts();
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|n| *n as usize <= MAX_PAYLOAD)
        .ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "exec frame too large")
        })?;
    let mut buf = Vec::with_capacity(5 + payload.len());
    buf.push(kind);
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(&payload);
    io.write_all(&buf).await?;
    io.flush().await
}

/// Reads one frame; `None` at a clean end of the stream.
pub async fn read(io: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Option<Frame>> {
    let mut header = [0u8; 5];
    match io.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("an exec frame of {len} bytes (at most {MAX_PAYLOAD})"),
        ));
    }
    let mut payload = vec![0u8; len];
    io.read_exact(&mut payload).await?;
    Frame::from_parts(header[0], payload).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_frame_should_read_back_as_written() {
        let frames = [
            Frame::Stdin(b"ls\n".to_vec()),
            Frame::StdinClosed,
            Frame::Resize {
                rows: 40,
                cols: 120,
            },
            Frame::Stdout(vec![0, 1, 2]),
            Frame::Stderr(b"oops".to_vec()),
            Frame::Exit(-1),
            Frame::Error("no running replica".into()),
        ];
        let mut buf = Vec::new();
        for f in &frames {
            write(&mut buf, f).await.expect("written");
        }
        let mut reader = &buf[..];
        for f in &frames {
            assert_eq!(read(&mut reader).await.expect("read").as_ref(), Some(f));
        }
        assert_eq!(read(&mut reader).await.expect("the end"), None);
    }

    #[tokio::test]
    async fn a_bad_frame_should_be_an_error_not_a_panic() {
        let mut reader: &[u8] = &[2, 0, 0, 0, 1, 7];
        assert!(read(&mut reader).await.is_err());
        let mut reader: &[u8] = &[99, 0, 0, 0, 0];
        assert!(read(&mut reader).await.is_err());
        let mut reader: &[u8] = &[10, 0xff, 0, 0, 0];
        assert!(read(&mut reader).await.is_err());
    }
}
