// Command {{name}} is an Outlet plugin for the rpc mechanism, written in Go
// with HashiCorp go-plugin: a process the host starts and keeps, serving
// {{service}} over gRPC on a Unix socket. The service itself is in
// {{service_file}}; this file is go-plugin's side of it. Build it with
// ./build.sh.
package main

import (
	"context"
	"errors"
	"os"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// handshake must agree with the manifest: the host puts the magic cookie
// of its [handshake] ({{cookie_key}}={{cookie_value}}) in the plugin's environment, and
// ProtocolVersion must be one of its `versions`.
var handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "{{cookie_key}}",
	MagicCookieValue: "{{cookie_value}}",
}

// servicePlugin registers the service on the gRPC server go-plugin makes.
type servicePlugin struct {
	plugin.NetRPCUnsupportedPlugin
}

func (servicePlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	s.RegisterService(&serviceDesc, newServer())
	return nil
}

// GRPCClient is for a go-plugin host, and this is the plugin.
func (servicePlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (interface{}, error) {
	return nil, errors.New("{{name}} is a plugin, not a host")
}

func main() {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: handshake,
		Plugins:         map[string]plugin.Plugin{"{{name}}": servicePlugin{}},
		GRPCServer:      plugin.DefaultGRPCServer,
		// Log lines go to stderr as JSON, which the host turns into its
		// own log lines, tagged with the plugin's name.
		Logger: hclog.New(&hclog.LoggerOptions{
			Level:      hclog.Info,
			Output:     os.Stderr,
			JSONFormat: true,
		}),
	})
}
