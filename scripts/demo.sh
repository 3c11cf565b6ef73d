#!/usr/bin/env bash
# make demo: for each forwarding method, build a small LVS lab in network
# namespaces, start uvsd on the director with ipvsadm-style rules, send
# real HTTP requests from a client namespace to the VIP, and print which
# real server answered. Everything is torn down at the end (also on Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
REQS=${REQS:-8}
P="uvs-demo$$"            # namespace prefix, unique per run
PIDS=()

if [ "$(id -u)" -ne 0 ]; then echo "make demo needs root (network namespaces)" >&2; exit 1; fi
for c in ip curl ethtool; do command -v $c >/dev/null || { echo "missing $c: run make deps" >&2; exit 1; }; done

cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  PIDS=()
  rm -f "/tmp/$P-uvsd.log"
  for ns in $(ip netns list | awk '{print $1}' | grep "^$P-" || true); do ip netns del "$ns"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ns()   { ip netns add "$P-$1"; ip -n "$P-$1" link set lo up; }
nsx()  { local n=$1; shift; ip netns exec "$P-$n" "$@"; }
veth() { ip link add "$2" netns "$P-$1" type veth peer name "$4" netns "$P-$3"
         ip -n "$P-$1" link set "$2" up; ip -n "$P-$3" link set "$4" up
         nsx "$1" ethtool -K "$2" tso off gso off gro off >/dev/null 2>&1 || true
         nsx "$3" ethtool -K "$4" tso off gso off gro off >/dev/null 2>&1 || true; }
httpd() { # namespace: a real server answering every HTTP request with its name
  ip netns exec "$P-$1" "$BIN/uvs-lab" httpd --name "$1" >/dev/null 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do nsx "$1" curl -s --max-time 1 http://127.0.0.1/ >/dev/null && return 0; sleep 0.05; done; }
uvsd() { # namespace rules...
  local n=$1; shift; local rules; rules=$(mktemp); printf '%s\n' "$@" > "$rules"
  echo "  # on the director, the rules uvsd loads (ipvsadm -S format):"; sed 's/^/  ipvsadm /' "$rules"
  ip netns exec "$P-$n" "$BIN/uvsd" --rules "$rules" --log-level warn > "/tmp/$P-uvsd.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do nsx "$n" nft list tables 2>/dev/null | grep -q uvs && { rm -f "$rules"; return 0; }; sleep 0.05; done
  echo "uvsd did not start:"; cat "/tmp/$P-uvsd.log"; exit 1; }
requests() { # mode sched client-ns url
  local mode=$1 sched=$2 cli=$3 url=$4 ok=0 err=0 seq=""; declare -A count=()
  for _ in $(seq "$REQS"); do
    if out=$(nsx "$cli" curl -s --max-time 3 "$url"); then
      out=${out//$'\n'/}; count[$out]=$(( ${count[$out]:-0} + 1 )); ok=$((ok+1)); seq+="$out "
    else err=$((err+1)); fi
  done
  echo "  answers in order: $seq"
  local per=""; for k in $(printf '%s\n' "${!count[@]}" | sort); do per+="$k=${count[$k]} "; done
  ROWS+=("$(printf '%-8s %-6s %-9s %-24s %s' "$mode" "$sched" "$REQS" "${per:--}" "$err")")
}
ROWS=()

echo "== NAT (-m): the real servers' gateway is the director"
ns cli; ns dir; ns rs1; ns rs2
veth cli c0 dir d0; veth dir d1 rs1 r0; veth dir d2 rs2 r0
ip -n "$P-cli" addr add 10.0.1.2/24 dev c0; ip -n "$P-cli" route add default via 10.0.1.1
ip -n "$P-dir" addr add 10.0.1.1/24 dev d0
ip -n "$P-dir" addr add 10.0.2.1/24 dev d1; ip -n "$P-dir" addr add 10.0.3.1/24 dev d2
ip -n "$P-rs1" addr add 10.0.2.11/24 dev r0; ip -n "$P-rs1" route add default via 10.0.2.1
ip -n "$P-rs2" addr add 10.0.3.12/24 dev r0; ip -n "$P-rs2" route add default via 10.0.3.1
httpd rs1; httpd rs2
uvsd dir "-A -t 10.0.1.100:80 -s wrr" "-a -t 10.0.1.100:80 -r 10.0.2.11:80 -m -w 3" "-a -t 10.0.1.100:80 -r 10.0.3.12:80 -m -w 1"
requests NAT wrr cli http://10.0.1.100/
cleanup

echo "== FULLNAT (-b): the real servers have no route to the client at all"
ns cli; ns dir; ns rs1; ns rs2
veth cli c0 dir d0; veth dir d1 rs1 r0; veth dir d2 rs2 r0
ip -n "$P-cli" addr add 10.0.1.2/24 dev c0; ip -n "$P-cli" route add default via 10.0.1.1
ip -n "$P-dir" addr add 10.0.1.1/24 dev d0
ip -n "$P-dir" addr add 10.0.2.1/24 dev d1; ip -n "$P-dir" addr add 10.0.3.1/24 dev d2
ip -n "$P-rs1" addr add 10.0.2.11/24 dev r0; ip -n "$P-rs2" addr add 10.0.3.12/24 dev r0
httpd rs1; httpd rs2
uvsd dir "-A -t 10.0.1.100:80 -s rr" "-a -t 10.0.1.100:80 -r 10.0.2.11:80 -b" "-a -t 10.0.1.100:80 -r 10.0.3.12:80 -b"
requests FULLNAT rr cli http://10.0.1.100/
cleanup

echo "== DR (-g): one LAN, the VIP on the real servers' lo, replies go straight to the client"
ns sw; ns cli; ns dir; ns rs1; ns rs2
ip -n "$P-sw" link add br0 type bridge; ip -n "$P-sw" link set br0 up
i=0; for n in cli dir rs1 rs2; do i=$((i+1)); veth "$n" e0 sw "p$i"; ip -n "$P-sw" link set "p$i" master br0; done
ip -n "$P-cli" addr add 10.0.5.2/24 dev e0; ip -n "$P-dir" addr add 10.0.5.1/24 dev e0
for n in 1 2; do
  ip -n "$P-rs$n" addr add "10.0.5.1$n/24" dev e0
  ip -n "$P-rs$n" addr add 10.0.5.100/32 dev lo          # VIP on lo, as the seeds' real-server script
  for k in all lo; do nsx "rs$n" sysctl -qw "net.ipv4.conf.$k.arp_ignore=1" "net.ipv4.conf.$k.arp_announce=2"; done
done
httpd rs1; httpd rs2
uvsd dir "-A -t 10.0.5.100:80 -s rr" "-a -t 10.0.5.100:80 -r 10.0.5.11 -g" "-a -t 10.0.5.100:80 -r 10.0.5.12 -g"
requests DR rr cli http://10.0.5.100/
cleanup

if [ -x "$BIN/uvs-rs" ]; then
echo "== TUN (-i): IPIP to real servers in other subnets, decapsulated by uvs-rs (no ipip module here)"
ns cli; ns dir; ns rtr; ns rs1; ns rs2
veth cli c0 rtr x0; veth dir d0 rtr x1; veth rs1 r0 rtr x2; veth rs2 r0 rtr x3
ip -n "$P-rtr" addr add 10.0.1.254/24 dev x0; ip -n "$P-rtr" addr add 10.0.3.254/24 dev x1
ip -n "$P-rtr" addr add 10.0.4.254/24 dev x2; ip -n "$P-rtr" addr add 10.0.6.254/24 dev x3
nsx rtr sysctl -qw net.ipv4.ip_forward=1
ip -n "$P-rtr" route add 10.0.3.100/32 via 10.0.3.1
ip -n "$P-cli" addr add 10.0.1.2/24 dev c0; ip -n "$P-cli" route add default via 10.0.1.254
ip -n "$P-dir" addr add 10.0.3.1/24 dev d0; ip -n "$P-dir" route add default via 10.0.3.254
ip -n "$P-rs1" addr add 10.0.4.11/24 dev r0; ip -n "$P-rs1" route add default via 10.0.4.254
ip -n "$P-rs2" addr add 10.0.6.12/24 dev r0; ip -n "$P-rs2" route add default via 10.0.6.254
for n in 1 2; do nsx "rs$n" "$BIN/uvs-rs" tun up --vip 10.0.3.100 >/dev/null; done
httpd rs1; httpd rs2
uvsd dir "-A -t 10.0.3.100:80 -s rr" "-a -t 10.0.3.100:80 -r 10.0.4.11 -i" "-a -t 10.0.3.100:80 -r 10.0.6.12 -i"
requests TUN rr cli http://10.0.3.100/
for n in 1 2; do nsx "rs$n" "$BIN/uvs-rs" tun down --vip 10.0.3.100 >/dev/null || true; done
cleanup
fi

echo
printf '%-8s %-6s %-9s %-24s %s\n' mode sched requests "answers per real server" errors
for r in "${ROWS[@]}"; do echo "$r"; done
