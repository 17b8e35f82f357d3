// Hand-written equivalent of what protoc-gen-go 1.3 (plugins=grpc) emits for:
//
//	syntax = "proto3";
//	package proto;
//	message GetRequest { string key = 1; }
//	message GetResponse { bytes value = 1; }
//	message PutRequest { string key = 1; bytes value = 2; }
//	message Empty {}
//	service KV {
//	  rpc Get(GetRequest) returns (GetResponse);
//	  rpc Put(PutRequest) returns (Empty);
//	}
//
// golang/protobuf 1.3 (APIv1) marshals these structs from their field tags.

package shared

import (
	"context"

	"github.com/golang/protobuf/proto"
	"google.golang.org/grpc"
)

// GetRequest is proto.GetRequest.
type GetRequest struct {
	Key string `protobuf:"bytes,1,opt,name=key,proto3" json:"key,omitempty"`
}

func (m *GetRequest) Reset()         { *m = GetRequest{} }
func (m *GetRequest) String() string { return proto.CompactTextString(m) }
func (*GetRequest) ProtoMessage()    {}

// GetResponse is proto.GetResponse.
type GetResponse struct {
	Value []byte `protobuf:"bytes,1,opt,name=value,proto3" json:"value,omitempty"`
}

func (m *GetResponse) Reset()         { *m = GetResponse{} }
func (m *GetResponse) String() string { return proto.CompactTextString(m) }
func (*GetResponse) ProtoMessage()    {}

// PutRequest is proto.PutRequest.
type PutRequest struct {
	Key   string `protobuf:"bytes,1,opt,name=key,proto3" json:"key,omitempty"`
	Value []byte `protobuf:"bytes,2,opt,name=value,proto3" json:"value,omitempty"`
}

func (m *PutRequest) Reset()         { *m = PutRequest{} }
func (m *PutRequest) String() string { return proto.CompactTextString(m) }
func (*PutRequest) ProtoMessage()    {}

// Empty is proto.Empty.
type Empty struct{}

func (m *Empty) Reset()         { *m = Empty{} }
func (m *Empty) String() string { return proto.CompactTextString(m) }
func (*Empty) ProtoMessage()    {}

func init() {
	proto.RegisterType((*GetRequest)(nil), "proto.GetRequest")
	proto.RegisterType((*GetResponse)(nil), "proto.GetResponse")
	proto.RegisterType((*PutRequest)(nil), "proto.PutRequest")
	proto.RegisterType((*Empty)(nil), "proto.Empty")
}

// KVClient is the client API for the proto.KV service.
type KVClient interface {
	Get(ctx context.Context, in *GetRequest, opts ...grpc.CallOption) (*GetResponse, error)
	Put(ctx context.Context, in *PutRequest, opts ...grpc.CallOption) (*Empty, error)
}

type kvClient struct {
	cc grpc.ClientConnInterface
}

// NewKVClient returns a proto.KV client over cc.
func NewKVClient(cc grpc.ClientConnInterface) KVClient {
	return &kvClient{cc}
}

func (c *kvClient) Get(ctx context.Context, in *GetRequest, opts ...grpc.CallOption) (*GetResponse, error) {
	out := new(GetResponse)
	if err := c.cc.Invoke(ctx, "/proto.KV/Get", in, out, opts...); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *kvClient) Put(ctx context.Context, in *PutRequest, opts ...grpc.CallOption) (*Empty, error) {
	out := new(Empty)
	if err := c.cc.Invoke(ctx, "/proto.KV/Put", in, out, opts...); err != nil {
		return nil, err
	}
	return out, nil
}

// KVServer is the server API for the proto.KV service.
type KVServer interface {
	Get(context.Context, *GetRequest) (*GetResponse, error)
	Put(context.Context, *PutRequest) (*Empty, error)
}

// RegisterKVServer registers srv as the proto.KV service on s.
func RegisterKVServer(s *grpc.Server, srv KVServer) {
	s.RegisterService(&kvServiceDesc, srv)
}

func kvGetHandler(srv interface{}, ctx context.Context, dec func(interface{}) error, interceptor grpc.UnaryServerInterceptor) (interface{}, error) {
	in := new(GetRequest)
	if err := dec(in); err != nil {
		return nil, err
	}
	if interceptor == nil {
		return srv.(KVServer).Get(ctx, in)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: "/proto.KV/Get"}
	handler := func(ctx context.Context, req interface{}) (interface{}, error) {
		return srv.(KVServer).Get(ctx, req.(*GetRequest))
	}
	return interceptor(ctx, in, info, handler)
}

func kvPutHandler(srv interface{}, ctx context.Context, dec func(interface{}) error, interceptor grpc.UnaryServerInterceptor) (interface{}, error) {
	in := new(PutRequest)
	if err := dec(in); err != nil {
		return nil, err
	}
	if interceptor == nil {
		return srv.(KVServer).Put(ctx, in)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: "/proto.KV/Put"}
	handler := func(ctx context.Context, req interface{}) (interface{}, error) {
		return srv.(KVServer).Put(ctx, req.(*PutRequest))
	}
	return interceptor(ctx, in, info, handler)
}

var kvServiceDesc = grpc.ServiceDesc{
	ServiceName: "proto.KV",
	HandlerType: (*KVServer)(nil),
	Methods: []grpc.MethodDesc{
		{MethodName: "Get", Handler: kvGetHandler},
		{MethodName: "Put", Handler: kvPutHandler},
	},
	Streams:  []grpc.StreamDesc{},
	Metadata: "kv.proto",
}
