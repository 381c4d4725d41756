package bridge

import (
	"net"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMarkedDialer dials a loopback listener and reads SO_MARK back from
// the connected socket. Without CAP_NET_ADMIN the dial must fail naming
// the option, not connect unmarked.
func TestMarkedDialer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := MarkedDialer(ReplyMark).Dial("tcp", ln.Addr().String())
	if os.Geteuid() != 0 {
		if err == nil || !strings.Contains(err.Error(), "SO_MARK") {
			t.Fatalf("Dial without root = %v, want an SO_MARK error", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var mark int
	var gerr error
	if err := rc.Control(func(fd uintptr) { mark, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK) }); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	if mark != ReplyMark {
		t.Errorf("SO_MARK = %#x, want %#x", mark, ReplyMark)
	}
}
