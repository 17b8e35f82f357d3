// Package shared holds what the KV plugin and its host agree on: the
// handshake, the KV interface, and the go-plugin glue that carries KV over
// gRPC.
package shared

import (
	"context"
	"fmt"
	"strings"
	"time"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// Handshake must match on both sides: the host puts the cookie in the
// child's environment and the plugin refuses to run without it.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "BASIC_PLUGIN",
	MagicCookieValue: "hello",
}

// PluginName is the key under which KV is served and dispensed.
const PluginName = "kv"

// KV is the interface both ends program against.
type KV interface {
	Put(key string, value []byte) error
	Get(key string) ([]byte, error)
}

// KVPlugin is a go-plugin GRPCPlugin. Impl is only needed on the plugin
// side; net/rpc is not supported.
type KVPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl KV
}

// GRPCServer registers the proto.KV service (plugin side).
func (p *KVPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	RegisterKVServer(s, &kvServer{impl: p.Impl})
	return nil
}

// GRPCClient returns a KV that calls the plugin (host side).
func (p *KVPlugin) GRPCClient(ctx context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return &kvGRPCClient{client: NewKVClient(c)}, nil
}

// PluginMap is the host's view: what it may dispense.
var PluginMap = map[string]plugin.Plugin{PluginName: &KVPlugin{}}

type kvGRPCClient struct{ client KVClient }

func (c *kvGRPCClient) Put(key string, value []byte) error {
	_, err := c.client.Put(context.Background(), &PutRequest{Key: key, Value: value})
	return err
}

func (c *kvGRPCClient) Get(key string) ([]byte, error) {
	resp, err := c.client.Get(context.Background(), &GetRequest{Key: key})
	if err != nil {
		return nil, err
	}
	return resp.Value, nil
}

type kvServer struct{ impl KV }

// WaitKey is a key whose Get waits for the call's context to end (its
// deadline or the host's cancel), at most 10 s, then stores why under
// EndedKey, with the deadline the call came with: how the tests see a
// host's deadline and cancel arrive.
const (
	WaitKey  = "wait-for-the-context"
	EndedKey = "how-the-context-ended"
	// TraceKey is a key whose Get answers the traceparent the call came
	// with, as gRPC metadata.
	TraceKey = "the-calls-traceparent"
)

func (s *kvServer) Get(ctx context.Context, req *GetRequest) (*GetResponse, error) {
	if req.Key == WaitKey {
		left := "none"
		if deadline, ok := ctx.Deadline(); ok {
			left = fmt.Sprint(time.Until(deadline).Milliseconds())
		}
		select {
		case <-ctx.Done():
			ended := fmt.Sprintf("%v; deadline in %s ms", ctx.Err(), left)
			_ = s.impl.Put(EndedKey, []byte(ended))
			return nil, ctx.Err()
		case <-time.After(10 * time.Second):
			_ = s.impl.Put(EndedKey, []byte("not ended after 10 s"))
			return &GetResponse{}, nil
		}
	}
	if req.Key == TraceKey {
		md, _ := metadata.FromIncomingContext(ctx)
		return &GetResponse{Value: []byte(strings.Join(md.Get("traceparent"), ","))}, nil
	}
	v, err := s.impl.Get(req.Key)
	if err != nil {
		return nil, err
	}
	return &GetResponse{Value: v}, nil
}

func (s *kvServer) Put(_ context.Context, req *PutRequest) (*Empty, error) {
	if err := s.impl.Put(req.Key, req.Value); err != nil {
		return nil, err
	}
	return &Empty{}, nil
}
