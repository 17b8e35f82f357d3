// Command kv-go-plugin is a go-plugin gRPC plugin serving KV from memory.
// It runs until the host asks it to stop (GRPCController.Shutdown) and can
// serve any number of calls in between.
package main

import (
	"os"
	"sync"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"

	"kv/shared"
)

type memKV struct {
	mu     sync.Mutex
	data   map[string][]byte
	logger hclog.Logger
}

func (s *memKV) Put(key string, value []byte) error {
	v := append([]byte(nil), value...)
	s.mu.Lock()
	s.data[key] = v
	s.mu.Unlock()
	s.logger.Info("put", "key", key)
	return nil
}

// Get returns a copy of the value, or an empty value for an unknown key.
func (s *memKV) Get(key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.data[key]...), nil
}

func main() {
	// Created before plugin.Serve: Serve later points os.Stderr at a pipe
	// that go-plugin 1.0.1 never reads, while this logger keeps the real
	// stderr, which the host reads and parses as hclog JSON.
	logger := hclog.New(&hclog.LoggerOptions{
		Level:      hclog.Info,
		Output:     os.Stderr,
		JSONFormat: true,
	})

	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: shared.Handshake,
		Plugins: map[string]plugin.Plugin{
			shared.PluginName: &shared.KVPlugin{Impl: &memKV{data: map[string][]byte{}, logger: logger}},
		},
		GRPCServer: plugin.DefaultGRPCServer,
		Logger:     logger,
	})
}
