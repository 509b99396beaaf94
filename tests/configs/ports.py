"""TCP ports on 127.0.0.1 for the tests that start services.

A service the test starts listens on port 0, and listening_port reads the
port the kernel gave it from /proc, so nothing else can take the port
between a probe and the bind:

  from ports import listening_port
  prom = subprocess.Popen(["prometheus", "--web.listen-address=127.0.0.1:0", ...])
  port = listening_port(prom, timeout=30)

free_ports is for addresses nobody will listen on (a broker that is not
there) and for a service that must be told its own address before it starts.

The ports are distinct: every probe socket stays bound until all are chosen
(a port bound and released at once can come back on the next call). They lie
below the kernel's ephemeral range (net.ipv4.ip_local_port_range), from which
outgoing connections take their local ports, so a Kafka client or a scrape
cannot be holding one when the service binds it. Random, so tests running at
the same time rarely try the same port; the kernel's pick only when nothing
below the range binds.
"""
import os
import random
import socket
import time

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


def _listening(pid):
    """The IPv4 TCP ports process `pid` listens on, from /proc."""
    inodes = set()
    fd_dir = f"/proc/{pid}/fd"
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return []
    for name in names:
        try:
            target = os.readlink(os.path.join(fd_dir, name))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = []
    try:
        with open(f"/proc/{pid}/net/tcp") as f:
            next(f)  # the header
            for line in f:
                fields = line.split()
                # sl local_address rem_address st ... inode (field 9)
                if len(fields) > 9 and fields[3] == "0A" and fields[9] in inodes:
                    ports.append(int(fields[1].split(":")[1], 16))
    except OSError:
        return []
    return ports


def listening_port(proc, timeout=30):
    """The port a child process (subprocess.Popen) started on port 0 listens
    on, once it does; raises RuntimeError if it exits or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        ports = _listening(proc.pid)
        if ports:
            return ports[0]
        if proc.poll() is not None:
            raise RuntimeError(f"pid {proc.pid} exited ({proc.returncode}) before it listened")
        if time.monotonic() > deadline:
            raise RuntimeError(f"pid {proc.pid} listens on no port after {timeout} s")
        time.sleep(0.05)
