//! The services a go-plugin plugin serves besides its own, with their gRPC
//! paths and messages (go-plugin's `internal/plugin/*.proto` and
//! `grpc.health.v1`). Written out by hand: a few small messages.

/// The name go-plugin checks health under.
pub const HEALTH_SERVICE: &str = "plugin";
/// `grpc.health.v1.Health/Check`.
pub const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";
/// `plugin.GRPCController/Shutdown`: the host asks the plugin to exit.
pub const SHUTDOWN: &str = "/plugin.GRPCController/Shutdown";
/// `plugin.GRPCBroker/StartStream`: connection info for extra connections.
pub const BROKER: &str = "/plugin.GRPCBroker/StartStream";
/// `plugin.GRPCStdio/StreamStdio`: the plugin's stdout and stderr (go-plugin 1.4 and later).
pub const STDIO: &str = "/plugin.GRPCStdio/StreamStdio";

/// `grpc.health.v1.HealthCheckRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HealthCheckRequest {
    /// The service asked about; go-plugin asks about [`HEALTH_SERVICE`].
    #[prost(string, tag = "1")]
    pub service: String,
}

/// `grpc.health.v1.HealthCheckResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HealthCheckResponse {
    /// [`SERVING`] when all is well.
    #[prost(int32, tag = "1")]
    pub status: i32,
}

/// `HealthCheckResponse.ServingStatus.SERVING`.
pub const SERVING: i32 = 1;
/// `HealthCheckResponse.ServingStatus.SERVICE_UNKNOWN`.
pub const SERVICE_UNKNOWN: i32 = 3;

/// `plugin.Empty`, the controller's request and response.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Empty {}

/// The broker id under which an Outlet host offers its services to the
/// plugin: it sends this id's connection info on the broker stream as soon
/// as the plugin is up, and the plugin dials it when it first calls the host.
/// (go-plugin's own ids count up from 1 and are passed in requests.)
pub const HOST_SERVICES_ID: u32 = 0x4f75_746c;

/// `plugin.ConnInfo`: the broker's message, naming a connection by id.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ConnInfo {
    /// The id both sides agreed on for the connection.
    #[prost(uint32, tag = "1")]
    pub service_id: u32,
    /// `unix` or `tcp`.
    #[prost(string, tag = "2")]
    pub network: String,
    /// Where to connect.
    #[prost(string, tag = "3")]
    pub address: String,
}

/// `plugin.StdioData`: a chunk of the plugin's stdout or stderr, streamed
/// by `plugin.GRPCStdio/StreamStdio` (go-plugin 1.4 and later).
#[derive(Clone, PartialEq, prost::Message)]
pub struct StdioData {
    /// 1 for stdout, 2 for stderr.
    #[prost(int32, tag = "1")]
    pub channel: i32,
    /// The bytes written.
    #[prost(bytes = "vec", tag = "2")]
    pub data: Vec<u8>,
}
