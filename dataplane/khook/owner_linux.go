package khook

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// tableFlagOwner is NFT_TABLE_F_OWNER (include/uapi/linux/netfilter/
// nf_tables.h, Linux 5.12): the table belongs to the netlink socket that
// created it. The kernel deletes it when that socket is released — when
// the process exits for any reason, SIGKILL, panic and OOM kill included —
// and refuses every change to it (and its deletion) from other sockets
// (nft_table_lookup: EPERM). Listing it stays open to all.
const tableFlagOwner = 0x2

// ownerFlag is the flag the table is created with; a test sets a bit the
// kernel does not know to exercise the fallback of older kernels.
var ownerFlag uint32 = tableFlagOwner

// lastingConn is the nftables connection that owns the table: one netlink
// socket kept open for the life of the Hooks (until Remove), through which
// every change to the table goes.
type lastingConn struct {
	c *nftables.Conn
	// raw is the socket underneath, for the one message google/nftables
	// cannot send (a table with flags); deadline bounds its reads.
	raw      syscall.RawConn
	deadline func(time.Time) error
	seq      uint32
}

// openLasting dials the lasting connection in h's namespace.
func (h *Hooks) openLasting() (*lastingConn, error) {
	opts := []nftables.ConnOption{nftables.AsLasting(), nftables.WithSockOptions(buffers, capture)}
	if h.opts.NetNS > 0 {
		opts = append(opts, nftables.WithNetNSFd(int(h.opts.NetNS)))
	}
	captured.Lock()
	defer captured.Unlock()
	captured.raw, captured.deadline = nil, nil
	c, err := nftables.New(opts...) // dials, calling capture
	if err != nil {
		return nil, err
	}
	l := &lastingConn{c: c, raw: captured.raw, deadline: captured.deadline, seq: 0x75767300}
	captured.raw, captured.deadline = nil, nil
	if l.raw == nil {
		_ = c.CloseLasting()
		return nil, errors.New("nftables: no socket to send the table's flags on")
	}
	return l, nil
}

// captured passes the socket from capture (called inside nftables.New) to
// openLasting, which holds the lock across the call.
var captured struct {
	sync.Mutex
	raw      syscall.RawConn
	deadline func(time.Time) error
}

// capture is an nftables.SockOption keeping the socket's raw connection.
// Generic for the reason buffers is.
func capture[C interface {
	SyscallConn() (syscall.RawConn, error)
	SetReadDeadline(time.Time) error
}](c C) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	captured.raw, captured.deadline = raw, c.SetReadDeadline
	return nil
}

func (l *lastingConn) close() error { return l.c.CloseLasting() }

// newTable creates the (absent) table with flags in its own transaction on
// l's socket: BATCH_BEGIN, NEWTABLE (NLM_F_CREATE|NLM_F_EXCL|NLM_F_ACK),
// BATCH_END. It returns the kernel's answer (an unix.Errno on error).
func (l *lastingConn) newTable(flags uint32) error {
	l.seq++
	seq := l.seq
	msg := nlMsg(nil, unix.NFNL_MSG_BATCH_BEGIN, unix.NLM_F_REQUEST, seq, unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES, nil)
	var attrs []byte
	attrs = nlAttr(attrs, unix.NFTA_TABLE_NAME, append([]byte(TableName), 0))
	attrs = nlAttr(attrs, unix.NFTA_TABLE_FLAGS, binary.BigEndian.AppendUint32(nil, flags))
	msg = nlMsg(msg, unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWTABLE,
		unix.NLM_F_REQUEST|unix.NLM_F_ACK|unix.NLM_F_CREATE|unix.NLM_F_EXCL, seq, unix.NFPROTO_NETDEV, 0, attrs)
	msg = nlMsg(msg, unix.NFNL_MSG_BATCH_END, unix.NLM_F_REQUEST, seq, unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES, nil)

	var serr error
	if err := l.raw.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return serr != unix.EAGAIN
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("sendto: %w", serr)
	}
	_ = l.deadline(time.Now().Add(5 * time.Second))
	defer func() { _ = l.deadline(time.Time{}) }()
	buf := make([]byte, 1<<16)
	for {
		var n int
		var rerr error
		if err := l.raw.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), buf, 0)
			return rerr != unix.EAGAIN
		}); err != nil {
			return err
		}
		if rerr != nil {
			return fmt.Errorf("recvfrom: %w", rerr)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.Header.Seq != seq || m.Header.Type != unix.NLMSG_ERROR || len(m.Data) < 4 {
				continue
			}
			if code := int32(binary.NativeEndian.Uint32(m.Data)); code != 0 {
				return unix.Errno(-code)
			}
			return nil
		}
	}
}

// nlMsg appends one netfilter netlink message (nlmsghdr, nfgenmsg, attrs).
func nlMsg(b []byte, typ, flags uint16, seq uint32, family uint8, resID uint16, attrs []byte) []byte {
	n := unix.NLMSG_HDRLEN + 4 + len(attrs)
	b = binary.NativeEndian.AppendUint32(b, uint32(n))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = binary.NativeEndian.AppendUint16(b, flags)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0) // the kernel fills in the port ID
	b = append(b, family, unix.NFNETLINK_V0)
	b = binary.BigEndian.AppendUint16(b, resID)
	return append(b, attrs...)
}

// nlAttr appends one netlink attribute, padded to 4 bytes.
func nlAttr(b []byte, typ uint16, data []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(4+len(data)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// ownTable makes the table exist, owned by a fresh lasting connection:
// it deletes a table a predecessor left that nobody owns (a uvsd of an
// older version, or one that fell back), then creates the table with the
// owner flag. A kernel that refuses the flag (before 5.12) turns h to the
// fallback: an unowned table changed through short-lived connections, as
// before, which a crash leaves behind for uvsd --cleanup. h.mu is held.
func (h *Hooks) ownTable() error {
	tc, err := h.conn()
	if err != nil {
		return err
	}
	if err := deleteTable(tc); err != nil {
		if errors.Is(err, unix.EPERM) {
			return ErrTableBusy
		}
		return err
	}
	if h.fallback != nil {
		return nil
	}
	l, err := h.openLasting()
	if err != nil {
		return err
	}
	err = l.newTable(ownerFlag)
	switch {
	case err == nil:
		h.lasting = l
		return nil
	case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EINVAL):
		_ = l.close()
		h.fallback = fmt.Errorf("the kernel refused an owned nftables table (NFT_TABLE_F_OWNER, Linux 5.12): %w; "+
			"a crashed uvsd leaves its table behind until uvsd --cleanup", err)
		return nil
	default:
		_ = l.close()
		return fmt.Errorf("create table %s: %w", TableName, err)
	}
}

// teardown queues the deletion of what p built inside the table: the base
// chains (their rules go with them, releasing the jumps and set lookups),
// then the ICMP chains, then the sets.
func (p *plan) teardown(c *nftables.Conn) {
	t := table()
	for _, ifc := range p.ifs {
		c.DelChain(&nftables.Chain{Name: "in_" + ifc.name, Table: t})
	}
	for _, ifc := range p.ifs {
		for f := range families {
			c.DelChain(&nftables.Chain{Name: "icmp" + families[f].suffix + "_" + ifc.name, Table: t})
		}
	}
	for _, s := range p.sets {
		c.DelSet(s.set)
	}
}

// Owned reports whether the table belongs to h's process, so that the
// kernel removes it when the process ends however it ends; false before
// the first Apply and after a fallback (see Fallback).
func (h *Hooks) Owned() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lasting != nil
}

// Fallback returns why the table is not owned by the process (a kernel
// without NFT_TABLE_F_OWNER), or nil: one line for the daemon to warn with.
func (h *Hooks) Fallback() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.fallback
}
