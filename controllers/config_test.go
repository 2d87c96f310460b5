package controllers

import (
	"flag"
	"strings"
	"testing"
)

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{name: "defaults", args: nil},
		{name: "lower limits", args: []string{"--per-vm-limit=40", "--per-vnet-limit=1000"}},
		{name: "per-VM above Azure's maximum", args: []string{"--per-vm-limit=251"}, wantErr: "--per-vm-limit=251: must be between 1 and 250"},
		{name: "per-VNet above the maximum", args: []string{"--per-vnet-limit=16001"}, wantErr: "--per-vnet-limit=16001: must be between 1 and 16000"},
		{name: "no workers", args: []string{"--workers=0"}, wantErr: "--workers=0"},
		{name: "unknown auth mode", args: []string{"--auth-mode=password"}, wantErr: "auth mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := DefaultOptions()
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			o.BindFlags(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatalf("parse %v: %v", tt.args, err)
			}
			err := o.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Validate() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}
