// Command kv-go-host drives a KV plugin through HashiCorp go-plugin's Client.
//
//	kv-go-host PLUGIN_BINARY put-get KEY VALUE
//	kv-go-host PLUGIN_BINARY bench CALLS   (JSON: medians, p99s and every sample)
//
// With KV_AUTO_MTLS set, host and plugin talk over go-plugin's AutoMTLS.
//
// Exit codes: 0 ok, 1 error, 2 Get returned a different value, 3 the plugin
// did not exit after the controller's Shutdown and go-plugin had to kill it.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"

	"kv/shared"
)

const usage = "usage: kv-go-host PLUGIN_BINARY put-get KEY VALUE\n" +
	"       kv-go-host PLUGIN_BINARY bench CALLS"

// killedMsg is what go-plugin 1.0.1 logs (client.go, Client.Kill) when the
// plugin is still running 2s after Shutdown and gets SIGKILLed.
const killedMsg = "plugin failed to exit gracefully"

// logBuffer keeps a copy of everything the go-plugin client logged.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) contains(s string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Contains(b.buf.String(), s)
}

func newLogger(level hclog.Level, buf *logBuffer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:   "kv-go-host",
		Level:  level,
		Output: io.MultiWriter(os.Stderr, buf),
	})
}

func newClient(path string, logger hclog.Logger) *plugin.Client {
	return plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  shared.Handshake,
		Plugins:          shared.PluginMap,
		Cmd:              exec.Command(path),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           logger,
		AutoMTLS:         os.Getenv("KV_AUTO_MTLS") != "",
	})
}

// dispense starts the plugin if needed and returns its KV; ping adds a
// health check first.
func dispense(c *plugin.Client, ping bool) (shared.KV, error) {
	rpc, err := c.Client()
	if err != nil {
		return nil, fmt.Errorf("starting plugin: %v", err)
	}
	if ping {
		if err := rpc.Ping(); err != nil {
			return nil, fmt.Errorf("ping: %v", err)
		}
	}
	raw, err := rpc.Dispense(shared.PluginName)
	if err != nil {
		return nil, fmt.Errorf("dispense %q: %v", shared.PluginName, err)
	}
	kv, ok := raw.(shared.KV)
	if !ok {
		return nil, fmt.Errorf("dispense %q: unexpected type %T", shared.PluginName, raw)
	}
	return kv, nil
}

func fail(format string, args ...interface{}) int {
	fmt.Fprintf(os.Stderr, "kv-go-host: "+format+"\n", args...)
	return 1
}

// notGraceful reports that go-plugin had to kill the plugin: a plugin must
// exit when the host's GRPCController.Shutdown asks it to.
func notGraceful() int {
	fmt.Fprintln(os.Stderr, "kv-go-host: the plugin did not exit after Shutdown; go-plugin killed it")
	return 3
}

func putGet(path, key, value string) int {
	buf := &logBuffer{}
	client := newClient(path, newLogger(hclog.Debug, buf))

	got, err := func() ([]byte, error) {
		kv, err := dispense(client, true)
		if err != nil {
			return nil, err
		}
		if err := kv.Put(key, []byte(value)); err != nil {
			return nil, fmt.Errorf("put: %v", err)
		}
		v, err := kv.Get(key)
		if err != nil {
			return nil, fmt.Errorf("get: %v", err)
		}
		return v, nil
	}()
	if err == nil {
		os.Stdout.Write(append(got, '\n'))
	}
	client.Kill()

	switch {
	case err != nil:
		return fail("%v", err)
	case !bytes.Equal(got, []byte(value)):
		fmt.Fprintf(os.Stderr, "kv-go-host: get %q returned %q, want %q\n", key, got, value)
		return 2
	case buf.contains(killedMsg):
		return notGraceful()
	}
	return 0
}

// startOnce times creating a client up to its first Get returning.
func startOnce(path string, logger hclog.Logger) (time.Duration, error) {
	t0 := time.Now()
	client := newClient(path, logger)
	defer client.Kill()
	kv, err := dispense(client, false)
	if err != nil {
		return 0, err
	}
	if _, err := kv.Get("bench"); err != nil {
		return 0, fmt.Errorf("first get: %v", err)
	}
	return time.Since(t0), nil
}

var errMismatch = errors.New("get returned a different value")

// getRoundTrips times calls sequential Gets of a 64-byte value.
func getRoundTrips(path string, logger hclog.Logger, calls int) ([]time.Duration, error) {
	client := newClient(path, logger)
	defer client.Kill()
	kv, err := dispense(client, false)
	if err != nil {
		return nil, err
	}
	value := make([]byte, 64)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	if err := kv.Put("bench", value); err != nil {
		return nil, fmt.Errorf("put: %v", err)
	}
	samples := make([]time.Duration, calls)
	for i := range samples {
		t := time.Now()
		got, err := kv.Get("bench")
		samples[i] = time.Since(t)
		if err != nil {
			return nil, fmt.Errorf("get: %v", err)
		}
		if !bytes.Equal(got, value) {
			return nil, errMismatch
		}
	}
	return samples, nil
}

// quantiles returns the median (index n/2) and p99 (index ceil(0.99n)-1)
// of the sorted samples, in nanoseconds.
func quantiles(samples []time.Duration) (median, p99 int64) {
	s := append([]time.Duration(nil), samples...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	n := len(s)
	return int64(s[n/2]), int64(s[(99*n+99)/100-1])
}

// nanos returns the samples in nanoseconds, in the order taken.
func nanos(samples []time.Duration) []int64 {
	out := make([]int64, len(samples))
	for i, d := range samples {
		out[i] = int64(d)
	}
	return out
}

func bench(path, callsArg string) int {
	calls, err := strconv.Atoi(callsArg)
	if err != nil || calls < 1 {
		return fail("CALLS must be a positive integer, got %q", callsArg)
	}
	buf := &logBuffer{}
	logger := newLogger(hclog.Warn, buf)

	starts := make([]time.Duration, 5)
	for i := range starts {
		if starts[i], err = startOnce(path, logger); err != nil {
			return fail("start %d: %v", i+1, err)
		}
		if buf.contains(killedMsg) {
			return notGraceful() // fail fast: every further Kill costs 2s
		}
	}
	gets, err := getRoundTrips(path, logger, calls)
	if err == errMismatch {
		fmt.Fprintf(os.Stderr, "kv-go-host: %v\n", err)
		return 2
	} else if err != nil {
		return fail("%v", err)
	}
	if buf.contains(killedMsg) {
		return notGraceful()
	}

	var out struct {
		StartMedian int64   `json:"start_median_ns"`
		StartP99    int64   `json:"start_p99_ns"`
		GetMedian   int64   `json:"get_median_ns"`
		GetP99      int64   `json:"get_p99_ns"`
		Calls       int     `json:"calls"`
		Starts      []int64 `json:"start_ns"`
		Gets        []int64 `json:"get_ns"`
	}
	out.StartMedian, out.StartP99 = quantiles(starts)
	out.GetMedian, out.GetP99 = quantiles(gets)
	out.Calls = calls
	out.Starts = nanos(starts)
	out.Gets = nanos(gets)
	line, err := json.Marshal(out)
	if err != nil {
		return fail("%v", err)
	}
	fmt.Printf("%s\n", line)
	return 0
}

func main() {
	args := os.Args[1:]
	switch {
	case len(args) == 4 && args[1] == "put-get":
		os.Exit(putGet(args[0], args[2], args[3]))
	case len(args) == 3 && args[1] == "bench":
		os.Exit(bench(args[0], args[2]))
	default:
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(1)
	}
}
