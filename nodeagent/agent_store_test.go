package nodeagent

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/nicpool/nicpool/nodeagent/agentapi"
	"github.com/nicpool/nicpool/nodeagent/install"
	"github.com/nicpool/nicpool/nodeagent/store"
)

func TestOpenStoreResetsOnlyACorruptRecord(t *testing.T) {
	healthy := func(t *testing.T, dir string) {
		st, err := store.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		rec := store.Record{Attachment: agentapi.Attachment{AttachmentKey: agentapi.AttachmentKey{ContainerID: "c", IfName: "eth0"}}, IP: "10.0.0.9", AllocatedAt: time.Now()}
		if _, err := st.Add(rec); err != nil {
			t.Fatal(err)
		}
	}
	corrupt := func(t *testing.T, dir string) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, store.FileName), []byte("{torn"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name        string
		prepare     func(*testing.T, string)
		reset       bool
		wantCorrupt bool
		wantRecords int
	}{
		{"corrupt without the flag fails", corrupt, false, true, 0},
		{"corrupt with the flag is moved aside", corrupt, true, false, -1},
		{"healthy with the flag is kept", healthy, true, false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.reset && os.Geteuid() != 0 {
				t.Skip("rebuilding from host routes needs netlink access as root")
			}
			dir := filepath.Join(t.TempDir(), "state")
			tt.prepare(t, dir)
			o := DefaultOptions()
			o.StateDir, o.ResetState = dir, tt.reset
			st, err := openStore(o, logr.Discard())
			var ce *store.CorruptError
			if errors.As(err, &ce) != tt.wantCorrupt {
				t.Fatalf("openStore = %v, want corrupt %v", err, tt.wantCorrupt)
			}
			if tt.wantCorrupt {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantRecords >= 0 && len(st.List()) != tt.wantRecords {
				t.Errorf("%d records, want %d", len(st.List()), tt.wantRecords)
			}
			if aside, _ := filepath.Glob(filepath.Join(dir, store.FileName+".corrupt-*")); tt.prepare != nil && len(aside) != map[bool]int{true: 0, false: 1}[tt.wantRecords == 1] {
				t.Errorf("files moved aside: %v", aside)
			}
		})
	}
}

// Records without a network name (older plugins, state files of older
// agents) are migrated to agentapi.DefaultNetwork: it must be the network
// the agent installs its conflist under, or they would never match a DEL.
func TestDefaultNetworkIsTheInstalledOne(t *testing.T) {
	if agentapi.DefaultNetwork != install.DefaultNetworkName {
		t.Errorf("agentapi.DefaultNetwork %q differs from the installed conflist's name %q", agentapi.DefaultNetwork, install.DefaultNetworkName)
	}
}
