package install

import (
	"encoding/json"
	"fmt"

	"github.com/containernetworking/cni/libcni"
)

// cniVersion is the CNI spec version of the conflist; the plugin supports it
// and runtimes that do not yet speak it refuse the file loudly.
const cniVersion = "1.1.0"

// pluginConf is the nicpool plugin's entry; the field names are the plugin's.
type pluginConf struct {
	Type           string `json:"type"`
	AgentSocket    string `json:"agentSocket"`
	MTU            int    `json:"mtu,omitempty"`
	TimeoutSeconds int    `json:"timeoutSeconds,omitempty"`
	LogFile        string `json:"logFile,omitempty"`
}

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

// ConfList returns the conflist Install writes.
func (i *Installer) ConfList() ([]byte, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.render()
}

// render builds the conflist and checks that libcni, as runtimes use it,
// accepts it.
func (i *Installer) render() ([]byte, error) {
	c := confList{CNIVersion: cniVersion, Name: i.cfg.NetworkName}
	c.Plugins = append(c.Plugins, pluginConf{
		Type:           PluginType,
		AgentSocket:    i.cfg.AgentSocket,
		MTU:            i.cfg.MTU,
		TimeoutSeconds: i.cfg.TimeoutSeconds,
		LogFile:        i.cfg.LogFile,
	})
	if i.cfg.ChainPortmap {
		c.Plugins = append(c.Plugins, chainedConf{Type: "portmap", Capabilities: map[string]bool{"portMappings": true}})
	}
	if i.cfg.ChainBandwidth {
		c.Plugins = append(c.Plugins, chainedConf{Type: "bandwidth", Capabilities: map[string]bool{"bandwidth": true}})
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
