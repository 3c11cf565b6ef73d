package bench

import "testing"

func TestPAWSTimewait(t *testing.T) {
	const netstat = `TcpExt: SyncookiesSent SyncookiesRecv PAWSActive PAWSEstab PAWSTimewait TW
TcpExt: 0 0 0 3 8439 96637
IpExt: InNoRoutes PAWSTimewait
IpExt: 0 5
`
	if n, err := pawsTimewait(netstat); err != nil || n != 8439 {
		t.Errorf("got %d, %v; want 8439", n, err)
	}
	for _, bad := range []string{
		"",
		"IpExt: InNoRoutes\nIpExt: 0\n",
		"TcpExt: PAWSTimewait TW\nTcpExt: 1\n",
		"TcpExt: TW\nTcpExt: 1\n",
		"TcpExt: PAWSTimewait\nTcpExt: x\n",
	} {
		if n, err := pawsTimewait(bad); err == nil {
			t.Errorf("%q: got %d, want an error", bad, n)
		}
	}
}
