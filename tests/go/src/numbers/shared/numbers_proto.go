// Hand-written equivalent of what protoc-gen-go 1.3 (plugins=grpc) emits for
// examples/numbers/manifests/numbers.proto:
//
//	syntax = "proto3";
//	package outlet.examples.numbers.v1;
//	service Numbers {
//	  rpc Count(CountRequest) returns (stream Number);
//	  rpc Sum(stream Number) returns (SumReply);
//	  rpc Echo(stream Number) returns (stream Number);
//	}
//	message CountRequest { uint64 n = 1; uint32 payload_bytes = 2; }
//	message Number { uint64 value = 1; bytes payload = 2; }
//	message SumReply { uint64 sum = 1; uint64 count = 2; }
//
// golang/protobuf 1.3 (APIv1) marshals these structs from their field tags.

package shared

import (
	"context"

	"github.com/golang/protobuf/proto"
	"google.golang.org/grpc"
)

// CountRequest is outlet.examples.numbers.v1.CountRequest.
type CountRequest struct {
	N            uint64 `protobuf:"varint,1,opt,name=n,proto3" json:"n,omitempty"`
	PayloadBytes uint32 `protobuf:"varint,2,opt,name=payload_bytes,json=payloadBytes,proto3" json:"payload_bytes,omitempty"`
}

func (m *CountRequest) Reset()         { *m = CountRequest{} }
func (m *CountRequest) String() string { return proto.CompactTextString(m) }
func (*CountRequest) ProtoMessage()    {}

// Number is outlet.examples.numbers.v1.Number.
type Number struct {
	Value   uint64 `protobuf:"varint,1,opt,name=value,proto3" json:"value,omitempty"`
	Payload []byte `protobuf:"bytes,2,opt,name=payload,proto3" json:"payload,omitempty"`
}

func (m *Number) Reset()         { *m = Number{} }
func (m *Number) String() string { return proto.CompactTextString(m) }
func (*Number) ProtoMessage()    {}

// SumReply is outlet.examples.numbers.v1.SumReply.
type SumReply struct {
	Sum   uint64 `protobuf:"varint,1,opt,name=sum,proto3" json:"sum,omitempty"`
	Count uint64 `protobuf:"varint,2,opt,name=count,proto3" json:"count,omitempty"`
}

func (m *SumReply) Reset()         { *m = SumReply{} }
func (m *SumReply) String() string { return proto.CompactTextString(m) }
func (*SumReply) ProtoMessage()    {}

func init() {
	proto.RegisterType((*CountRequest)(nil), "outlet.examples.numbers.v1.CountRequest")
	proto.RegisterType((*Number)(nil), "outlet.examples.numbers.v1.Number")
	proto.RegisterType((*SumReply)(nil), "outlet.examples.numbers.v1.SumReply")
}

const service = "outlet.examples.numbers.v1.Numbers"

var numbersServiceDesc = grpc.ServiceDesc{
	ServiceName: service,
	HandlerType: (*NumbersServer)(nil),
	Methods:     []grpc.MethodDesc{},
	Streams: []grpc.StreamDesc{
		{StreamName: "Count", Handler: countHandler, ServerStreams: true},
		{StreamName: "Sum", Handler: sumHandler, ClientStreams: true},
		{StreamName: "Echo", Handler: echoHandler, ServerStreams: true, ClientStreams: true},
	},
	Metadata: "numbers.proto",
}

// NumbersClient is the client API for the Numbers service.
type NumbersClient interface {
	Count(ctx context.Context, in *CountRequest, opts ...grpc.CallOption) (Numbers_CountClient, error)
	Sum(ctx context.Context, opts ...grpc.CallOption) (Numbers_SumClient, error)
	Echo(ctx context.Context, opts ...grpc.CallOption) (Numbers_EchoClient, error)
}

type numbersClient struct{ cc grpc.ClientConnInterface }

// NewNumbersClient returns a Numbers client over cc.
func NewNumbersClient(cc grpc.ClientConnInterface) NumbersClient { return &numbersClient{cc} }

func (c *numbersClient) Count(ctx context.Context, in *CountRequest, opts ...grpc.CallOption) (Numbers_CountClient, error) {
	stream, err := c.cc.NewStream(ctx, &numbersServiceDesc.Streams[0], "/"+service+"/Count", opts...)
	if err != nil {
		return nil, err
	}
	x := &numbersCountClient{stream}
	if err := x.ClientStream.SendMsg(in); err != nil {
		return nil, err
	}
	if err := x.ClientStream.CloseSend(); err != nil {
		return nil, err
	}
	return x, nil
}

// Numbers_CountClient reads Count's numbers.
type Numbers_CountClient interface {
	Recv() (*Number, error)
	grpc.ClientStream
}

type numbersCountClient struct{ grpc.ClientStream }

func (x *numbersCountClient) Recv() (*Number, error) {
	m := new(Number)
	if err := x.ClientStream.RecvMsg(m); err != nil {
		return nil, err
	}
	return m, nil
}

func (c *numbersClient) Sum(ctx context.Context, opts ...grpc.CallOption) (Numbers_SumClient, error) {
	stream, err := c.cc.NewStream(ctx, &numbersServiceDesc.Streams[1], "/"+service+"/Sum", opts...)
	if err != nil {
		return nil, err
	}
	return &numbersSumClient{stream}, nil
}

// Numbers_SumClient sends Sum's numbers and reads its reply.
type Numbers_SumClient interface {
	Send(*Number) error
	CloseAndRecv() (*SumReply, error)
	grpc.ClientStream
}

type numbersSumClient struct{ grpc.ClientStream }

func (x *numbersSumClient) Send(m *Number) error { return x.ClientStream.SendMsg(m) }

func (x *numbersSumClient) CloseAndRecv() (*SumReply, error) {
	if err := x.ClientStream.CloseSend(); err != nil {
		return nil, err
	}
	m := new(SumReply)
	if err := x.ClientStream.RecvMsg(m); err != nil {
		return nil, err
	}
	return m, nil
}

func (c *numbersClient) Echo(ctx context.Context, opts ...grpc.CallOption) (Numbers_EchoClient, error) {
	stream, err := c.cc.NewStream(ctx, &numbersServiceDesc.Streams[2], "/"+service+"/Echo", opts...)
	if err != nil {
		return nil, err
	}
	return &numbersEchoClient{stream}, nil
}

// Numbers_EchoClient sends Echo's numbers and reads them back.
type Numbers_EchoClient interface {
	Send(*Number) error
	Recv() (*Number, error)
	grpc.ClientStream
}

type numbersEchoClient struct{ grpc.ClientStream }

func (x *numbersEchoClient) Send(m *Number) error { return x.ClientStream.SendMsg(m) }

func (x *numbersEchoClient) Recv() (*Number, error) {
	m := new(Number)
	if err := x.ClientStream.RecvMsg(m); err != nil {
		return nil, err
	}
	return m, nil
}

// NumbersServer is the server API for the Numbers service.
type NumbersServer interface {
	Count(*CountRequest, Numbers_CountServer) error
	Sum(Numbers_SumServer) error
	Echo(Numbers_EchoServer) error
}

// RegisterNumbersServer registers srv as the Numbers service on s.
func RegisterNumbersServer(s *grpc.Server, srv NumbersServer) {
	s.RegisterService(&numbersServiceDesc, srv)
}

// Numbers_CountServer sends Count's numbers.
type Numbers_CountServer interface {
	Send(*Number) error
	grpc.ServerStream
}

type numbersCountServer struct{ grpc.ServerStream }

func (x *numbersCountServer) Send(m *Number) error { return x.ServerStream.SendMsg(m) }

func countHandler(srv interface{}, stream grpc.ServerStream) error {
	m := new(CountRequest)
	if err := stream.RecvMsg(m); err != nil {
		return err
	}
	return srv.(NumbersServer).Count(m, &numbersCountServer{stream})
}

// Numbers_SumServer reads Sum's numbers and sends its reply.
type Numbers_SumServer interface {
	SendAndClose(*SumReply) error
	Recv() (*Number, error)
	grpc.ServerStream
}

type numbersSumServer struct{ grpc.ServerStream }

func (x *numbersSumServer) SendAndClose(m *SumReply) error { return x.ServerStream.SendMsg(m) }

func (x *numbersSumServer) Recv() (*Number, error) {
	m := new(Number)
	if err := x.ServerStream.RecvMsg(m); err != nil {
		return nil, err
	}
	return m, nil
}

func sumHandler(srv interface{}, stream grpc.ServerStream) error {
	return srv.(NumbersServer).Sum(&numbersSumServer{stream})
}

// Numbers_EchoServer reads Echo's numbers and sends them back.
type Numbers_EchoServer interface {
	Send(*Number) error
	Recv() (*Number, error)
	grpc.ServerStream
}

type numbersEchoServer struct{ grpc.ServerStream }

func (x *numbersEchoServer) Send(m *Number) error { return x.ServerStream.SendMsg(m) }

func (x *numbersEchoServer) Recv() (*Number, error) {
	m := new(Number)
	if err := x.ServerStream.RecvMsg(m); err != nil {
		return nil, err
	}
	return m, nil
}

func echoHandler(srv interface{}, stream grpc.ServerStream) error {
	return srv.(NumbersServer).Echo(&numbersEchoServer{stream})
}
