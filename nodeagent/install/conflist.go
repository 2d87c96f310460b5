package install

import (
	"encoding/json"
	"fmt"

	"github.com/containernetworking/cni/libcni"
)

// pluginConf is the nicpool plugin's entry; the field names are the plugin's.
type pluginConf struct {
	Type           string `json:"type"`
	AgentSocket    string `json:"agentSocket"`
	MTU            int    `json:"mtu,omitempty"`
	TimeoutSeconds int    `json:"timeoutSeconds,omitempty"`
	LogFile        string `json:"logFile,omitempty"`
}

// capability is the runtime capability each chained plugin takes its
// arguments through.
var capability = map[string]string{"portmap": "portMappings", "bandwidth": "bandwidth"}

// chainedConf is a reference plugin appended after ours.
type chainedConf struct {
	Type         string          `json:"type"`
	Capabilities map[string]bool `json:"capabilities"`
}

type confList struct {
	CNIVersion string `json:"cniVersion"`
	Name       string `json:"name"`
	Plugins    []any  `json:"plugins"`
}

// ConfList returns the conflist Install writes; with AutoCNIVersion it
// first reads the runtime's version and asks the chained plugins for theirs.
func (i *Installer) ConfList() ([]byte, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.render()
}

// render builds the conflist and checks that libcni, as runtimes use it,
// accepts it.
func (i *Installer) render() ([]byte, error) {
	v, err := i.cniVersion()
	if err != nil {
		return nil, err
	}
	c := confList{CNIVersion: v, Name: i.cfg.NetworkName}
	c.Plugins = append(c.Plugins, pluginConf{
		Type:           PluginType,
		AgentSocket:    i.cfg.AgentSocket,
		MTU:            i.cfg.MTU,
		TimeoutSeconds: i.cfg.TimeoutSeconds,
		LogFile:        i.cfg.LogFile,
	})
	for _, p := range i.chained() {
		c.Plugins = append(c.Plugins, chainedConf{Type: p, Capabilities: map[string]bool{capability[p]: true}})
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("render cni conflist: %w", err)
	}
	b = append(b, '\n')
	if _, err := libcni.ConfListFromBytes(b); err != nil {
		return nil, fmt.Errorf("validate rendered cni conflist: %w", err)
	}
	return b, nil
}
