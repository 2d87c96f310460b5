package cni

import (
	"io"
	"log/slog"
	"os"

	"github.com/containernetworking/cni/pkg/skel"
)

// newLogger returns a logger writing to conf.LogFile, or discarding when
// none is set: stdout belongs to the CNI protocol and stderr is often lost.
// The returned close function is always safe to call.
func newLogger(conf *NetConf, verb string, args *skel.CmdArgs) (*slog.Logger, func()) {
	w := io.Discard
	closeFn := func() {}
	if conf != nil && conf.LogFile != "" {
		f, err := os.OpenFile(conf.LogFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
		if err == nil {
			w = f
			closeFn = func() { _ = f.Close() }
		}
	}
	log := slog.New(slog.NewTextHandler(w, nil)).With("verb", verb)
	if args != nil && args.ContainerID != "" {
		log = log.With("containerID", args.ContainerID, "ifName", args.IfName)
	}
	return log, closeFn
}

// logOutcome records how a verb ended.
func logOutcome(log *slog.Logger, err error) {
	if err != nil {
		log.Error("Verb failed", "err", err)
		return
	}
	log.Info("Verb succeeded")
}
