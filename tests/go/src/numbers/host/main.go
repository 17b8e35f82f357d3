// Command numbers-go-host drives a Numbers plugin's streams through
// HashiCorp go-plugin's Client.
//
//	numbers-go-host PLUGIN_BINARY check
//	    each kind of stream, an error midway and a cancel; a line each
//	numbers-go-host PLUGIN_BINARY count N PAYLOAD_BYTES
//	    one Count of N numbers read to its end, timed (JSON), after an
//	    unmeasured one of 1024
//
// Exit codes: 0 ok, 1 error.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/status"

	"numbers/shared"
)

const usage = "usage: numbers-go-host PLUGIN_BINARY check\n" +
	"       numbers-go-host PLUGIN_BINARY count N PAYLOAD_BYTES"

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "numbers-go-host: "+format+"\n", args...)
	os.Exit(1)
}

// dispense starts the plugin and returns its Numbers client.
func dispense(path string) (*plugin.Client, shared.NumbersClient) {
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  shared.Handshake,
		Plugins:          shared.PluginMap,
		Cmd:              exec.Command(path),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           hclog.New(&hclog.LoggerOptions{Name: "numbers-go-host", Level: hclog.Warn}),
	})
	rpc, err := client.Client()
	if err != nil {
		client.Kill()
		fail("starting plugin: %v", err)
	}
	raw, err := rpc.Dispense(shared.PluginName)
	if err != nil {
		client.Kill()
		fail("dispense: %v", err)
	}
	return client, raw.(shared.NumbersClient)
}

func values(numbers []*shared.Number) string {
	out := make([]string, len(numbers))
	for i, n := range numbers {
		out[i] = strconv.FormatUint(n.Value, 10)
	}
	return strings.Join(out, ",")
}

// echo sends each value and reads each back; the numbers read and the
// error that ended the stream early, if one did.
func echo(numbers shared.NumbersClient, sent []uint64) ([]*shared.Number, error) {
	stream, err := numbers.Echo(context.Background())
	if err != nil {
		return nil, err
	}
	var read []*shared.Number
	for _, value := range sent {
		if err := stream.Send(&shared.Number{Value: value}); err != nil {
			break // the status comes with Recv
		}
		n, err := stream.Recv()
		if err != nil {
			return read, err
		}
		read = append(read, n)
	}
	if err := stream.CloseSend(); err != nil {
		return read, err
	}
	if _, err := stream.Recv(); err != io.EOF {
		return read, err
	}
	return read, nil
}

func check(numbers shared.NumbersClient) error {
	count, err := numbers.Count(context.Background(), &shared.CountRequest{N: 3, PayloadBytes: 5})
	if err != nil {
		return err
	}
	var counted []*shared.Number
	for {
		n, err := count.Recv()
		if err == io.EOF {
			break
		} else if err != nil {
			return err
		}
		counted = append(counted, n)
	}
	payloads := "nnnnn"
	for _, n := range counted {
		if !bytes.Equal(n.Payload, []byte(payloads)) {
			payloads = fmt.Sprintf("%q", n.Payload)
		}
	}
	fmt.Printf("count %s payload %s\n", values(counted), payloads)

	sum, err := numbers.Sum(context.Background())
	if err != nil {
		return err
	}
	for value := uint64(1); value <= 100; value++ {
		if err := sum.Send(&shared.Number{Value: value}); err != nil {
			break // the stream's status comes with CloseAndRecv
		}
	}
	reply, err := sum.CloseAndRecv()
	if err != nil {
		return err
	}
	fmt.Printf("sum %d count %d\n", reply.Sum, reply.Count)

	echoed, err := echo(numbers, []uint64{7, 8})
	if err != nil {
		return err
	}
	fmt.Printf("echo %s\n", values(echoed))
	echoed, err = echo(numbers, []uint64{1, math.MaxUint64, 3})
	s, _ := status.FromError(err)
	fmt.Printf("echo %s then %v: %s\n", values(echoed), s.Code(), s.Message())

	// An endless Count, cancelled after three numbers.
	ctx, cancel := context.WithCancel(context.Background())
	endless, err := numbers.Count(ctx, &shared.CountRequest{N: math.MaxUint64})
	if err != nil {
		cancel()
		return err
	}
	for i := 0; i < 3; i++ {
		if _, err := endless.Recv(); err != nil {
			cancel()
			return err
		}
	}
	cancel()
	for err == nil {
		_, err = endless.Recv()
	}
	s, _ = status.FromError(err)
	fmt.Printf("endless cancelled: %v\n", s.Code())
	return nil
}

// residentKiB is this process's resident memory, from /proc.
func residentKiB() int64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			fields := strings.Fields(line)
			kib, _ := strconv.ParseInt(fields[1], 10, 64)
			return kib
		}
	}
	return 0
}

// readAll reads a Count of n numbers to its end.
func readAll(numbers shared.NumbersClient, n uint64, payload uint32) error {
	stream, err := numbers.Count(context.Background(), &shared.CountRequest{N: n, PayloadBytes: payload})
	if err != nil {
		return err
	}
	for {
		if _, err := stream.Recv(); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
	}
}

func count(numbers shared.NumbersClient, nArg, bytesArg string) error {
	n, err := strconv.ParseUint(nArg, 10, 64)
	if err != nil {
		return err
	}
	payload, err := strconv.ParseUint(bytesArg, 10, 32)
	if err != nil {
		return err
	}
	// Once unmeasured, as the Outlet host's bench does first: what the
	// first stream allocates for good is not counted.
	if err := readAll(numbers, 1024, uint32(payload)); err != nil {
		return err
	}
	before := residentKiB()
	peak := before
	t0 := time.Now()
	stream, err := numbers.Count(context.Background(), &shared.CountRequest{N: n, PayloadBytes: uint32(payload)})
	if err != nil {
		return err
	}
	var read, bytesRead uint64
	for {
		number, err := stream.Recv()
		if err == io.EOF {
			break
		} else if err != nil {
			return err
		}
		read++
		bytesRead += uint64(len(number.Payload))
		if read%1024 == 0 {
			if rss := residentKiB(); rss > peak {
				peak = rss
			}
		}
	}
	elapsed := time.Since(t0)
	if read != n {
		return fmt.Errorf("read %d numbers, want %d", read, n)
	}
	out := map[string]int64{
		"messages":       int64(read),
		"payload_bytes":  int64(bytesRead),
		"elapsed_ns":     elapsed.Nanoseconds(),
		"rss_before_kib": before,
		"rss_peak_kib":   peak,
	}
	line, err := json.Marshal(out)
	if err != nil {
		return err
	}
	fmt.Printf("%s\n", line)
	return nil
}

func main() {
	args := os.Args[1:]
	var run func(shared.NumbersClient) error
	switch {
	case len(args) == 2 && args[1] == "check":
		run = check
	case len(args) == 4 && args[1] == "count":
		run = func(numbers shared.NumbersClient) error { return count(numbers, args[2], args[3]) }
	default:
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(1)
	}
	client, numbers := dispense(args[0])
	err := run(numbers)
	client.Kill()
	if err != nil {
		fail("%v", err)
	}
}
