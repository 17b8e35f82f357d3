//! The seam between typed code and mechanisms: [`Transport`] on the caller's
//! side, [`Service`] on the plugin's side. Both move encoded messages.

use std::sync::Arc;

use prost::Message;

use crate::Status;

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
}

impl<T: Transport + ?Sized> Transport for &T {
    fn call(&self, method: &str, request: &[u8]) -> Result<Vec<u8>, Status> {
        (**self).call(method, request)
    }
}

impl<T: Transport + ?Sized> Transport for Arc<T> {
    fn call(&self, method: &str, request: &[u8]) -> Result<Vec<u8>, Status> {
        (**self).call(method, request)
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn call(&self, method: &str, request: &[u8]) -> Result<Vec<u8>, Status> {
        (**self).call(method, request)
    }
}

/// Serves encoded calls: what a plugin exposes to a mechanism. Generated
/// code implements it for `GreeterServer<T: Greeter>`.
pub trait Service: Send + Sync + 'static {
    /// The protobuf service's fully qualified name, `package.Service`.
    fn name(&self) -> &'static str;

    /// Decodes the request, runs the method, encodes the response.
    ///
    /// # Errors
    /// `Unimplemented` for a method the service lacks, `InvalidArgument` for
    /// a request that does not decode, or the method's own [`Status`].
    fn call(&self, method: &str, request: &[u8]) -> Result<Vec<u8>, Status>;
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
        self.0.call(method, request)
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
    let bytes = transport.call(method, &request.encode_to_vec())?;
    R::decode(&bytes[..]).map_err(|error| {
        Status::internal(format!("the response to {method} does not decode: {error}"))
    })
}

/// Decodes a request, runs `method` on it, encodes its response. Generated
/// servers call this.
///
/// # Errors
/// `InvalidArgument` when the request does not decode; `method`'s own error.
pub fn handle<Q: Message + Default, R: Message>(
    path: &str,
    request: &[u8],
    method: impl FnOnce(Q) -> Result<R, Status>,
) -> Result<Vec<u8>, Status> {
    let request = Q::decode(request).map_err(|error| {
        Status::invalid_argument(format!("the request to {path} does not decode: {error}"))
    })?;
    Ok(method(request)?.encode_to_vec())
}
