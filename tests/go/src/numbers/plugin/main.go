// Command numbers-go-plugin is a go-plugin gRPC plugin serving Numbers as
// Outlet's examples/numbers plugins do: Count makes 1..n, each with
// payload_bytes of 'n'; Sum adds what it is sent; Echo sends each number
// back, and fails with InvalidArgument at math.MaxUint64.
package main

import (
	"bytes"
	"io"
	"math"
	"os"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"numbers/shared"
)

type counting struct{}

func (counting) Count(req *shared.CountRequest, stream shared.Numbers_CountServer) error {
	payload := bytes.Repeat([]byte{'n'}, int(req.PayloadBytes))
	for value := uint64(1); value <= req.N && value != 0; value++ {
		if err := stream.Send(&shared.Number{Value: value, Payload: payload}); err != nil {
			return err
		}
	}
	return nil
}

func (counting) Sum(stream shared.Numbers_SumServer) error {
	var reply shared.SumReply
	for {
		n, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(&reply)
		}
		if err != nil {
			return err
		}
		reply.Sum += n.Value
		reply.Count++
	}
}

func (counting) Echo(stream shared.Numbers_EchoServer) error {
	for {
		n, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if n.Value == math.MaxUint64 {
			return status.Error(codes.InvalidArgument, "Echo refuses u64::MAX")
		}
		if err := stream.Send(n); err != nil {
			return err
		}
	}
}

func main() {
	logger := hclog.New(&hclog.LoggerOptions{
		Level:      hclog.Warn,
		Output:     os.Stderr,
		JSONFormat: true,
	})
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: shared.Handshake,
		Plugins: map[string]plugin.Plugin{
			shared.PluginName: &shared.NumbersPlugin{Impl: counting{}},
		},
		GRPCServer: plugin.DefaultGRPCServer,
		Logger:     logger,
	})
}
