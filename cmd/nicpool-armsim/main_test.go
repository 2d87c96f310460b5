package main

import (
	"strings"
	"testing"
)

func TestRunRejectsBadInvocations(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{name: "version", args: []string{"--version"}},
		{name: "no topology", args: nil, wantErr: "--topology is required"},
		{name: "missing topology file", args: []string{"--topology", "/nonexistent/topo.yaml"}, wantErr: "read topology"},
		{name: "unknown flag", args: []string{"--bogus"}, wantErr: "unknown flag"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := run(tc.args)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("run: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("run error = %v, want %q", err, tc.wantErr)
			}
		})
	}
}
