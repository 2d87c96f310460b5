// Package systemd_test checks the systemd unit shipped for agents on VMs
// without Kubernetes (deploy/systemd): systemd accepts it, it keeps the
// hardening the docs promise, and the example settings are flags the agent
// accepts.
package systemd_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/nicpool/nicpool/nodeagent"
)

const (
	unitPath = "../../deploy/systemd/nicpool-agent.service"
	envPath  = "../../deploy/systemd/nicpool-agent.env"
)

// directives returns the unit's key=value lines (a key may repeat).
func directives(t *testing.T) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			out[k] = append(out[k], v)
		}
	}
	return out
}

// TestUnitHardening: the options docs/standalone.md promises are there.
func TestUnitHardening(t *testing.T) {
	d := directives(t)
	want := map[string]string{
		"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
		"StateDirectory": "nicpool", "StateDirectoryMode": "0700", "RuntimeDirectory": "nicpool", "RuntimeDirectoryMode": "0700",
		"UMask": "0077", "CapabilityBoundingSet": "CAP_NET_ADMIN CAP_NET_RAW", "Restart": "always",
		"RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6 AF_NETLINK", "SystemCallFilter": "@system-service",
	}
	for k, v := range want {
		if got := d[k]; len(got) != 1 || got[0] != v {
			t.Errorf("%s = %v, want %q", k, got, v)
		}
	}
	// The agent's defaults must land inside the unit's private directories.
	o := nodeagent.DefaultOptions()
	if o.StateDir != "/var/lib/nicpool" || !strings.HasPrefix(o.SocketPath, "/run/nicpool/") {
		t.Errorf("agent defaults %s and %s are outside StateDirectory/RuntimeDirectory", o.StateDir, o.SocketPath)
	}
}

// TestUnitVerifies runs systemd-analyze verify on the unit, with ExecStart
// pointed at an executable that exists here; any warning fails the test.
func TestUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (Debian package systemd): cannot verify the unit")
	}
	data, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(t.TempDir(), "nicpool-agent.service")
	if err := os.WriteFile(unit, bytes.ReplaceAll(data, []byte("/usr/local/bin/nicpool-agent"), []byte(self)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--man=no", unit).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestExampleSettings: every NICPOOL_AGENT_ARGS in the example environment
// file (the active one and the commented alternatives) is accepted by the
// agent.
func TestExampleSettings(t *testing.T) {
	data, err := os.ReadFile(envPath)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		_, args, ok := strings.Cut(strings.TrimPrefix(line, "#"), "NICPOOL_AGENT_ARGS=")
		if !ok {
			continue
		}
		n++
		o := nodeagent.DefaultOptions()
		fs := pflag.NewFlagSet("nicpool-agent", pflag.ContinueOnError)
		o.BindFlags(fs)
		if err := fs.Parse(strings.Fields(strings.Trim(args, `"`))); err != nil {
			t.Errorf("%s: %v", args, err)
			continue
		}
		if err := o.Validate(); err != nil {
			t.Errorf("%s: %v", args, err)
		}
	}
	if n < 2 {
		t.Fatalf("found %d example settings, want the imds and arm ones", n)
	}
}
