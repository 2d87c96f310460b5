package server

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nicpool/nicpool/internal/pool"
	"github.com/nicpool/nicpool/nodeagent/agentapi"
	"github.com/nicpool/nicpool/nodeagent/ipam"
	"github.com/nicpool/nicpool/nodeagent/store"
)

// benchServer serves an allocator over st with 250 free IPs on a socket.
func benchServer(b *testing.B, st store.Store) *agentapi.Client {
	b.Helper()
	sock := filepath.Join(b.TempDir(), "agent.sock")
	ips := make([]string, 250)
	for i := range ips {
		ips[i] = fmt.Sprintf("10.1.%d.%d", i/200, 10+i%200)
	}
	alloc := ipam.New(st, ipam.Config{Policy: pool.Config{WarmIPTarget: 1, BatchSize: 1, MaxIPs: 250}})
	alloc.UpdatePool(ipam.PoolState{Found: true, IPs: ips, SubnetCIDR: "10.1.0.0/16", PrimaryIP: "10.1.0.4"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- New(alloc, Config{SocketPath: sock}).Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	c := agentapi.NewClient(sock)
	for range 200 {
		if _, err := c.Status(ctx); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return c
}

// benchStores are the disk store (what the agent runs; the state directory
// is under TMPDIR, so run with TMPDIR on the node's real disk) and the
// memory store, whose difference is the cost of the fsyncs.
func benchStores(b *testing.B) map[string]func() store.Store {
	return map[string]func() store.Store{
		"disk": func() store.Store {
			s, err := store.Open(filepath.Join(b.TempDir(), "state"))
			if err != nil {
				b.Fatal(err)
			}
			return s
		},
		"memory": func() store.Store { return store.NewMemStore() },
	}
}

// BenchmarkAllocateRelease is the agent's share of one pod's ADD+DEL: an
// allocation and a release over the unix socket, each written to the store.
func BenchmarkAllocateRelease(b *testing.B) {
	for _, name := range []string{"disk", "memory"} {
		b.Run(name, func(b *testing.B) {
			c := benchServer(b, benchStores(b)[name]())
			ctx := context.Background()
			i := 0
			for b.Loop() {
				k := agentapi.AttachmentKey{ContainerID: fmt.Sprint("c", i), IfName: "eth0"}
				if _, err := c.Allocate(ctx, agentapi.AllocateRequest{Attachment: agentapi.Attachment{AttachmentKey: k}}); err != nil {
					b.Fatal(err)
				}
				if _, err := c.Release(ctx, agentapi.ReleaseRequest{AttachmentKey: k}); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkAllocateBurst is 250 allocations at once (then released,
// untimed): with the disk store, group commit lets them share writes.
func BenchmarkAllocateBurst(b *testing.B) {
	for _, name := range []string{"disk", "memory"} {
		b.Run(name, func(b *testing.B) {
			c := benchServer(b, benchStores(b)[name]())
			ctx := context.Background()
			round := 0
			for b.Loop() {
				keys := make([]agentapi.AttachmentKey, 250)
				var wg sync.WaitGroup
				for i := range keys {
					keys[i] = agentapi.AttachmentKey{ContainerID: fmt.Sprintf("r%d-c%d", round, i), IfName: "eth0"}
					wg.Go(func() {
						if _, err := c.Allocate(ctx, agentapi.AllocateRequest{Attachment: agentapi.Attachment{AttachmentKey: keys[i]}}); err != nil {
							b.Error(err)
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				for _, k := range keys {
					if _, err := c.Release(ctx, agentapi.ReleaseRequest{AttachmentKey: k}); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				round++
			}
		})
	}
}
