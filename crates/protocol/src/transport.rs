//! The seam between typed code and mechanisms: [`Transport`] on the caller's
//! side, [`Service`] on the plugin's side. Both move encoded messages.

use std::any::Any;
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use prost::Message;

use crate::Status;
use crate::stream::Messages;

/// Carries encoded calls to a plugin. Every mechanism's plugin handle is one;
/// a generated client (`GreeterClient<T: Transport>`) is typed code over it.
///
/// `method` is the gRPC path, `/package.Service/Method`.
pub trait Transport: Send + Sync {
    /// Sends one call and waits for its answer.
    ///
    /// # Errors
    /// A [`Status`] from the plugin, or from the mechanism when the call
    /// could not be made (`Unavailable`, `DeadlineExceeded`, …).
    fn call(&self, method: &str, request: &[u8]) -> Result<Vec<u8>, Status>;

    /// Sends one call and hands the answer's bytes to `response` without
    /// keeping them: a mechanism whose answer sits in memory it will free
    /// (a shared library's buffer) lends it instead of copying it. The
    /// default copies through [`Transport::call`].
    ///
    /// # Errors
    /// As [`Transport::call`].
    fn call_with(
        &self,
        method: &str,
        request: &[u8],
        response: &mut dyn FnMut(&[u8]),
    ) -> Result<(), Status> {
        response(&self.call(method, request)?);
        Ok(())
    }

    /// Runs `f` with the plugin's own implementation of `service`, when the
    /// plugin lives in this process and was built with this very build (the
    /// native mechanism): generated clients then call it directly, with no
    /// encoding. `f` receives what the plugin's generated server exposes, an
    /// `Arc<dyn Trait>`, to downcast, calls `method` (a gRPC path) on it, and
    /// returns the call's code (`None` if it made no call). The default has
    /// none and does nothing.
    ///
    /// Returns a status that replaces the call's answer, if the transport
    /// refuses it (a call its caller cancelled while it ran, or answered
    /// after its deadline).
    ///
    /// The implementation is only borrowed, for the length of `f`: code in a
    /// library must not outlive the library.
    fn with_native(
        &self,
        service: &str,
        method: &'static str,
        f: &mut Direct<'_>,
    ) -> Option<Status> {
        let _ = (service, method, f);
        None
    }

    /// Opens a stream: a streaming method's requests go to the plugin as
    /// they are pulled, and its responses come back as the returned
    /// [`Messages`] is read, one encoded message each. A server-streaming
    /// method takes one request, a client-streaming one answers once.
    /// Dropping the responses cancels the stream. The default carries no
    /// streams.
    ///
    /// # Errors
    /// `Unimplemented` where the transport carries no streams; what stops
    /// the stream from opening (the plugin's own error included).
    fn open(&self, method: &str, requests: Messages<Vec<u8>>) -> Result<Messages<Vec<u8>>, Status> {
        drop(requests);
        Err(Status::unimplemented(format!(
            "{method} streams, and this transport carries unary calls only"
        )))
    }

    /// Sends one call from async code, made with `options` (a deadline, a
    /// cancel token; see [`crate::context`]). Dropping the future gives up
    /// on the call.
    ///
    /// The default makes the call when the future is first polled, on the
    /// polling thread, as [`Transport::call`] would: right for a transport
    /// whose calls are function calls (an in-process plugin's). A transport
    /// that waits on another process implements it so that the polling
    /// thread is never blocked for long.
    ///
    /// # Errors
    /// As [`Transport::call`].
    fn call_async<'a>(
        &'a self,
        method: &'a str,
        request: Vec<u8>,
        options: &'a crate::context::CallOptions,
    ) -> Answer<'a> {
        Box::pin(async move { crate::context::with(options, || self.call(method, &request)) })
    }

    /// [`Transport::with_native`] for a transport whose type the caller
    /// knows, with `f` called at most once: what generated clients call. A
    /// transport may implement it so that the whole direct path is inlined
    /// into the client; the default goes through `with_native`.
    #[inline]
    fn with_native_once<F>(&self, service: &str, method: &'static str, f: F) -> Option<Status>
    where
        Self: Sized,
        F: FnOnce(&(dyn Any + Send + Sync)) -> Option<crate::Code>,
    {
        let mut f = Some(f);
        self.with_native(service, method, &mut |implementation| {
            f.take().and_then(|f| f(implementation))
        })
    }
}

macro_rules! forward {
    ($($ty:ty),*) => {$(
        impl<T: Transport + ?Sized> Transport for $ty {
            fn call(&self, method: &str, request: &[u8]) -> Result<Vec<u8>, Status> {
                (**self).call(method, request)
            }

            fn call_with(
                &self,
                method: &str,
                request: &[u8],
                response: &mut dyn FnMut(&[u8]),
            ) -> Result<(), Status> {
                (**self).call_with(method, request, response)
            }

            fn with_native(
                &self,
                service: &str,
                method: &'static str,
                f: &mut Direct<'_>,
            ) -> Option<Status> {
                (**self).with_native(service, method, f)
            }

            fn open(
                &self,
                method: &str,
                requests: Messages<Vec<u8>>,
            ) -> Result<Messages<Vec<u8>>, Status> {
                (**self).open(method, requests)
            }

            fn call_async<'a>(
                &'a self,
                method: &'a str,
                request: Vec<u8>,
                options: &'a crate::context::CallOptions,
            ) -> Answer<'a> {
                (**self).call_async(method, request, options)
            }
        }
    )*};
}

forward!(&T, Arc<T>, Box<T>);

/// A call of a native plugin's implementation (see
/// [`Transport::with_native`]): given it, makes the call and returns its
/// code; `None` if the implementation is not of the type it calls.
pub type Direct<'a> = dyn FnMut(&(dyn Any + Send + Sync)) -> Option<crate::Code> + 'a;

/// A service's implementation, lent to a host of the same build (see
/// [`Service::shared`]). Code of the library lives behind it: it must be
/// dropped before the library is unloaded.
pub struct Shared {
    /// What [`Service::as_any`] returns, owned: an `Arc<dyn Trait>`.
    pub implementation: Box<dyn Any + Send + Sync>,
    /// Set once a call of the service panicked.
    pub poisoned: Arc<std::sync::atomic::AtomicBool>,
}

/// Serves encoded calls: what a plugin exposes to a mechanism. Generated
/// code implements it for `GreeterServer<T: Greeter>`.
pub trait Service: Send + Sync + 'static {
    /// The protobuf service's fully qualified name, `package.Service`.
    fn name(&self) -> &'static str;

    /// Decodes the request, runs the method, and appends the encoded
    /// response to `response` (which the caller passes empty, and may reuse
    /// between calls to spare an allocation).
    ///
    /// # Errors
    /// `Unimplemented` for a method the service lacks, `InvalidArgument` for
    /// a request that does not decode, or the method's own [`Status`].
    fn call(&self, method: &str, request: &[u8], response: &mut Vec<u8>) -> Result<(), Status>;

    /// Serves a stream (see [`Transport::open`]): the method's encoded
    /// requests in, its encoded responses out, made as they are pulled.
    /// Generated servers of services with streaming methods implement it.
    ///
    /// # Errors
    /// `Unimplemented` for a method that does not stream; what stops the
    /// stream from opening.
    fn open(&self, method: &str, requests: Messages<Vec<u8>>) -> Result<Messages<Vec<u8>>, Status> {
        drop(requests);
        Err(Status::unimplemented(format!(
            "{} has no streaming method {method}",
            self.name()
        )))
    }

    /// Whether `method` streams: it is opened ([`Service::open`]), not
    /// called. A mechanism's guest side asks, where its wire does not say
    /// (gRPC frames a unary call as it frames a stream).
    fn streams(&self, method: &str) -> bool {
        let _ = method;
        false
    }

    /// The implementation behind the service, for callers in the same
    /// process ([`Local`]). Generated servers return their `Arc<dyn Trait>`.
    /// A native plugin's host calls what [`Service::shared`] lends instead.
    fn as_any(&self) -> Option<&(dyn Any + Send + Sync)> {
        None
    }

    /// The implementation behind the service and the flag its panics set,
    /// for a host of the same build to keep beside the library and call
    /// directly (see [`Transport::with_native`]). Generated servers lend a
    /// clone of their `Arc<dyn Trait>`.
    fn shared(&self) -> Option<Shared> {
        None
    }

    /// Whether a call panicked in this service, leaving its state in doubt.
    fn poisoned(&self) -> bool {
        false
    }

    /// The SHA-256 of the `.proto` files the service was generated from
    /// (empty when unknown): part of a native plugin's fingerprint.
    fn proto_sha256(&self) -> &'static str {
        ""
    }
}

/// A typed client that can be built over any transport (generated code
/// implements it for `GreeterClient<T>`).
pub trait Client: Sized {
    /// The transport the client sends its calls through.
    type Transport: Transport;
    /// The protobuf service's fully qualified name, `package.Service`.
    const SERVICE: &'static str;
    /// A client whose calls go through `transport`.
    fn from_transport(transport: Self::Transport) -> Self;
}

/// Serves a [`Service`] in the caller's own process: a transport with no
/// mechanism, for tests and for calling a plugin's code directly.
#[derive(Debug, Clone)]
pub struct Local<S>(pub S);

impl<S: Service> Transport for Local<S> {
    fn call(&self, method: &str, request: &[u8]) -> Result<Vec<u8>, Status> {
        let mut response = Vec::new();
        self.0.call(method, request, &mut response)?;
        Ok(response)
    }

    fn with_native(&self, service: &str, _: &'static str, f: &mut Direct<'_>) -> Option<Status> {
        if let Some(native) = self.0.as_any().filter(|_| self.0.name() == service) {
            f(native);
        }
        None
    }

    fn open(&self, method: &str, requests: Messages<Vec<u8>>) -> Result<Messages<Vec<u8>>, Status> {
        self.0.open(method, requests)
    }
}

/// Encodes `request`, sends it through `transport`, decodes the response.
/// Generated clients call this.
///
/// # Errors
/// The transport's [`Status`], or `Internal` when the response does not decode.
pub fn unary<Q: Message, R: Message + Default>(
    transport: &(impl Transport + ?Sized),
    method: &str,
    request: &Q,
) -> Result<R, Status> {
    thread_local! {
        /// Reused for encoding requests, to spare an allocation per call.
        static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    let mut decoded = None;
    let mut send = |bytes: &[u8]| {
        transport.call_with(method, bytes, &mut |answer| {
            decoded = Some(R::decode(answer));
        })
    };
    BUFFER.with(|buffer| match buffer.try_borrow_mut() {
        Ok(mut buffer) => {
            buffer.clear();
            request
                .encode(&mut *buffer)
                .expect("a Vec grows to fit any message");
            send(&buffer)
        }
        // A call made while this thread is inside another (a plugin calling
        // back into the host): encode into a buffer of its own.
        Err(_) => send(&request.encode_to_vec()),
    })?;
    match decoded {
        Some(Ok(response)) => Ok(response),
        Some(Err(error)) => Err(Status::internal(format!(
            "the response to {method} does not decode: {error}"
        ))),
        None => Err(Status::internal(format!(
            "the transport returned no response to {method}"
        ))),
    }
}

/// An async call's answer, the encoded response ([`Transport::call_async`]).
pub type Answer<'a> = Pin<Box<dyn Future<Output = Result<Vec<u8>, Status>> + Send + 'a>>;

/// [`unary`] from async code: encodes `request`, sends it through
/// `transport` made with `options`, decodes the response. Generated
/// clients' `_async` methods call this.
///
/// # Errors
/// The transport's [`Status`], or `Internal` when the response does not decode.
pub async fn unary_async<Q: Message, R: Message + Default>(
    transport: &(impl Transport + ?Sized),
    options: &crate::context::CallOptions,
    method: &str,
    request: &Q,
) -> Result<R, Status> {
    let answer = transport
        .call_async(method, request.encode_to_vec(), options)
        .await?;
    R::decode(&answer[..]).map_err(|error| {
        Status::internal(format!("the response to {method} does not decode: {error}"))
    })
}

/// Decodes a request, runs `method` on it, appends its encoded response to
/// `response`. Generated servers call this.
///
/// # Errors
/// `InvalidArgument` when the request does not decode; `method`'s own error.
pub fn handle<Q: Message + Default, R: Message>(
    path: &str,
    request: &[u8],
    response: &mut Vec<u8>,
    method: impl FnOnce(Q) -> Result<R, Status>,
) -> Result<(), Status> {
    let request = Q::decode(request).map_err(|error| {
        Status::invalid_argument(format!("the request to {path} does not decode: {error}"))
    })?;
    method(request)?
        .encode(response)
        .expect("a Vec grows to fit any message");
    Ok(())
}
