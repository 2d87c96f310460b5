package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nicpool/nicpool/nodeagent/agentapi"
)

func rec(cid, ip string) Record {
	return Record{
		Attachment:  agentapi.Attachment{AttachmentKey: agentapi.AttachmentKey{ContainerID: cid, IfName: "eth0"}, PodNamespace: "default", PodName: "pod-" + cid},
		IP:          ip,
		AllocatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	}
}

func stores(t *testing.T) map[string]func() Store {
	return map[string]func() Store{
		"memory": func() Store { return NewMemStore() },
		"disk": func() Store {
			s, err := Open(filepath.Join(t.TempDir(), "state"))
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	}
}

func TestStoreContract(t *testing.T) {
	for name, mk := range stores(t) {
		t.Run(name, func(t *testing.T) {
			s := mk()
			a := rec("a", "10.0.0.4")
			if _, err := s.Add(a); err != nil {
				t.Fatalf("Add: %v", err)
			}
			again := rec("a", "10.0.0.9")
			got, err := s.Add(again)
			if err != nil || got.IP != "10.0.0.4" {
				t.Errorf("Add for the same key = %v, %v; want the first IP 10.0.0.4", got.IP, err)
			}
			if _, err := s.Add(rec("b", "10.0.0.4")); !errors.Is(err, ErrIPInUse) {
				t.Errorf("Add of a held IP for another key = %v, want ErrIPInUse", err)
			}
			if _, err := s.Add(Record{IP: "10.0.0.5"}); err == nil {
				t.Errorf("Add without a container ID succeeded")
			}
			if _, ok, err := s.Remove(agentapi.AttachmentKey{ContainerID: "zzz", IfName: "eth0"}); ok || err != nil {
				t.Errorf("Remove of an unknown key = %v, %v; want false, nil", ok, err)
			}
			r, ok, err := s.Remove(a.AttachmentKey)
			if !ok || err != nil || r.IP != a.IP {
				t.Errorf("Remove = %v, %v, %v", r, ok, err)
			}
			if len(s.List()) != 0 {
				t.Errorf("List after removing everything = %v", s.List())
			}
		})
	}
}

func TestDiskStoreReopenAndPermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := s.Add(rec(fmt.Sprint("c", i), fmt.Sprintf("10.0.0.%d", i+10))); err != nil {
			t.Fatal(err)
		}
	}
	s2, err := Open(dir)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	if got := len(s2.List()); got != 5 {
		t.Errorf("reopened store has %d records, want 5", got)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, FileName): 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %o, want %o", path, fi.Mode().Perm(), want)
		}
	}
}

func TestDiskStoreFailedWriteRollsBack(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(rec("a", "10.0.0.1")); err != nil {
		t.Fatal(err)
	}
	s.hook = func(step string) error {
		if step == stepFsync {
			return errors.New("disk full")
		}
		return nil
	}
	if _, err := s.Add(rec("b", "10.0.0.2")); err == nil {
		t.Fatal("Add succeeded although the write failed")
	}
	if _, ok := s.Get(rec("b", "").AttachmentKey); ok {
		t.Errorf("memory kept a record whose write failed")
	}
	if _, _, err := s.Remove(rec("a", "").AttachmentKey); err == nil {
		t.Fatal("Remove succeeded although the write failed")
	}
	if _, ok := s.Get(rec("a", "").AttachmentKey); !ok {
		t.Errorf("memory dropped a record whose removal failed to write")
	}
}

func TestDiskStoreConcurrentAdds(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			if _, err := s.Add(rec(fmt.Sprint("c", i), fmt.Sprintf("10.0.1.%d", i))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	s2, err := Open(filepath.Dir(s.Path()))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(s2.List()); got != 50 {
		t.Errorf("reopened store has %d records, want 50", got)
	}
}

// A state file written before records carried a network name (format
// version 1) must load, its records keyed under agentapi.DefaultNetwork, and
// be rewritten in the current format on the next change.
func TestDiskStoreMigratesRecordsWithoutNetworkName(t *testing.T) {
	dir := t.TempDir()
	legacy := `{
  "version": 1,
  "records": [
    {"containerID": "c1", "ifName": "eth0", "podNamespace": "default", "podName": "web", "netns": "/var/run/netns/x", "ip": "10.0.0.5", "allocatedAt": "2026-01-01T00:00:00Z"}
  ]
}
`
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte(legacy), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatalf("Open of a version 1 state file: %v", err)
	}
	key := agentapi.AttachmentKey{Network: agentapi.DefaultNetwork, ContainerID: "c1", IfName: "eth0"}
	if r, ok := s.Get(key); !ok || r.IP != "10.0.0.5" || r.PodName != "web" {
		t.Fatalf("Get(%+v) = %+v, %v; want the migrated record", key, r, ok)
	}
	if r, ok := s.Get(agentapi.AttachmentKey{Network: "other", ContainerID: "c1", IfName: "eth0"}); ok {
		t.Errorf("the migrated record is found under another network: %+v", r)
	}
	if _, err := s.Add(rec("c2", "10.0.0.6")); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	var f fileFormat
	if err := json.Unmarshal(data, &f); err != nil || f.Version != formatVersion || len(f.Records) != 2 {
		t.Fatalf("rewritten file = %s (%v), want version %d with 2 records", data, err, formatVersion)
	}
	for _, r := range f.Records {
		if r.Network != agentapi.DefaultNetwork {
			t.Errorf("rewritten record %s has network %q, want %q", r.ContainerID, r.Network, agentapi.DefaultNetwork)
		}
	}
	s2, err := Open(dir)
	if err != nil || len(s2.List()) != 2 {
		t.Fatalf("reopen after migration: %v", err)
	}
}

// Two networks (Multus) may give the same container and interface name an
// IP each: they are two attachments.
func TestStoreKeysIncludeTheNetwork(t *testing.T) {
	for name, mk := range stores(t) {
		t.Run(name, func(t *testing.T) {
			s := mk()
			a := rec("c", "10.0.0.1")
			b := rec("c", "10.0.0.2")
			b.Network = "other"
			for _, r := range []Record{a, b} {
				if _, err := s.Add(r); err != nil {
					t.Fatal(err)
				}
			}
			if len(s.List()) != 2 {
				t.Fatalf("List = %v, want two attachments", s.List())
			}
			if r, ok, err := s.Remove(b.AttachmentKey); err != nil || !ok || r.IP != "10.0.0.2" {
				t.Errorf("Remove(other network) = %+v, %v, %v", r, ok, err)
			}
			if r, ok := s.Get(a.AttachmentKey); !ok || r.IP != "10.0.0.1" {
				t.Errorf("the default network's attachment is gone: %+v %v", r, ok)
			}
		})
	}
}
