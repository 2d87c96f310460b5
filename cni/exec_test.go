package cni

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"
)

// runPlugin executes the built binary the way a runtime does.
func runPlugin(t *testing.T, env []string, stdin string, args ...string) (stdout, stderr string, exitCode int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(pluginDir, "nicpool"), args...)
	cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return out.String(), errOut.String(), exitErr.ExitCode()
	}
	if err != nil {
		t.Fatalf("run plugin: %v", err)
	}
	return out.String(), errOut.String(), 0
}

func TestBinaryReportsCNIErrors(t *testing.T) {
	full := []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=ctr", "CNI_NETNS=/var/run/netns/does-not-exist", "CNI_IFNAME=eth0", "CNI_PATH=/opt/cni/bin"}
	good := `{"cniVersion":"1.1.0","name":"n","type":"nicpool","agentSocket":"/nonexistent/agent.sock","timeoutSeconds":1}`
	tests := []struct {
		name     string
		env      []string
		stdin    string
		wantCode uint
	}{
		{"missing env vars", []string{"CNI_COMMAND=ADD"}, good, types.ErrInvalidEnvironmentVariables},
		{"unknown command", slices.Concat(full[1:], []string{"CNI_COMMAND=FROB"}), good, types.ErrInvalidEnvironmentVariables},
		{"malformed stdin", full, `{"cniVersion":`, types.ErrDecodingFailure},
		{"unknown field", full, `{"cniVersion":"1.1.0","name":"n","type":"nicpool","agentSoket":"/x"}`, types.ErrInvalidNetworkConfig},
		{"bad mtu", full, `{"cniVersion":"1.1.0","name":"n","type":"nicpool","mtu":-3}`, types.ErrInvalidNetworkConfig},
		{"unsupported version", full, `{"cniVersion":"0.2.0","name":"n","type":"nicpool"}`, types.ErrIncompatibleCNIVersion},
		{"missing netns", full, good, types.ErrInvalidNetNS},
		{"bad CNI_ARGS", slices.Concat(full, []string{"CNI_ARGS=K8S_POD_NAME"}), good, types.ErrInvalidEnvironmentVariables},
		{"status with agent down", []string{"CNI_COMMAND=STATUS", "CNI_PATH=/opt/cni/bin"}, good, types.ErrPluginNotAvailable},
	}
	// As root, run the binary in a throwaway namespace: none of these cases
	// may change anything, and if one did it must not be the host's.
	sandbox := func(fn func()) { fn() }
	if os.Geteuid() == 0 {
		n := newNS(t)
		sandbox = func(fn func()) {
			if err := n.Do(func(ns.NetNS) error { fn(); return nil }); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut string
			var code int
			sandbox(func() { out, errOut, code = runPlugin(t, tt.env, tt.stdin) })
			if code == 0 {
				t.Fatalf("exit code 0, want failure; stdout %q", out)
			}
			var cniErr types.Error
			if err := json.Unmarshal([]byte(out), &cniErr); err != nil {
				t.Fatalf("stdout %q is not a CNI error (stderr %q): %v", out, errOut, err)
			}
			if cniErr.Code != tt.wantCode || cniErr.Msg == "" {
				t.Errorf("got code %d msg %q, want code %d and a message", cniErr.Code, cniErr.Msg, tt.wantCode)
			}
		})
	}
}

func TestBinaryVersion(t *testing.T) {
	out, _, code := runPlugin(t, []string{"CNI_COMMAND=VERSION"}, "")
	if code != 0 {
		t.Fatalf("VERSION exit code %d: %s", code, out)
	}
	var info struct {
		SupportedVersions []string `json:"supportedVersions"`
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("VERSION output %q: %v", out, err)
	}
	if strings.Join(info.SupportedVersions, ",") != "0.3.0,0.3.1,0.4.0,1.0.0,1.1.0" {
		t.Errorf("supported versions %v", info.SupportedVersions)
	}
	out, _, code = runPlugin(t, nil, "", "--version")
	if code != 0 || !strings.Contains(out, "nicpool") {
		t.Errorf("--version printed %q with exit code %d", out, code)
	}
}

func TestBinaryRefusesItsOwnNetNS(t *testing.T) {
	tb := newTestbed(t)
	env := []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=ctr-own", "CNI_NETNS=/proc/self/ns/net", "CNI_IFNAME=eth0", "CNI_PATH=/opt/cni/bin"}
	conf := `{"cniVersion":"1.1.0","name":"n","type":"nicpool","agentSocket":"` + tb.socket + `"}`
	var out string
	var code int
	tb.inNode(func() error {
		out, _, code = runPlugin(t, env, conf)
		return nil
	})
	var cniErr types.Error
	if code == 0 || json.Unmarshal([]byte(out), &cniErr) != nil || cniErr.Code != types.ErrInvalidNetNS || !strings.Contains(cniErr.Msg, "own namespace") {
		t.Errorf("ADD into the plugin's own netns: exit %d, stdout %q; want error code %d", code, out, types.ErrInvalidNetNS)
	}
	if held := tb.agent.Held(); len(held) != 0 {
		t.Errorf("allocation made for a refused ADD: %v", held)
	}
}
