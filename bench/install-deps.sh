#!/usr/bin/env bash
# Installs the Debian packages `make bench` needs, only when missing:
# the peers it measures (nftables, iptables, HAProxy), the load tools
# (wrk, iperf3), the real servers' web server (nginx-light) and helpers.
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have ip        || need+=(iproute2)
have nft       || need+=(nftables)
have iptables  || need+=(iptables)
have haproxy   || need+=(haproxy)
have wrk       || need+=(wrk)
have nginx     || need+=(nginx-light)
have iperf3    || need+=(iperf3)
have conntrack || need+=(conntrack)
have ethtool   || need+=(ethtool)
have taskset   || need+=(util-linux)
# hping3 (a spoofed SYN / UDP flood) for the flood e2e test and the bench's
# flood figure; it lives in /usr/sbin too.
{ have hping3 || [ -x /usr/sbin/hping3 ]; } || need+=(hping3)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "bench: missing packages: ${need[*]} (run as root, or install them yourself)" >&2
  exit 1
fi
echo "bench: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The packaged services must not run in the host namespace: the benchmark
# starts its own instances inside its namespaces.
for s in nginx haproxy; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$s" 2>/dev/null; then
    systemctl stop "$s" || true
    systemctl disable "$s" >/dev/null 2>&1 || true
  fi
done
