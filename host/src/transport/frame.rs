//! Length-prefixed postcard frames: a 4-byte big-endian length, then that
//! many bytes of postcard. The length is checked against a maximum before
//! anything is allocated, so a peer cannot make the reader allocate more
//! than the maximum, and a body that does not decode is an error, never a
//! panic.

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Bytes of the length prefix.
pub const HEADER: usize = 4;

/// The default largest frame body, in bytes.
pub const MAX_FRAME: usize = 16 << 20;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed the connection between frames.
    #[error("connection closed")]
    Closed,
    /// The connection failed, or closed in the middle of a frame.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The length prefix announces more than the maximum.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// The announced length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// The body is not a valid message.
    #[error("malformed frame: {0}")]
    Malformed(String),
}

/// Encodes `message` as one frame, refusing one larger than `max`.
pub fn encode<T: Serialize>(message: &T, max: usize) -> Result<Vec<u8>, FrameError> {
    let body = postcard::to_stdvec(message).map_err(|e| FrameError::Malformed(e.to_string()))?;
    let max = max.min(u32::MAX as usize);
    if body.len() > max {
        return Err(FrameError::TooLarge { len: body.len(), max });
    }
    let mut frame = Vec::with_capacity(HEADER + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// Decodes the first frame of `bytes`: `Ok(None)` when more bytes are
/// needed, else the message and the bytes it used. The decoder the fuzz
/// target drives; [`read`] applies the same rules to a stream.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], max: usize) -> Result<Option<(T, usize)>, FrameError> {
    let Some(header) = bytes.get(..HEADER) else { return Ok(None) };
    let len = body_len(header.try_into().expect("four bytes"), max)?;
    let Some(body) = bytes.get(HEADER..HEADER + len) else { return Ok(None) };
    Ok(Some((decode_body(body)?, HEADER + len)))
}

/// Writes `message` as one frame.
pub async fn write<W, T>(writer: &mut W, message: &T, max: usize) -> Result<(), FrameError>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    let frame = encode(message, max)?;
    writer.write_all(&frame).await?;
    writer.flush().await?;
    Ok(())
}

/// Reads one frame. A connection closed cleanly before the first byte of a
/// frame is [`FrameError::Closed`].
pub async fn read<R, T>(reader: &mut R, max: usize) -> Result<T, FrameError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    let mut first = [0u8; 1];
    if reader.read(&mut first).await? == 0 {
        return Err(FrameError::Closed);
    }
    read_after(reader, first[0], max).await
}

/// Reads the rest of a frame whose first byte, `first`, was read already:
/// how a server waits for the next frame within one deadline and reads it
/// within another.
pub async fn read_after<R, T>(reader: &mut R, first: u8, max: usize) -> Result<T, FrameError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    let mut header = [first, 0, 0, 0];
    reader.read_exact(&mut header[1..]).await?;
    let len = body_len(header, max)?;
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).await?;
    decode_body(&body)
}

fn body_len(header: [u8; HEADER], max: usize) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(len)
}

fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    let (message, rest) = postcard::take_from_bytes(body).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(FrameError::Malformed(format!("{} bytes after the message", rest.len())));
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    enum Message {
        Ping(u64),
        Text(String),
    }

    #[test]
    fn a_frame_round_trips_and_says_how_much_it_used() {
        let mut bytes = encode(&Message::Text("hello".into()), MAX_FRAME).unwrap();
        bytes.extend_from_slice(&encode(&Message::Ping(7), MAX_FRAME).unwrap());
        let (first, used): (Message, usize) = decode(&bytes, MAX_FRAME).unwrap().unwrap();
        assert_eq!(first, Message::Text("hello".into()));
        let (second, _): (Message, usize) = decode(&bytes[used..], MAX_FRAME).unwrap().unwrap();
        assert_eq!(second, Message::Ping(7));
    }

    #[test]
    fn a_partial_frame_asks_for_more() {
        let bytes = encode(&Message::Text("hello".into()), MAX_FRAME).unwrap();
        for cut in 0..bytes.len() {
            assert!(decode::<Message>(&bytes[..cut], MAX_FRAME).unwrap().is_none(), "cut at {cut}");
        }
    }

    #[test]
    fn an_oversized_length_is_refused_before_allocating() {
        let bytes = [0xff, 0xff, 0xff, 0xff, 0];
        let err = decode::<Message>(&bytes, MAX_FRAME).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { len: 0xffff_ffff, max: MAX_FRAME }), "{err}");
        assert!(matches!(encode(&Message::Text("x".repeat(100)), 10), Err(FrameError::TooLarge { .. })));
    }

    #[test]
    fn garbage_and_trailing_bytes_are_malformed() {
        let garbage = [0, 0, 0, 2, 9, 9];
        assert!(matches!(decode::<Message>(&garbage, MAX_FRAME), Err(FrameError::Malformed(_))));
        let mut trailing = encode(&Message::Ping(1), MAX_FRAME).unwrap();
        trailing[3] += 1;
        trailing.push(0);
        assert!(matches!(decode::<Message>(&trailing, MAX_FRAME), Err(FrameError::Malformed(_))));
    }

    #[tokio::test]
    async fn a_stream_reads_what_was_written_then_sees_the_close() {
        // Room for the whole frame, so the write completes before the read.
        let (mut a, mut b) = tokio::io::duplex(4096);
        write(&mut a, &Message::Text("x".repeat(1000)), MAX_FRAME).await.unwrap();
        drop(a);
        let got: Message = read(&mut b, MAX_FRAME).await.unwrap();
        assert_eq!(got, Message::Text("x".repeat(1000)));
        assert!(matches!(read::<_, Message>(&mut b, MAX_FRAME).await, Err(FrameError::Closed)));
    }

    #[tokio::test]
    async fn a_stream_cut_mid_frame_is_an_io_error_not_a_close() {
        let (mut a, mut b) = tokio::io::duplex(64);
        let frame = encode(&Message::Text("hello".into()), MAX_FRAME).unwrap();
        a.write_all(&frame[..6]).await.unwrap();
        drop(a);
        assert!(matches!(read::<_, Message>(&mut b, MAX_FRAME).await, Err(FrameError::Io(_))));
    }

    /// Seeded mutations of valid frames (flipped, cut, repeated and random
    /// bytes) through the decoder: every outcome is a value or an error, never
    /// a panic or an allocation past the maximum.
    #[test]
    fn mutated_frames_never_panic() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let valid =
            [encode(&Message::Text("hello, frame".into()), MAX_FRAME).unwrap(), encode(&Message::Ping(u64::MAX), MAX_FRAME).unwrap()];
        for round in 0..20_000 {
            let mut bytes = valid[round % 2].clone();
            match next() % 4 {
                0 => {
                    let i = next() as usize % bytes.len();
                    bytes[i] ^= 1 << (next() % 8);
                }
                1 => bytes.truncate(next() as usize % bytes.len()),
                2 => bytes.extend_from_within(..),
                _ => bytes = (0..next() % 32).map(|_| next() as u8).collect(),
            }
            let _ = decode::<Message>(&bytes, 1 << 10);
        }
    }
}
