//! [`Plugin`]: who the plugin is, what it serves, and the core protocol.

use std::collections::BTreeMap;

use crate::core::{
    self, ConfigureRequest, ConfigureResponse, HealthRequest, HealthResponse, HelloRequest,
    HelloResponse, ShutdownRequest, ShutdownResponse, health_response::ServingStatus,
};
use crate::{CORE_VERSIONS, Service, Status, capability, handle};

type ConfigureHook = Box<dyn Fn(&BTreeMap<String, String>) -> Result<(), Status> + Send + Sync>;

/// A plugin: its name and version, the interface versions it speaks, its
/// services, and what it does on Configure. Every mechanism serves it the
/// same way: the core protocol (Hello, Configure, Health, Shutdown) is
/// answered here, every other call goes to the service it names.
///
/// # Examples
/// ```
/// use outlet_protocol::{Plugin, core, prost::Message};
///
/// let plugin = Plugin::new("greeter", "1.0.0").versions(&[1, 2]);
/// let hello = plugin.call(core::HELLO, &core::HelloRequest::default().encode_to_vec())?;
/// let hello = core::HelloResponse::decode(&hello[..]).unwrap();
/// assert_eq!((hello.name.as_str(), hello.app_versions), ("greeter", vec![1, 2]));
/// # Ok::<(), outlet_protocol::Status>(())
/// ```
pub struct Plugin {
    name: String,
    version: String,
    versions: Vec<u32>,
    capabilities: Vec<String>,
    services: Vec<Box<dyn Service>>,
    configure: Option<ConfigureHook>,
    health: Option<HealthHook>,
}

/// What `on_health` installs: `Ok` for serving, else why not.
type HealthHook = Box<dyn Fn() -> Result<(), Status> + Send + Sync>;

impl Plugin {
    /// A plugin with no services yet, speaking interface version 1.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Plugin {
        Plugin {
            name: name.into(),
            version: version.into(),
            versions: vec![1],
            capabilities: Vec::new(),
            services: Vec::new(),
            configure: None,
            health: None,
        }
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The plugin's release version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The interface versions it speaks, as [`Plugin::versions`] set them.
    pub fn app_versions(&self) -> &[u32] {
        &self.versions
    }

    /// The interface versions it speaks.
    pub fn versions(mut self, versions: &[u32]) -> Plugin {
        self.versions = versions.to_vec();
        self
    }

    /// Announces a capability in Hello.
    pub fn capability(mut self, capability: impl Into<String>) -> Plugin {
        self.capabilities.push(capability.into());
        self
    }

    /// Adds a service: a generated `XServer` around the implementation.
    pub fn service(mut self, service: impl Service) -> Plugin {
        self.services.push(Box::new(service));
        self
    }

    /// Runs `hook` with the whole new config on every Configure, and
    /// announces the `configure` capability. An error refuses the config.
    ///
    /// On the exec mechanism, every call starts a fresh process, so the hook
    /// also runs before each call with the config the host holds.
    pub fn on_configure(
        mut self,
        hook: impl Fn(&BTreeMap<String, String>) -> Result<(), Status> + Send + Sync + 'static,
    ) -> Plugin {
        // Generic, so this closure is compiled into the plugin's own code
        // and a panic in the hook is caught there (see `crate::guard`).
        let poisoned = std::sync::atomic::AtomicBool::new(false);
        self.configure = Some(Box::new(move |config| {
            crate::guard(&poisoned, core::CONFIGURE, || hook(config))
        }));
        self.capabilities.push(capability::CONFIGURE.into());
        self
    }

    /// Runs `hook` for every Health check: `Ok` answers `SERVING`, an error
    /// `NOT_SERVING` with its message. Without a hook, Health answers
    /// `SERVING` whenever the plugin can answer at all.
    pub fn on_health(
        mut self,
        hook: impl Fn() -> Result<(), String> + Send + Sync + 'static,
    ) -> Plugin {
        // Generic, so this closure is compiled into the plugin's own code
        // and a panic in the hook is caught there (see `crate::guard`).
        let poisoned = std::sync::atomic::AtomicBool::new(false);
        self.health = Some(Box::new(move || {
            crate::guard(&poisoned, core::HEALTH, || {
                hook().map_err(Status::unavailable)
            })
        }));
        self
    }

    /// What the plugin says in Hello.
    pub fn hello(&self) -> HelloResponse {
        HelloResponse {
            name: self.name.clone(),
            version: self.version.clone(),
            core_versions: CORE_VERSIONS.to_vec(),
            app_versions: self.versions.clone(),
            capabilities: self.capabilities.clone(),
            services: self.services.iter().map(|s| s.name().to_owned()).collect(),
        }
    }

    /// Applies a config through the `on_configure` hook, if there is one.
    ///
    /// # Errors
    /// The hook's error.
    pub fn configure(&self, config: &BTreeMap<String, String>) -> Result<(), Status> {
        match &self.configure {
            Some(hook) => hook(config),
            None => Ok(()),
        }
    }

    /// What each service lends a host of the same build to call directly
    /// (see [`Service::shared`](crate::Service::shared)), by service name;
    /// nothing unless every service lends, for a host that calls directly
    /// must know of every service's panics from the flags it is lent.
    pub fn shared(&self) -> Vec<(&'static str, crate::Shared)> {
        self.services
            .iter()
            .map(|s| Some((s.name(), s.shared()?)))
            .collect::<Option<_>>()
            .unwrap_or_default()
    }

    /// The service of that name.
    pub fn find_service(&self, name: &str) -> Option<&dyn Service> {
        self.services
            .iter()
            .find(|s| s.name() == name)
            .map(|s| &**s)
    }

    /// Whether a call panicked in any of its services.
    pub fn poisoned(&self) -> bool {
        self.services.iter().any(|s| s.poisoned())
    }

    /// Handles one call and returns the encoded response; see [`Plugin::handle`].
    ///
    /// # Errors
    /// As [`Plugin::handle`].
    pub fn call(&self, method: &str, request: &[u8]) -> Result<Vec<u8>, Status> {
        let mut response = Vec::new();
        self.handle(method, request, &mut response)?;
        Ok(response)
    }

    /// Handles one call: the core protocol here, anything else by the service
    /// the path names. Appends the encoded response to `response`. Each
    /// mechanism's guest side calls this for every call its process serves.
    ///
    /// # Errors
    /// `Unimplemented` for a service the plugin lacks; the service's errors.
    ///
    /// Each call runs in a `tracing` span (target `outlet::serve`, level
    /// TRACE) with the plugin, method, code and trace id: nothing when no
    /// subscriber wants it.
    pub fn handle(
        &self,
        method: &str,
        request: &[u8],
        response: &mut Vec<u8>,
    ) -> Result<(), Status> {
        let span = tracing::trace_span!(
            target: "outlet::serve",
            "serve",
            plugin = %self.name,
            method,
            code = tracing::field::Empty,
            trace_id = tracing::field::Empty,
        );
        if span.is_disabled() {
            return self.dispatch(method, request, response);
        }
        if let Some(trace) = crate::context::trace() {
            span.record("trace_id", trace.trace_id());
        }
        let _entered = span.enter();
        let answer = self.dispatch(method, request, response);
        let code = answer
            .as_ref()
            .map_or_else(Status::code, |()| crate::Code::Ok);
        span.record("code", tracing::field::display(code));
        answer
    }

    /// Serves a stream (see [`crate::Transport::open`]) by the service the
    /// path names. Each mechanism's guest side that carries streams calls
    /// this.
    ///
    /// # Errors
    /// `Unimplemented` for a service the plugin lacks or a method that does
    /// not stream; what stops the stream from opening.
    pub fn open(
        &self,
        method: &str,
        requests: crate::Messages<Vec<u8>>,
    ) -> Result<crate::Messages<Vec<u8>>, Status> {
        self.service_of(method)?.open(method, requests)
    }

    /// Whether the method at `path` streams ([`Service::streams`]).
    pub fn streams(&self, path: &str) -> bool {
        self.service_of(path)
            .is_ok_and(|service| service.streams(path))
    }

    /// The service a gRPC path names: with one service, that one, which
    /// checks the path itself.
    fn service_of(&self, method: &str) -> Result<&dyn Service, Status> {
        if let [service] = &self.services[..] {
            return Ok(&**service);
        }
        let service = method
            .strip_prefix('/')
            .and_then(|path| path.split_once('/'))
            .map(|(service, _)| service)
            .unwrap_or_default();
        match self.services.iter().find(|s| s.name() == service) {
            Some(s) => Ok(&**s),
            None => Err(Status::unimplemented(format!(
                "plugin `{}` serves no service `{service}` (method {method})",
                self.name
            ))),
        }
    }

    fn dispatch(&self, method: &str, request: &[u8], response: &mut Vec<u8>) -> Result<(), Status> {
        match method {
            core::HELLO => handle(
                method,
                request,
                response,
                |_: HelloRequest| Ok(self.hello()),
            ),
            core::CONFIGURE => handle(method, request, response, |r: ConfigureRequest| {
                let config = r.config.into_iter().collect();
                self.configure(&config).map(|()| ConfigureResponse {})
            }),
            core::HEALTH => handle(method, request, response, |_: HealthRequest| {
                let answer = self.health.as_ref().map_or(Ok(()), |hook| hook());
                Ok(match answer {
                    Ok(()) => HealthResponse {
                        status: ServingStatus::Serving.into(),
                        message: String::new(),
                    },
                    Err(why) => HealthResponse {
                        status: ServingStatus::NotServing.into(),
                        message: why.message().to_owned(),
                    },
                })
            }),
            core::SHUTDOWN => handle(method, request, response, |_: ShutdownRequest| {
                Ok(ShutdownResponse {})
            }),
            _ => self.service_of(method)?.call(method, request, response),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::context::{self, CallOptions, TraceContext};

    #[test]
    fn a_plugin_lends_for_direct_calls_only_if_every_service_does() {
        struct Named(&'static str, bool);
        impl Service for Named {
            fn name(&self) -> &'static str {
                self.0
            }
            fn call(&self, _: &str, _: &[u8], _: &mut Vec<u8>) -> Result<(), Status> {
                Ok(())
            }
            fn shared(&self) -> Option<crate::Shared> {
                self.1.then(|| crate::Shared {
                    implementation: Box::new(()),
                    poisoned: Arc::default(),
                })
            }
        }
        let lending = Plugin::new("p", "1")
            .service(Named("p.A", true))
            .service(Named("p.B", true));
        let names: Vec<_> = lending.shared().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["p.A", "p.B"]);
        // A hand-written service that lends nothing: the host could not see
        // its panics from the flags it is lent, so every call goes by path.
        let mixed = Plugin::new("p", "1")
            .service(Named("p.A", true))
            .service(Named("p.B", false));
        assert!(mixed.shared().is_empty());
    }

    #[test]
    fn each_call_served_runs_in_a_span_with_its_trace_id() {
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::TRACE)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
            .finish();
        let plugin = Plugin::new("spanned", "1");
        let trace = TraceContext::new(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "",
        )
        .unwrap();
        tracing::subscriber::with_default(subscriber, || {
            context::with(&CallOptions::new().trace(trace), || {
                let error = plugin.call("/s.S/Missing", &[]).unwrap_err();
                assert_eq!(error.code(), crate::Code::Unimplemented);
            })
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        for field in [
            "serve{",
            "plugin=spanned",
            "method=\"/s.S/Missing\"",
            "code=Unimplemented",
            "trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\"",
        ] {
            assert!(text.contains(field), "{field}: {text}");
        }
    }
}
