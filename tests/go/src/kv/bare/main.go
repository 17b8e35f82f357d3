// A plugin as a minimal go-plugin implementation in another language makes
// one: go-plugin's handshake line and gRPC health, and nothing else. It has
// no controller, so a host's Shutdown is answered Unimplemented, and it
// stops when it is sent SIGTERM.
package main

import (
	"fmt"
	"io/ioutil"
	"net"
	"os"
	"path/filepath"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func main() {
	if os.Getenv("BASIC_PLUGIN") != "hello" {
		fmt.Fprintln(os.Stderr, "this is a plugin: start it from a host")
		os.Exit(1)
	}
	dir, err := ioutil.TempDir("", "bare")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	path := filepath.Join(dir, "plugin.sock")
	listener, err := net.Listen("unix", path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	server := grpc.NewServer()
	checks := health.NewServer()
	checks.SetServingStatus("plugin", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(server, checks)
	fmt.Printf("1|1|unix|%s|grpc|\n", path)
	server.Serve(listener)
}
