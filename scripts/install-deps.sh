#!/usr/bin/env bash
# Installs the Debian packages uvs's tests and demo use, only when missing.
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have ip       || need+=(iproute2)
have nft      || need+=(nftables)
have iptables || need+=(iptables)
have socat    || need+=(socat)
have curl     || need+=(curl)
have ethtool  || need+=(ethtool)
have tcpdump  || need+=(tcpdump)
have ping     || need+=(iputils-ping)
# keepalived's VRRP half (keepalived --vrrp) for the HA e2e test and labs;
# it lives in /usr/sbin, which a user's PATH may lack.
{ have keepalived || [ -x /usr/sbin/keepalived ]; } || need+=(keepalived)
# hping3 (a spoofed SYN / UDP flood) for the flood e2e test and the bench's
# flood figure; it lives in /usr/sbin too.
{ have hping3 || [ -x /usr/sbin/hping3 ]; } || need+=(hping3)
# Prometheus (the server and promtool) for the metrics tests: promtool
# check metrics on uvsd's /metrics, and a real server scraping uvsd in the
# metrics e2e test.
{ have prometheus && have promtool; } || need+=(prometheus)
# systemd-analyze (systemd-analyze verify on the unit make install
# installs, e2e/systemd_test.go); procps's /bin/kill is the unit's reload.
# BIRD 2 (bird, birdc: the router with ECMP in e2e/bgp_test.go, which
# learns the VIPs from uvsd's GoBGP); it lives in /usr/sbin.
{ have bird || [ -x /usr/sbin/bird ]; } || need+=(bird2)
have systemd-analyze || need+=(systemd)
[ -x /bin/kill ] || need+=(procps)
# rsync (Debian's) for uvs-sync: the client it runs and the daemons of the
# content-sync e2e test and lab (e2e/contentsync_test.go, uvs-lab run sync).
have rsync || need+=(rsync)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing packages: ${need[*]} (run as root, or install them yourself)" >&2
  exit 0
fi
echo "installing: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
