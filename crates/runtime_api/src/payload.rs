//! A response body as the runtime's connection delivered it: hyper's read chunks, in order, never
//! gathered on the way to the caller. 6 MB arrives as a few dozen chunks and leaves as the same
//! chunks (hyper writes them with vectored writes), so the only copies of a response are the
//! kernel's; a small one is a single chunk. A reader that needs one slice (a destination's JSON,
//! a function URL's response document) asks for [`Payload::contiguous`], which copies only when
//! there is more than one chunk.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};

#[derive(Clone, Default)]
pub struct Payload {
    /// Never holds an empty chunk; one chunk is the common case.
    chunks: Chunks,
    len: usize,
}

#[derive(Clone)]
enum Chunks {
    One(Bytes),
    Many(Vec<Bytes>),
}

impl Default for Chunks {
    fn default() -> Self {
        Chunks::One(Bytes::new())
    }
}

impl Payload {
    /// The chunks of one body, in order.
    pub fn from_chunks(chunks: Vec<Bytes>) -> Self {
        let mut chunks: Vec<Bytes> = chunks.into_iter().filter(|c| !c.is_empty()).collect();
        let len = chunks.iter().map(Bytes::len).sum();
        match chunks.len() {
            0 => Payload::default(),
            1 => Payload {
                chunks: Chunks::One(chunks.swap_remove(0)),
                len,
            },
            _ => Payload {
                chunks: Chunks::Many(chunks),
                len,
            },
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The chunks, in order (none empty).
    pub fn chunks(&self) -> &[Bytes] {
        match &self.chunks {
            Chunks::One(b) if b.is_empty() => &[],
            Chunks::One(b) => std::slice::from_ref(b),
            Chunks::Many(chunks) => chunks,
        }
    }

    /// The body as one buffer: the chunk itself when there is one, else a copy of them all.
    pub fn contiguous(&self) -> Bytes {
        match &self.chunks {
            Chunks::One(b) => b.clone(),
            Chunks::Many(chunks) => {
                let mut all = BytesMut::with_capacity(self.len);
                for c in chunks {
                    all.extend_from_slice(c);
                }
                all.freeze()
            }
        }
    }

    /// An HTTP body that writes the chunks as they are, with its exact length.
    pub fn into_body(self) -> PayloadBody {
        let (next, rest) = match self.chunks {
            Chunks::One(b) => ((!b.is_empty()).then_some(b), Vec::new().into_iter()),
            Chunks::Many(chunks) => {
                let mut rest = chunks.into_iter();
                (rest.next(), rest)
            }
        };
        PayloadBody {
            next,
            rest,
            remaining: self.len as u64,
        }
    }
}

/// Why [`Payload::read`] could not read a body whole.
#[derive(Debug)]
pub enum ReadError {
    /// Over the limit (the rest is left unread).
    TooLarge,
    /// The connection failed mid-body.
    Broken(String),
}

impl Payload {
    /// Reads a body to its end as its chunks, refusing one of more than `limit` bytes.
    pub async fn read<B>(body: B, limit: usize) -> Result<Payload, ReadError>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        use http_body_util::BodyExt as _;
        let mut body = std::pin::pin!(http_body_util::Limited::new(body, limit));
        let mut chunks = PayloadBuilder::default();
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => {
                    if let Ok(data) = frame.into_data() {
                        chunks.push(data);
                    }
                }
                Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                    return Err(ReadError::TooLarge)
                }
                Err(e) => return Err(ReadError::Broken(e.to_string())),
            }
        }
        Ok(chunks.finish())
    }
}

/// Gathers a body's chunks as they arrive; one chunk (the usual small body) allocates nothing.
#[derive(Default)]
pub struct PayloadBuilder {
    /// The only chunk so far.
    one: Option<Bytes>,
    /// Every chunk, once there are two or more.
    many: Vec<Bytes>,
    len: usize,
}

impl PayloadBuilder {
    pub fn push(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        self.len += chunk.len();
        match self.one.take() {
            Some(first) => self.many = vec![first, chunk],
            None if self.many.is_empty() => self.one = Some(chunk),
            None => self.many.push(chunk),
        }
    }

    /// The bytes gathered so far.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn finish(self) -> Payload {
        match self.one {
            Some(one) => one.into(),
            None if self.many.is_empty() => Payload::default(),
            None => Payload {
                chunks: Chunks::Many(self.many),
                len: self.len,
            },
        }
    }
}

impl From<Bytes> for Payload {
    fn from(b: Bytes) -> Self {
        Payload {
            len: b.len(),
            chunks: Chunks::One(b),
        }
    }
}

impl From<Vec<u8>> for Payload {
    fn from(v: Vec<u8>) -> Self {
        Bytes::from(v).into()
    }
}

impl From<&'static [u8]> for Payload {
    fn from(s: &'static [u8]) -> Self {
        Bytes::from_static(s).into()
    }
}

impl From<&'static str> for Payload {
    fn from(s: &'static str) -> Self {
        Bytes::from_static(s.as_bytes()).into()
    }
}

/// Equal when the bytes are, however they are chunked.
impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.contiguous() == other.contiguous()
    }
}

impl Eq for Payload {}

impl PartialEq<[u8]> for Payload {
    fn eq(&self, other: &[u8]) -> bool {
        self.len == other.len() && self.contiguous() == other
    }
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.chunks {
            Chunks::One(b) => b.fmt(f),
            Chunks::Many(c) => write!(f, "Payload({} bytes in {} chunks)", self.len, c.len()),
        }
    }
}

/// [`Payload::into_body`].
pub struct PayloadBody {
    next: Option<Bytes>,
    rest: std::vec::IntoIter<Bytes>,
    remaining: u64,
}

impl Body for PayloadBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let chunk = this.next.take().map(|c| {
            this.remaining -= c.len() as u64;
            Ok(Frame::data(c))
        });
        this.next = this.rest.next();
        Poll::Ready(chunk)
    }

    fn is_end_stream(&self) -> bool {
        self.next.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn chunks_are_kept_and_gathered_only_when_asked() {
        let p = Payload::from_chunks(vec![
            Bytes::from_static(b"{\"a\""),
            Bytes::new(),
            Bytes::from_static(b": 1}"),
        ]);
        assert_eq!(p.len(), 8);
        assert!(matches!(&p.chunks, Chunks::Many(c) if c.len() == 2));
        assert_eq!(p.contiguous(), Bytes::from_static(b"{\"a\": 1}"));
        assert_eq!(p, Payload::from(Bytes::from_static(b"{\"a\": 1}")));
        // One chunk is handed on as it is, without a copy.
        let one = Bytes::from_static(b"[]");
        let p = Payload::from_chunks(vec![Bytes::new(), one.clone()]);
        assert_eq!(p.contiguous().as_ptr(), one.as_ptr());
        assert!(Payload::from_chunks(vec![]).is_empty());
        let mut b = PayloadBuilder::default();
        b.push(Bytes::new());
        b.push(Bytes::from_static(b"x"));
        assert!(b.one.is_some() && b.many.is_empty());
        b.push(Bytes::from_static(b"y"));
        let p = b.finish();
        assert_eq!((p.len(), p.contiguous()), (2, Bytes::from_static(b"xy")));
        assert!(PayloadBuilder::default().finish().is_empty());
        let mut b = PayloadBuilder::default();
        for c in [&b"a"[..], b"bc", b"", b"d"] {
            b.push(Bytes::from_static(c));
        }
        assert_eq!(b.len(), 4);
        let p = b.finish();
        assert_eq!(
            (p.chunks().len(), p.contiguous()),
            (3, Bytes::from_static(b"abcd"))
        );
    }

    #[tokio::test]
    async fn a_body_is_read_as_its_chunks_up_to_the_limit() {
        let two = || {
            Payload::from_chunks(vec![
                Bytes::from_static(b"{\"a\""),
                Bytes::from_static(b":1}"),
            ])
            .into_body()
        };
        let p = Payload::read(two(), 7).await.expect("within the limit");
        assert_eq!(
            (p.chunks().len(), p.contiguous()),
            (2, Bytes::from_static(b"{\"a\":1}"))
        );
        let over = Payload::read(two(), 6).await;
        assert!(matches!(over, Err(ReadError::TooLarge)), "{over:?}");
    }

    #[tokio::test]
    async fn the_body_writes_each_chunk_with_its_exact_length() {
        let p = Payload::from_chunks(vec![Bytes::from_static(b"ab"), Bytes::from_static(b"c")]);
        let mut body = p.into_body();
        assert_eq!(body.size_hint().exact(), Some(3));
        let first = body.frame().await.and_then(|f| f.ok()?.into_data().ok());
        assert_eq!(first.as_deref(), Some(&b"ab"[..]));
        assert_eq!(body.size_hint().exact(), Some(1));
        let rest = body.collect().await.map(|c| c.to_bytes()).ok();
        assert_eq!(rest.as_deref(), Some(&b"c"[..]));
        let empty = Payload::default().into_body();
        assert!(empty.is_end_stream());
        assert_eq!(empty.size_hint().exact(), Some(0));
    }
}
