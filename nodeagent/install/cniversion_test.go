package install

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/version"
)

func TestRuntimeCNIVersion(t *testing.T) {
	tests := []struct {
		runtime string
		want    string
		known   bool
	}{
		{"containerd://1.6.20~ds1", "1.0.0", true}, // Debian 12
		{"containerd://1.7.24", "1.0.0", true},
		{"containerd://v1.7.11-k3s2", "1.0.0", true},
		{"containerd://2.0.0", "1.1.0", true},
		{"containerd://v2.1.3", "1.1.0", true},
		{"containerd://1.5.9", "0.4.0", true},
		{"cri-o://1.30.4", "1.0.0", true},
		{"cri-o://1.31.0", "1.1.0", true},
		{"cri-o://1.22.1", "0.4.0", true},
		{"docker://24.0.7", "1.0.0", false},
		{"containerd://unknown", "1.0.0", false},
		{"containerd", "1.0.0", false},
		{"", "1.0.0", false},
	}
	for _, tt := range tests {
		t.Run(tt.runtime, func(t *testing.T) {
			got, known := RuntimeCNIVersion(tt.runtime)
			if got != tt.want || known != tt.known {
				t.Errorf("RuntimeCNIVersion(%q) = %s, %v; want %s, %v", tt.runtime, got, known, tt.want, tt.known)
			}
		})
	}
}

func TestChooseCNIVersion(t *testing.T) {
	ours := []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}
	// What Debian 12's portmap and bandwidth (plugins 1.1.1) answer.
	portmap := []string{"0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"}
	bandwidth := []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0"}
	tests := []struct {
		name       string
		runtimeMax string
		chained    map[string][]string
		want       string
		wantErr    bool
	}{
		{"everything speaks 1.1.0", "1.1.0", nil, "1.1.0", false},
		{"runtime stops at 1.0.0", "1.0.0", nil, "1.0.0", false},
		{"chained plugins stop at 1.0.0", "1.1.0", map[string][]string{"portmap": portmap, "bandwidth": bandwidth}, "1.0.0", false},
		{"chained plugin at 1.1.0 too", "1.1.0", map[string][]string{"portmap": append(portmap, "1.1.0")}, "1.1.0", false},
		{"old chained plugin", "1.1.0", map[string][]string{"bandwidth": {"0.3.1", "0.4.0"}}, "0.4.0", false},
		{"old runtime", "0.4.0", map[string][]string{"portmap": portmap}, "0.4.0", false},
		{"nothing in common", "1.1.0", map[string][]string{"bandwidth": {"0.1.0", "0.2.0"}}, "", true},
		{"runtime older than the plugin", "0.2.0", nil, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := chooseCNIVersion(ours, tt.runtimeMax, tt.chained)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("chooseCNIVersion = %q, %v; want %q, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// fakeExec answers VERSION for the plugins it knows, without running anything.
type fakeExec struct {
	versions map[string][]string // plugin type -> supportedVersions
	calls    []string
}

func (f *fakeExec) ExecPlugin(_ context.Context, path string, _ []byte, env []string) ([]byte, error) {
	name := filepath.Base(path)
	f.calls = append(f.calls, name)
	if !strings.Contains(strings.Join(env, " "), "CNI_COMMAND=VERSION") {
		return nil, errors.New("fakeExec: only VERSION")
	}
	v, ok := f.versions[name]
	if !ok {
		return nil, errors.New("fork/exec " + path + ": no such file or directory")
	}
	return json.Marshal(map[string]any{"cniVersion": v[len(v)-1], "supportedVersions": v})
}

func (f *fakeExec) FindInPath(string, []string) (string, error) { return "", errors.New("unused") }

func (f *fakeExec) Decode(b []byte) (version.PluginInfo, error) {
	return (&version.PluginDecoder{}).Decode(b)
}

var _ invoke.Exec = (*fakeExec)(nil)

// cniVersionOf returns the cniVersion of a rendered conflist and checks
// that libcni accepts it.
func cniVersionOf(t *testing.T, conf []byte) string {
	t.Helper()
	list, err := libcni.ConfListFromBytes(conf)
	if err != nil {
		t.Fatalf("libcni rejects %s: %v", conf, err)
	}
	return list.CNIVersion
}

func TestAutoCNIVersion(t *testing.T) {
	debian := map[string][]string{
		"portmap":   {"0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"},
		"bandwidth": {"0.3.0", "0.3.1", "0.4.0", "1.0.0"},
	}
	tests := []struct {
		name    string
		runtime string
		chain   bool
		want    string
	}{
		{"containerd 2 alone", "containerd://2.0.5", false, "1.1.0"},
		{"containerd 1.6", "containerd://1.6.20~ds1", false, "1.0.0"},
		{"containerd 2 with Debian's chained plugins", "containerd://2.0.5", true, "1.0.0"},
		{"unknown runtime", "frobd://9.9", false, "1.0.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fe := &fakeExec{versions: debian}
			i := testInstaller(t, "plugin", func(c *Config) {
				c.CNIVersion = AutoCNIVersion
				c.RuntimeVersion = func(context.Context) (string, error) { return tt.runtime, nil }
				c.ChainPortmap, c.ChainBandwidth = tt.chain, tt.chain
			})
			i.exec = fe
			if err := i.Install(); err != nil {
				t.Fatalf("Install: %v", err)
			}
			conf, err := os.ReadFile(i.ConfPath())
			if err != nil {
				t.Fatal(err)
			}
			if got := cniVersionOf(t, conf); got != tt.want {
				t.Errorf("cniVersion %s, want %s", got, tt.want)
			}
			if tt.chain && strings.Join(fe.calls, ",") != "portmap,bandwidth" {
				t.Errorf("asked %v for their versions, want portmap and bandwidth", fe.calls)
			}
		})
	}
}

func TestAutoCNIVersionFailuresWriteNothing(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{"runtime unknown", func(c *Config) { c.RuntimeVersion = nil }, "runtime is unknown"},
		{"node not readable", func(c *Config) {
			c.RuntimeVersion = func(context.Context) (string, error) { return "", errors.New("nodes \"n1\" is forbidden") }
		}, "forbidden"},
		{"chained plugin missing", func(c *Config) { c.ChainBandwidth = true }, "ask chained plugin bandwidth for its versions"},
		{"no common version", func(c *Config) {
			c.RuntimeVersion = func(context.Context) (string, error) { return "containerd://2.0.0", nil }
			c.ChainPortmap = true
		}, "no cni version is spoken"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i := testInstaller(t, "plugin", func(c *Config) {
				c.CNIVersion = AutoCNIVersion
				c.RuntimeVersion = func(context.Context) (string, error) { return "containerd://1.7.0", nil }
				tt.mutate(c)
			})
			i.exec = &fakeExec{versions: map[string][]string{"portmap": {"0.1.0", "0.2.0"}}}
			err := i.Install()
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "choose the cni version: ") {
				t.Fatalf("Install error = %v, want one containing %q", err, tt.wantErr)
			}
			if _, err := os.Stat(i.ConfPath()); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("conflist written although no version could be chosen (stat: %v)", err)
			}
		})
	}
}

func TestExplicitCNIVersion(t *testing.T) {
	for _, v := range []string{"1.0.0", "0.4.0", "1.1.0"} {
		t.Run(v, func(t *testing.T) {
			called := false
			i := testInstaller(t, "plugin", func(c *Config) {
				c.CNIVersion = v
				c.ChainPortmap = true
				c.RuntimeVersion = func(context.Context) (string, error) { called = true; return "", nil }
			})
			i.exec = &fakeExec{}
			conf, err := i.ConfList()
			if err != nil {
				t.Fatal(err)
			}
			if got := cniVersionOf(t, conf); got != v {
				t.Errorf("cniVersion %s, want %s", got, v)
			}
			if called {
				t.Error("an explicit version still read the runtime")
			}
		})
	}
	for _, bad := range []string{"2.0.0", "0.2.0", "latest", "1.0"} {
		cfg := Config{BinarySource: "/usr/local/bin/nicpool", BinDir: "/opt/cni/bin", ConfDir: "/etc/cni/net.d", CNIVersion: bad}
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "cni version") {
			t.Errorf("New with cni version %q = %v, want an error", bad, err)
		}
	}
}
