package store

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	envCrashDir  = "NICPOOL_STORE_CRASH_DIR"
	envCrashStep = "NICPOOL_STORE_CRASH_STEP"
	envCrashOp   = "NICPOOL_STORE_CRASH_OP"
)

// TestCrashHelper is not a test: the crash tests re-run the test binary with
// it to die with exit code 137 (as after kill -9) at one step of a write.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv(envCrashDir)
	if dir == "" {
		t.Skip("helper process for the crash tests")
	}
	s, err := Open(dir)
	if err != nil {
		os.Exit(3)
	}
	s.hook = func(step string) error {
		if step == os.Getenv(envCrashStep) {
			os.Exit(137)
		}
		return nil
	}
	if os.Getenv(envCrashOp) == "remove" {
		_, _, err = s.Remove(rec("old", "").AttachmentKey)
	} else {
		_, err = s.Add(rec("new", "10.0.0.2"))
	}
	if err != nil {
		os.Exit(4)
	}
	os.Exit(0)
}

// seed writes the "old" state: one record.
func seed(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "state")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(rec("old", "10.0.0.1")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// wantOldOrNew reopens dir and checks it holds the old or the new state,
// and the new one once the rename happened.
func wantOldOrNew(t *testing.T, dir, op, step string) {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatalf("reopen after crash at %s: %v", step, err)
	}
	_, hasOld := s.Get(rec("old", "").AttachmentKey)
	_, hasNew := s.Get(rec("new", "").AttachmentKey)
	isOld := hasOld && !hasNew && len(s.List()) == 1
	var isNew bool
	if op == "remove" {
		isNew = len(s.List()) == 0
	} else {
		isNew = hasOld && hasNew && len(s.List()) == 2
	}
	if !isOld && !isNew {
		t.Fatalf("after crash at %s the state is neither old nor new: %+v", step, s.List())
	}
	afterRename := step == stepFsyncDir || step == stepDone
	if afterRename && !isNew {
		t.Errorf("crash at %s (after rename) lost the new state", step)
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, "*"+tempSuffix))
	if len(leftovers) != 0 {
		t.Errorf("temp files left after reopen: %v", leftovers)
	}
}

func TestKillAtEveryWriteStep(t *testing.T) {
	for _, op := range []string{"add", "remove"} {
		for _, step := range writeSteps {
			t.Run(op+"/"+step, func(t *testing.T) {
				dir := seed(t)
				cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$")
				cmd.Env = append(os.Environ(), envCrashDir+"="+dir, envCrashStep+"="+step, envCrashOp+"="+op)
				out, err := cmd.CombinedOutput()
				var exit *exec.ExitError
				if !errors.As(err, &exit) || exit.ExitCode() != 137 {
					t.Fatalf("helper did not die at %s: %v\n%s", step, err, out)
				}
				wantOldOrNew(t, dir, op, step)
			})
		}
	}
}

func TestInjectedFailureAtEveryWriteStep(t *testing.T) {
	for _, step := range writeSteps {
		t.Run(step, func(t *testing.T) {
			dir := seed(t)
			s, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			s.hook = func(st string) error {
				if st == step {
					return errors.New("injected crash")
				}
				return nil
			}
			_, _ = s.Add(rec("new", "10.0.0.2"))
			wantOldOrNew(t, dir, "add", step)
		})
	}
}

func TestCorruptStateFile(t *testing.T) {
	tests := []struct {
		name, content, wantInErr string
	}{
		{"truncated json", `{"version":1,"records":[{"containerID":"a"`, "decode json"},
		{"garbage", "\x00\x01not json", "decode json"},
		{"unknown version", `{"version":9,"records":[]}`, "format version 9"},
		{"invalid ip", `{"version":1,"records":[{"containerID":"a","ifName":"eth0","ip":"300.1.1.1"}]}`, "not an IPv4"},
		{"one ip held twice", `{"version":1,"records":[{"containerID":"a","ifName":"eth0","ip":"10.0.0.1"},{"containerID":"b","ifName":"eth0","ip":"10.0.0.1"}]}`, "held by another"},
		{"unknown field", `{"version":1,"records":[],"extra":true}`, "unknown field"},
		{"trailing garbage", `{"version":1,"records":[]}` + "\n\x00garbage", "after the JSON document"},
		{"second document", `{"version":1,"records":[]}` + "\n" + `{"version":1,"records":[{"containerID":"a","ifName":"eth0","ip":"10.0.0.1"}]}`, "after the JSON document"},
		{"null document", `null`, "format version 0,"},
		{"empty file", ``, "decode json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, FileName)
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Open(dir)
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("Open = %v, want *CorruptError", err)
			}
			msg := err.Error()
			for _, want := range []string{path, tt.wantInErr, "--reset-state"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not mention %q", msg, want)
				}
			}
			aside, err := ResetState(dir, time.Unix(1700000000, 0))
			if err != nil || aside == "" {
				t.Fatalf("ResetState = %q, %v", aside, err)
			}
			if s, err := Open(dir); err != nil || len(s.List()) != 0 {
				t.Errorf("Open after ResetState = %v, want an empty store", err)
			}
			if _, err := os.Stat(aside); err != nil {
				t.Errorf("the corrupt file was not kept aside: %v", err)
			}
		})
	}
}
