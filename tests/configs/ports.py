"""Free TCP ports on 127.0.0.1 for the tests that start services.

  from ports import free_ports
  prometheus, novapulse = free_ports(2)

The ports are distinct: every probe socket stays bound until all are chosen
(a port bound and released at once can come back on the next call). They lie
below the kernel's ephemeral range (net.ipv4.ip_local_port_range), from which
outgoing connections take their local ports, so a Kafka client or a scrape
cannot be holding one when the service binds it. Random, so tests running at
the same time rarely try the same port; the kernel's pick only when nothing
below the range binds.
"""
import random
import socket

LOWEST = 10000  # above the ports of well-known services


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_ports(n):
    """n distinct ports free on 127.0.0.1 right now."""
    low = _ephemeral_low()
    held = []
    try:
        attempts = 0
        while len(held) < n:
            sock = socket.socket()  # not inherited by children (PEP 446)
            port = random.randrange(LOWEST, low) if low > LOWEST + 1000 and attempts < 200 else 0
            attempts += 1
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                sock.close()
                continue
            held.append(sock)
        return [s.getsockname()[1] for s in held]
    finally:
        for s in held:
            s.close()


def free_port():
    return free_ports(1)[0]
