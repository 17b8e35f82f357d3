package main

import (
	"context"
	"os"

	"google.golang.org/grpc"
)

// server is the greeter: Greet answers "<greeting>, <name>!". The greeting
// is "Hello", or the plugin's environment variable GREETING, which the
// manifest may set (`[permissions] env = { GREETING = "Hi" }`). A plain
// go-plugin plugin does not take Outlet's Configure: leave the manifest's
// [config] empty.
type server struct {
	greeting string
}

func newServer() interface{} {
	greeting := os.Getenv("GREETING")
	if greeting == "" {
		greeting = "Hello"
	}
	return &server{greeting: greeting}
}

// Greet answers one call. GreetRequest and GreetResponse are in
// greeter.pb.go, which protoc-gen-go made from {{proto}}.
func (s *server) Greet(_ context.Context, req *GreetRequest) (*GreetResponse, error) {
	return &GreetResponse{Message: s.greeting + ", " + req.Name + "!"}, nil
}

// What follows tells gRPC how to call Greet, as protoc-gen-go's grpc
// plugin would write it.

// greeterServer is what the service's implementation must have.
type greeterServer interface {
	Greet(context.Context, *GreetRequest) (*GreetResponse, error)
}

// handleGreet decodes the request and calls Greet.
func handleGreet(srv interface{}, ctx context.Context, dec func(interface{}) error, interceptor grpc.UnaryServerInterceptor) (interface{}, error) {
	in := new(GreetRequest)
	if err := dec(in); err != nil {
		return nil, err
	}
	if interceptor == nil {
		return srv.(greeterServer).Greet(ctx, in)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: "/{{service}}/Greet"}
	handler := func(ctx context.Context, req interface{}) (interface{}, error) {
		return srv.(greeterServer).Greet(ctx, req.(*GreetRequest))
	}
	return interceptor(ctx, in, info, handler)
}

// serviceDesc is the service as gRPC serves it: its name and its methods.
var serviceDesc = grpc.ServiceDesc{
	ServiceName: "{{service}}",
	HandlerType: (*greeterServer)(nil),
	Methods: []grpc.MethodDesc{
		{MethodName: "Greet", Handler: handleGreet},
	},
	Streams:  []grpc.StreamDesc{},
	Metadata: "{{proto}}",
}
