// Package shared holds what the numbers plugin and its host agree on: the
// handshake and the go-plugin glue that carries the Numbers service, whose
// methods stream, over gRPC.
package shared

import (
	"context"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// Handshake is an Outlet host's default (a manifest without [handshake]),
// so that Outlet's numbers plugin and this Go one load in either host.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "OUTLET_PLUGIN",
	MagicCookieValue: "outlet",
}

// PluginName is the key under which Numbers is served and dispensed.
const PluginName = "numbers"

// NumbersPlugin is a go-plugin GRPCPlugin. Impl is only needed on the
// plugin side; the host gets the gRPC client itself.
type NumbersPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl NumbersServer
}

// GRPCServer registers the Numbers service (plugin side).
func (p *NumbersPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	RegisterNumbersServer(s, p.Impl)
	return nil
}

// GRPCClient returns a NumbersClient that calls the plugin (host side).
func (p *NumbersPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return NewNumbersClient(c), nil
}

// PluginMap is the host's view: what it may dispense.
var PluginMap = map[string]plugin.Plugin{PluginName: &NumbersPlugin{}}
