// Package pdeath ties this process's life to the test binary that started it.
//
// When KILN_PARENT_PID is set, the kernel is asked to SIGKILL this process as soon as the
// thread that forked it exits (prctl PR_SET_PDEATHSIG), and the process exits at once if
// that parent is already gone (getppid differs), closing the race between fork and prctl.
// It runs in init, when the Go runtime keeps the main goroutine on the main thread, so the
// setting sits on a thread that lives as long as the process.
package pdeath

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
)

func init() {
	want := os.Getenv("KILN_PARENT_PID")
	if want == "" {
		return
	}
	parent, err := strconv.Atoi(want)
	if err != nil {
		fmt.Fprintf(os.Stderr, "KILN_PARENT_PID=%q is not a process id\n", want)
		os.Exit(2)
	}
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0); errno != 0 {
		fmt.Fprintf(os.Stderr, "prctl(PR_SET_PDEATHSIG): %v\n", errno)
		os.Exit(2)
	}
	if got := os.Getppid(); got != parent {
		fmt.Fprintf(os.Stderr, "parent %d is gone (parent is now %d)\n", parent, got)
		os.Exit(1)
	}
}
