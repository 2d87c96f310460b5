package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/nicpool/nicpool/test/e2e/testbed"
)

const (
	// iperfPort is where iperf3 servers listen, inside their namespaces.
	iperfPort = 5201
	// echoPort is where the RTT echo servers listen.
	echoPort = 7071
	// iperfSeconds is each throughput measurement's length after the
	// first, omitted second (TCP slow start).
	iperfSeconds = 3
	// rttPings is how many round trips each RTT measurement times, after
	// rttWarmup untimed ones.
	rttPings, rttWarmup = 2000, 100
)

// datapathPair is a client namespace measured against a server address in
// another namespace.
type datapathPair struct {
	name   string // metric prefix: vm-vm, pod-pod, pod-vm
	client *testbed.Namespace
	server *testbed.Namespace
	ip     string
}

// BenchmarkPodDatapath measures the datapath of the testbed: single-stream
// TCP throughput (iperf3) and TCP round-trip time (a Go ping-pong of one
// byte) from a pod on VM 0 to a pod on VM 1 (pod-pod), from the same pod to
// VM 1's primary IP (pod-vm), and from VM 0 to VM 1 (vm-vm, the reference:
// what the fabric gives VMs themselves). Each iteration measures all three
// once, rotating their order, so load drift on a shared machine hits them
// alike; it reports the medians over iterations (Gbit/s; RTT median and p99
// in µs) and the median of each round's ratio against VM-to-VM. Everything runs inside the testbed's namespaces; iperf3 comes
// from Debian (hack/setup.sh).
func BenchmarkPodDatapath(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root for network namespaces")
	}
	iperf, err := exec.LookPath("iperf3")
	if err != nil {
		b.Skip("needs iperf3 (make setup installs it)")
	}
	ctx := context.Background()
	work := b.TempDir()
	tb, err := testbed.New(ctx, testbed.Config{VMs: 2, BinDir: binDir, WorkDir: work, PutLatency: 50 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(tb.Close)
	if err := tb.WaitReady(ctx, 90*time.Second); err != nil {
		b.Fatal(err)
	}
	vm0, vm1 := tb.VMs[0], tb.VMs[1]
	podA, err := tb.StartPod(ctx, vm0, "datapath-a")
	if err != nil {
		b.Fatal(err)
	}
	podB, err := tb.StartPod(ctx, vm1, "datapath-b")
	if err != nil {
		b.Fatal(err)
	}
	pairs := []datapathPair{
		{"vm-vm", vm0.NS, vm1.NS, vm1.PrimaryIP},
		{"pod-pod", podA.NS, podB.NS, podB.IP},
		{"pod-vm", podA.NS, vm1.NS, vm1.PrimaryIP},
	}
	for _, server := range []*testbed.Namespace{vm1.NS, podB.NS} {
		stop, err := startIperfServer(iperf, server, filepath.Join(work, server.Name+"-iperf3.log"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(stop)
		l, err := startEchoServer(server)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = l.Close() })
	}
	gbps := map[string][]float64{}
	rtt50, rtt99 := map[string][]float64{}, map[string][]float64{}
	round := 0
	for b.Loop() {
		for k := range pairs {
			p := pairs[(round+k)%len(pairs)]
			g, err := iperfClient(ctx, iperf, p)
			if err != nil {
				b.Fatal(err)
			}
			rtts, err := tcpRTT(p)
			if err != nil {
				b.Fatal(err)
			}
			gbps[p.name] = append(gbps[p.name], g)
			rtt50[p.name] = append(rtt50[p.name], quantileUS(rtts, 0.5))
			rtt99[p.name] = append(rtt99[p.name], quantileUS(rtts, 0.99))
		}
		round++
	}
	for _, p := range pairs {
		b.ReportMetric(medianOf(gbps[p.name]), p.name+"-gbps")
		b.ReportMetric(medianOf(rtt50[p.name]), p.name+"-rtt-p50-us")
		b.ReportMetric(medianOf(rtt99[p.name]), p.name+"-rtt-p99-us")
		if p.name == "vm-vm" {
			continue
		}
		// Each round's own ratio against the reference measured in the
		// same round, then their median: load that drifts between rounds
		// on a shared machine cancels.
		b.ReportMetric(medianRatio(gbps[p.name], gbps["vm-vm"]), p.name+"-gbps-ratio")
		b.ReportMetric(medianRatio(rtt50[p.name], rtt50["vm-vm"]), p.name+"-rtt-p50-ratio")
		b.ReportMetric(medianRatio(rtt99[p.name], rtt99["vm-vm"]), p.name+"-rtt-p99-ratio")
	}
}

// medianRatio is the median of v[i]/ref[i].
func medianRatio(v, ref []float64) float64 {
	r := make([]float64, len(v))
	for i := range v {
		r[i] = v[i] / ref[i]
	}
	return medianOf(r)
}

// startIperfServer runs `iperf3 -s` inside n (the child inherits the
// network namespace of the locked thread that forks it) and returns once it
// listens; stop kills it.
func startIperfServer(iperf string, n *testbed.Namespace, logPath string) (stop func(), err error) {
	log, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create iperf3 log: %w", err)
	}
	cmd := exec.Command(iperf, "-s", "-p", fmt.Sprint(iperfPort), "--forceflush")
	cmd.Stderr = log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		_ = log.Close()
		return nil, fmt.Errorf("iperf3 server stdout: %w", err)
	}
	if err := n.Do(func(ns.NetNS) error { return cmd.Start() }); err != nil {
		_ = log.Close()
		return nil, fmt.Errorf("start iperf3 server in %s: %w", n.Name, err)
	}
	stop = func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		_ = log.Close()
	}
	listening := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		said := false
		for sc.Scan() {
			_, _ = fmt.Fprintln(log, sc.Text())
			if !said && strings.Contains(sc.Text(), "Server listening") {
				said = true
				listening <- nil
			}
		}
		if !said {
			listening <- fmt.Errorf("iperf3 server in %s exited before listening (see %s)", n.Name, logPath)
		}
	}()
	select {
	case err = <-listening:
	case <-time.After(30 * time.Second): // a process start on a loaded 2-core machine, with a wide margin
		err = fmt.Errorf("iperf3 server in %s did not listen within 30 s (see %s)", n.Name, logPath)
	}
	if err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}

// iperfClient runs one single-stream iperf3 test from p.client to p.ip and
// returns the receiver's throughput in Gbit/s.
func iperfClient(ctx context.Context, iperf string, p datapathPair) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(iperfSeconds+30)*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, iperf, "-c", p.ip, "-p", fmt.Sprint(iperfPort), "-t", fmt.Sprint(iperfSeconds), "-O", "1", "-J")
	var out []byte
	err := p.client.Do(func(ns.NetNS) error {
		var err error
		out, err = cmd.Output()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("iperf3 %s to %s: %w: %s", p.name, p.ip, err, tail(out))
	}
	var res struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return 0, fmt.Errorf("parse iperf3 %s output: %w", p.name, err)
	}
	if res.Error != "" || res.End.SumReceived.BitsPerSecond <= 0 {
		return 0, fmt.Errorf("iperf3 %s to %s: %q, %v bit/s", p.name, p.ip, res.Error, res.End.SumReceived.BitsPerSecond)
	}
	return res.End.SumReceived.BitsPerSecond / 1e9, nil
}

// startEchoServer echoes every byte it gets on echoPort inside n.
func startEchoServer(n *testbed.Namespace) (net.Listener, error) {
	var l net.Listener
	err := n.Do(func(ns.NetNS) error {
		var err error
		l, err = net.Listen("tcp4", fmt.Sprintf(":%d", echoPort))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("echo server in %s: %w", n.Name, err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return l, nil
}

// tcpRTT times rttPings one-byte round trips over one TCP connection (no
// Nagle delay: Go sets TCP_NODELAY) from p.client to p.ip.
func tcpRTT(p datapathPair) ([]time.Duration, error) {
	var c net.Conn
	err := p.client.Do(func(ns.NetNS) error {
		var err error
		c, err = net.DialTimeout("tcp4", fmt.Sprintf("%s:%d", p.ip, echoPort), 5*time.Second)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("rtt %s: dial %s: %w", p.name, p.ip, err)
	}
	defer func() { _ = c.Close() }()
	if err := c.SetDeadline(time.Now().Add(2 * time.Minute)); err != nil {
		return nil, err
	}
	buf := []byte{0}
	out := make([]time.Duration, 0, rttPings)
	for i := range rttWarmup + rttPings {
		start := time.Now()
		if _, err := c.Write(buf); err != nil {
			return nil, fmt.Errorf("rtt %s: write: %w", p.name, err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			return nil, fmt.Errorf("rtt %s: read: %w", p.name, err)
		}
		if i >= rttWarmup {
			out = append(out, time.Since(start))
		}
	}
	return out, nil
}

func quantileUS(d []time.Duration, q float64) float64 {
	s := slices.Clone(d)
	slices.Sort(s)
	return float64(s[int(q*float64(len(s)-1))]) / 1e3
}

func medianOf(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func tail(b []byte) string {
	if len(b) > 500 {
		b = b[len(b)-500:]
	}
	return strings.TrimSpace(string(b))
}
