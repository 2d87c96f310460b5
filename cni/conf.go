package cni

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/nicpool/nicpool/nodeagent/agentapi"
)

// Bounds and defaults of the plugin-specific configuration.
const (
	// DefaultTimeoutSeconds is how long ADD waits for the agent by default.
	DefaultTimeoutSeconds = 60
	// MaxTimeoutSeconds bounds timeoutSeconds so a stuck agent cannot hold
	// the runtime's sandbox creation forever.
	MaxTimeoutSeconds = 600
	minMTU            = 68
	maxMTU            = 65535
)

// NetConf is the plugin's configuration: the standard CNI keys plus the
// nicpool-specific ones the agent's installer writes into the conflist.
type NetConf struct {
	types.PluginConf

	// AgentSocket is the agent's unix socket (default agentapi.DefaultSocketPath).
	AgentSocket string `json:"agentSocket,omitempty"`
	// MTU of both veth ends; 0 means the MTU of the node's uplink.
	MTU int `json:"mtu,omitempty"`
	// TimeoutSeconds bounds how long ADD waits for the agent to give an IP.
	TimeoutSeconds int `json:"timeoutSeconds,omitempty"`
	// LogFile, when set, receives one line per verb and per failure.
	LogFile string `json:"logFile,omitempty"`

	// RuntimeConfig carries capability arguments for chained plugins; nicpool
	// declares no capability of its own and ignores it.
	RuntimeConfig json.RawMessage `json:"runtimeConfig,omitempty"`
	// Args is the conventional "args" key; accepted and ignored.
	Args json.RawMessage `json:"args,omitempty"`

	// hasValidAttachments records whether the runtime sent a GC list at all,
	// because an absent list must not be read as "nothing is valid".
	hasValidAttachments bool
}

// pluginFields are the keys nicpool adds to a CNI configuration. Decoding
// them strictly turns a typo such as "agentSoket" into a clear error
// instead of a silently ignored setting.
type pluginFields struct {
	AgentSocket    string `json:"agentSocket"`
	MTU            int    `json:"mtu"`
	TimeoutSeconds int    `json:"timeoutSeconds"`
	LogFile        string `json:"logFile"`
}

// standardKeys are the top-level keys the CNI specification and its
// conventions let a runtime or a conflist put into any plugin's
// configuration; they are not nicpool's to reject.
var standardKeys = map[string]bool{
	"cniVersion":    true,
	"name":          true,
	"type":          true,
	"capabilities":  true,
	"ipam":          true,
	"dns":           true,
	"prevResult":    true,
	"runtimeConfig": true,
	"args":          true,
}

// ParseConfig decodes and validates the plugin configuration from stdin,
// filling in defaults. Every error is a *types.Error for the runtime.
func ParseConfig(stdin []byte) (*NetConf, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(stdin, &raw); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, fmt.Sprintf("decode network configuration: %v", err), "")
	}
	if raw == nil {
		return nil, types.NewError(types.ErrDecodingFailure, "decode network configuration: not a JSON object", "")
	}
	if err := decodePluginFields(raw); err != nil {
		return nil, err
	}
	conf := &NetConf{}
	if err := json.Unmarshal(stdin, conf); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, fmt.Sprintf("decode network configuration: %v", err), "")
	}
	_, conf.hasValidAttachments = raw["cni.dev/valid-attachments"]
	if !conf.hasValidAttachments {
		// libcni also sends the name the spec used by mistake (cni #1101).
		if old, ok := raw["cni.dev/attachments"]; ok {
			conf.hasValidAttachments = true
			if err := json.Unmarshal(old, &conf.ValidAttachments); err != nil {
				return nil, types.NewError(types.ErrDecodingFailure, fmt.Sprintf("decode cni.dev/attachments: %v", err), "")
			}
		}
	}
	if err := conf.defaultAndValidate(); err != nil {
		return nil, err
	}
	return conf, nil
}

// decodePluginFields rejects any key that is neither standard nor nicpool's.
func decodePluginFields(raw map[string]json.RawMessage) error {
	own := make(map[string]json.RawMessage, len(raw))
	for k, v := range raw {
		if standardKeys[k] || strings.HasPrefix(k, "cni.dev/") {
			continue
		}
		own[k] = v
	}
	b, err := json.Marshal(own)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, fmt.Sprintf("decode nicpool configuration: %v", err), "")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var fields pluginFields
	if err := dec.Decode(&fields); err != nil {
		return types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("decode nicpool configuration: %v", err),
			"allowed keys: agentSocket, mtu, timeoutSeconds, logFile and the standard CNI keys")
	}
	return nil
}

func (c *NetConf) defaultAndValidate() error {
	invalid := func(format string, a ...any) error {
		return types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf(format, a...), "")
	}
	if c.CNIVersion == "" {
		return invalid("validate network configuration: cniVersion is required")
	}
	if _, _, _, err := version.ParseVersion(c.CNIVersion); err != nil {
		return invalid("validate network configuration: cniVersion %q: %v", c.CNIVersion, err)
	}
	if c.Name == "" {
		return invalid("validate network configuration: name is required")
	}
	if c.IPAM.Type != "" {
		return invalid("validate network configuration: ipam %q is not supported: nicpool takes pod IPs from the node agent", c.IPAM.Type)
	}
	if c.AgentSocket == "" {
		c.AgentSocket = agentapi.DefaultSocketPath
	}
	if !filepath.IsAbs(c.AgentSocket) {
		return invalid("validate network configuration: agentSocket %q is not an absolute path", c.AgentSocket)
	}
	if c.MTU != 0 && (c.MTU < minMTU || c.MTU > maxMTU) {
		return invalid("validate network configuration: mtu %d is outside %d..%d (0 means the node's uplink MTU)", c.MTU, minMTU, maxMTU)
	}
	if c.TimeoutSeconds == 0 {
		c.TimeoutSeconds = DefaultTimeoutSeconds
	}
	if c.TimeoutSeconds < 1 || c.TimeoutSeconds > MaxTimeoutSeconds {
		return invalid("validate network configuration: timeoutSeconds %d is outside 1..%d", c.TimeoutSeconds, MaxTimeoutSeconds)
	}
	if c.LogFile != "" && !filepath.IsAbs(c.LogFile) {
		return invalid("validate network configuration: logFile %q is not an absolute path", c.LogFile)
	}
	return nil
}

// Timeout is TimeoutSeconds as a duration.
func (c *NetConf) Timeout() time.Duration {
	return time.Duration(c.TimeoutSeconds) * time.Second
}

// parsePrevResult decodes prevResult, when present, into the current result
// type; CHECK needs it, ADD and DEL only tolerate it.
func (c *NetConf) parsePrevResult() error {
	if c.RawPrevResult == nil {
		return nil
	}
	if err := version.ParsePrevResult(&c.PluginConf); err != nil {
		return types.NewError(types.ErrDecodingFailure, fmt.Sprintf("decode prevResult: %v", err), "")
	}
	return nil
}
