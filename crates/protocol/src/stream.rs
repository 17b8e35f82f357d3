//! Streams of messages: what a streaming method takes and returns.
//!
//! A [`Messages`] is an iterator of `Result<T, Status>` that ends after its
//! first error. It is pulled: whoever reads the next message runs the code
//! that makes it, so a producer is never ahead of its consumer (in a
//! process, nothing is buffered at all), and a consumer that drops its
//! `Messages` stops the producer.
//!
//! A server-streaming method returns one; a client-streaming method takes
//! one; a bidirectional method takes one and returns another, which may
//! pull the requests as it goes (`requests.and_then(…)`) or read them all
//! first.
//! Transports carry streams as [`Messages<Vec<u8>>`](Messages), one encoded
//! message each ([`crate::Transport::open`], [`crate::Service::open`]).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use prost::Message;

use crate::Status;

/// A stream of messages, each a `Result`; it ends after its first error.
pub struct Messages<T> {
    inner: Box<dyn Iterator<Item = Result<T, Status>> + Send>,
    ended: bool,
}

impl<T> Messages<T> {
    /// The messages `iter` yields, errors and all.
    pub fn new<I>(iter: I) -> Messages<T>
    where
        I: IntoIterator<Item = Result<T, Status>>,
        I::IntoIter: Send + 'static,
    {
        Messages {
            inner: Box::new(iter.into_iter()),
            ended: false,
        }
    }

    /// The messages `iter` yields, none of them an error.
    pub fn ok<I>(iter: I) -> Messages<T>
    where
        I: IntoIterator<Item = T>,
        I::IntoIter: Send + 'static,
        T: 'static,
    {
        Messages::new(iter.into_iter().map(Ok))
    }

    /// No message: the stream ends at once, without an error.
    pub fn empty() -> Messages<T>
    where
        T: Send + 'static,
    {
        Messages::new(std::iter::empty())
    }

    /// A stream that fails with `status` before any message.
    pub fn failed(status: Status) -> Messages<T>
    where
        T: Send + 'static,
    {
        Messages::new(std::iter::once(Err(status)))
    }

    /// Each message passed through `f`; an error from `f` ends the stream.
    pub fn and_then<U>(
        self,
        mut f: impl FnMut(T) -> Result<U, Status> + Send + 'static,
    ) -> Messages<U>
    where
        T: 'static,
    {
        Messages::new(Iterator::map(self, move |message| message.and_then(&mut f)))
    }

    /// The one message of a stream that must hold exactly one (a
    /// client-streaming method's answer, a server-streaming method's
    /// request); `what` names it in the error.
    ///
    /// # Errors
    /// The stream's own error, or `Internal` for no message or more than one.
    pub fn single(mut self, what: &str) -> Result<T, Status> {
        let first = self
            .next()
            .unwrap_or_else(|| Err(Status::internal(format!("{what}: no message"))))?;
        match self.next() {
            None => Ok(first),
            Some(Err(status)) => Err(status),
            Some(Ok(_)) => Err(Status::internal(format!("{what}: more than one message"))),
        }
    }

    /// This stream with each message pulled, and the stream dropped, inside
    /// the panic guard of `method` ([`crate::guard`]): a panic while making
    /// one ends the stream with `Internal` and sets `poisoned`. Generated
    /// servers wrap every stream a method returns, so the plugin's own code
    /// catches its panics.
    pub fn guarded(self, poisoned: Arc<AtomicBool>, method: &'static str) -> Messages<T>
    where
        T: 'static,
    {
        Messages::new(Guarded {
            inner: Some(self),
            poisoned,
            method,
        })
    }
}

/// See [`Messages::guarded`].
struct Guarded<T> {
    /// `None` once dropped.
    inner: Option<Messages<T>>,
    poisoned: Arc<AtomicBool>,
    method: &'static str,
}

impl<T> Iterator for Guarded<T> {
    type Item = Result<T, Status>;

    fn next(&mut self) -> Option<Self::Item> {
        let inner = self.inner.as_mut()?;
        crate::guard(&self.poisoned, self.method, || Ok(inner.next()))
            .unwrap_or_else(|e| Some(Err(e)))
    }
}

impl<T> Drop for Guarded<T> {
    /// A panic while the stream's own state is dropped poisons too.
    fn drop(&mut self) {
        let inner = self.inner.take();
        let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(inner)));
        if dropped.is_err() {
            self.poisoned
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl<T> Iterator for Messages<T> {
    type Item = Result<T, Status>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.ended {
            return None;
        }
        let next = self.inner.next();
        self.ended = !matches!(next, Some(Ok(_)));
        next
    }
}

impl<T> std::fmt::Debug for Messages<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Messages")
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

/// Encodes each message of a stream.
pub fn encoded<T: Message + 'static>(messages: Messages<T>) -> Messages<Vec<u8>> {
    messages.and_then(|message| Ok(message.encode_to_vec()))
}

/// Decodes each message of a stream; `what` names them in the error, of
/// `code` (`InvalidArgument` for requests, `Internal` for responses, as in
/// a unary call).
pub fn decoded<T: Message + Default + 'static>(
    messages: Messages<Vec<u8>>,
    what: impl std::fmt::Display + Send + 'static,
    code: crate::Code,
) -> Messages<T> {
    messages.and_then(move |bytes| {
        T::decode(&bytes[..])
            .map_err(|error| Status::new(code, format!("{what} does not decode: {error}")))
    })
}

/// Opens a stream of `method` through `transport`, held to `options`
/// (a deadline, a cancel token): the requests encoded as they are pulled,
/// the responses decoded as they are read. Generated clients call this.
///
/// # Errors
/// What stops the stream from opening ([`crate::Transport::open`]).
pub fn open<Q: Message + 'static, R: Message + Default + 'static>(
    transport: &(impl crate::Transport + ?Sized),
    options: &crate::context::CallOptions,
    method: &'static str,
    requests: Messages<Q>,
) -> Result<Messages<R>, Status> {
    let responses = crate::context::with(options, || transport.open(method, encoded(requests)))?;
    let what = Of("a response of", method);
    Ok(decoded(responses, what, crate::Code::Internal))
}

/// Serves a server-streaming method: its one request decoded, the
/// responses it returns encoded. Generated servers call this.
///
/// # Errors
/// `InvalidArgument` for a request that does not decode or not exactly one
/// request; the method's own error.
pub fn serve_server<Q: Message + Default + 'static, R: Message + 'static>(
    path: &'static str,
    requests: Messages<Vec<u8>>,
    method: impl FnOnce(Q) -> Result<Messages<R>, Status>,
) -> Result<Messages<Vec<u8>>, Status> {
    let mut requests = requests_to::<Q>(requests, Of("the request to", path));
    let request = match (requests.next(), requests.next()) {
        (Some(Ok(request)), None) => request,
        (Some(Err(status)), _) | (_, Some(Err(status))) => return Err(status),
        _ => {
            return Err(Status::invalid_argument(format!(
                "{path} takes exactly one request"
            )));
        }
    };
    Ok(encoded(method(request)?))
}

/// Serves a client-streaming method: its requests decoded as it reads
/// them, its one answer encoded. Generated servers call this.
///
/// # Errors
/// The method's own error; a request that does not decode ends the
/// requests with `InvalidArgument`.
pub fn serve_client<Q: Message + Default + 'static, R: Message>(
    path: &'static str,
    requests: Messages<Vec<u8>>,
    method: impl FnOnce(Messages<Q>) -> Result<R, Status>,
) -> Result<Messages<Vec<u8>>, Status> {
    let answer = method(requests_to(requests, Of("a request to", path)))?;
    Ok(Messages::ok([answer.encode_to_vec()]))
}

/// Serves a bidirectional method: requests decoded as it reads them,
/// responses encoded as they are read. Generated servers call this.
///
/// # Errors
/// As [`serve_client`].
pub fn serve_both<Q: Message + Default + 'static, R: Message + 'static>(
    path: &'static str,
    requests: Messages<Vec<u8>>,
    method: impl FnOnce(Messages<Q>) -> Result<Messages<R>, Status>,
) -> Result<Messages<Vec<u8>>, Status> {
    Ok(encoded(method(requests_to(
        requests,
        Of("a request to", path),
    ))?))
}

/// A method's requests, decoded; one that does not decode ends them with
/// `InvalidArgument`.
fn requests_to<Q: Message + Default + 'static>(
    requests: Messages<Vec<u8>>,
    what: Of,
) -> Messages<Q> {
    decoded(requests, what, crate::Code::InvalidArgument)
}

/// Which messages an error is about: "a response of /a.B/C".
struct Of(&'static str, &'static str);

impl std::fmt::Display for Of {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.0, self.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_ends_after_its_first_error() {
        let mut messages = Messages::new(vec![Ok(1), Err(Status::internal("broke")), Ok(3)]);
        assert_eq!(messages.next().map(Result::unwrap), Some(1));
        assert_eq!(
            messages.next().map(|m| m.unwrap_err().message().to_owned()),
            Some("broke".to_owned())
        );
        assert!(messages.next().is_none());
    }

    #[test]
    fn single_takes_exactly_one_message() {
        assert_eq!(Messages::ok([7]).single("the answer").unwrap(), 7);
        let none = Messages::<u8>::empty().single("the answer").unwrap_err();
        assert_eq!(none.message(), "the answer: no message");
        let two = Messages::ok([1, 2]).single("the answer").unwrap_err();
        assert_eq!(two.message(), "the answer: more than one message");
    }

    #[test]
    fn a_panic_while_making_a_message_ends_the_stream_and_poisons() {
        let poisoned = Arc::new(AtomicBool::new(false));
        let quiet = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let mut messages = Messages::ok((0..3).map(|i| if i == 1 { panic!("boom") } else { i }))
            .guarded(poisoned.clone(), "/a.B/C");
        let first = messages.next();
        let second = messages.next();
        std::panic::set_hook(quiet);
        assert_eq!(first.map(Result::unwrap), Some(0));
        let error = second.unwrap().unwrap_err();
        assert_eq!(error.message(), "/a.B/C panicked: boom");
        assert!(messages.next().is_none());
        assert!(poisoned.load(std::sync::atomic::Ordering::Relaxed));
    }
}
