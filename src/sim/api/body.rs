//! The response body of the API server: a whole buffer, or a stream of chunks for watches and
//! followed logs.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::mpsc;

/// A response body.
#[derive(Debug)]
pub enum Body {
    /// A complete body, taken on the first poll.
    Full(Option<Bytes>),
    /// Chunks sent by a producer task; the body ends when the task drops its sender.
    Stream(mpsc::Receiver<Bytes>),
}

impl Body {
    /// A complete body.
    pub fn full(data: impl Into<Bytes>) -> Self {
        Self::Full(Some(data.into()))
    }

    /// An empty body.
    #[must_use]
    pub fn empty() -> Self {
        Self::Full(None)
    }

    /// A streaming body and the sender that feeds it.
    #[must_use]
    pub fn channel() -> (mpsc::Sender<Bytes>, Self) {
        let (tx, rx) = mpsc::channel(64);
        (tx, Self::Stream(rx))
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Self::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Self::Stream(rx) => rx
                .poll_recv(cx)
                .map(|chunk| chunk.map(|c| Ok(Frame::data(c)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Self::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(Some(d)) => SizeHint::with_exact(d.len() as u64),
            Self::Full(None) => SizeHint::with_exact(0),
            Self::Stream(_) => SizeHint::default(),
        }
    }
}
