package cni

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/nicpool/nicpool/nodeagent/agentapi"
)

func TestGCReleasesInvalidAttachments(t *testing.T) {
	tb := newTestbed(t, testPoolA, testPoolB)
	list := tb.confList("1.1.0")
	keep, drop := newNS(t), newNS(t)
	keepRT, dropRT := runtimeConf("ctr-keep", keep), runtimeConf("ctr-drop", drop)
	for _, rt := range []*libcni.RuntimeConf{keepRT, dropRT} {
		if _, err := tb.add(list, rt); err != nil {
			t.Fatalf("ADD %s: %v", rt.ContainerID, err)
		}
	}
	// An empty result cache: only the plugin's own GC can clean up, as after
	// a runtime restart that lost its cache.
	gcClient := libcni.NewCNIConfigWithCacheDir([]string{pluginDir}, t.TempDir(), nil)
	err := tb.nodeErr(func() error {
		return gcClient.GCNetworkList(context.Background(), list, &libcni.GCArgs{
			ValidAttachments: []types.GCAttachment{{ContainerID: keepRT.ContainerID, IfName: podIfName}},
		})
	})
	if err != nil {
		t.Fatalf("GC: %v", err)
	}
	held := tb.agent.Held()
	if _, ok := held[agentapi.AttachmentKey{Network: netName, ContainerID: keepRT.ContainerID, IfName: podIfName}]; !ok || len(held) != 1 {
		t.Errorf("agent holds %v after GC, want only %s", held, keepRT.ContainerID)
	}
	if st := tb.state(dropRT.ContainerID, ""); st.vethExists {
		t.Errorf("veth of collected attachment still exists")
	}
	if st := tb.state(keepRT.ContainerID, testPoolA); !st.vethExists || st.routeTo == "" {
		t.Errorf("valid attachment damaged by GC: %+v", st)
	}
	if err := ping(keep, testPoolA, nodeIP); err != nil {
		t.Errorf("valid attachment after GC: %v", err)
	}

	t.Run("GC of another network releases nothing of this one", func(t *testing.T) {
		// Multus calls GC once per network, each with its own list; nicpool's
		// attachments are in none but its own.
		b, err := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": "other-net", "plugins": []map[string]any{{"type": "nicpool", "agentSocket": tb.socket}}})
		if err != nil {
			t.Fatal(err)
		}
		other, err := libcni.NetworkConfFromBytes(b)
		if err != nil {
			t.Fatal(err)
		}
		err = tb.nodeErr(func() error {
			return gcClient.GCNetworkList(context.Background(), other, &libcni.GCArgs{ValidAttachments: []types.GCAttachment{}})
		})
		if err != nil {
			t.Fatalf("GC of other-net: %v", err)
		}
		if len(tb.agent.Held()) != 1 {
			t.Errorf("GC of another network released %s's attachments: %v", netName, tb.agent.Held())
		}
		if st := tb.state(keepRT.ContainerID, testPoolA); !st.vethExists {
			t.Errorf("GC of another network removed the veth of %s", keepRT.ContainerID)
		}
	})

	t.Run("without valid-attachments GC refuses", func(t *testing.T) {
		err := tb.nodeErr(func() error { return gcClient.GCNetworkList(context.Background(), list, nil) })
		if err == nil {
			t.Fatal("GC without cni.dev/valid-attachments succeeded")
		}
		if len(tb.agent.Held()) != 1 {
			t.Errorf("GC without a list released allocations")
		}
	})
}
