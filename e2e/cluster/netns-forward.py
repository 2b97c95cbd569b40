#!/usr/bin/env python3
"""Forwards TCP connections from one network namespace to another.

    netns-forward.py LISTEN_NETNS LISTEN_ADDR:PORT CONNECT_NETNS CONNECT_ADDR:PORT

A namespace is a path such as /run/netns/NAME or /proc/PID/ns/net, or `-` for this process's
own. The listening socket is made inside LISTEN_NETNS and every outgoing connection inside
CONNECT_NETNS (a socket keeps the namespace it was made in), so neither namespace needs a route
to the other: e2e/cluster/up.sh uses it to let the nodes reach the local registry on the host's
127.0.0.1:5000 and the host reach the API server. Runs until killed.
"""

import ctypes
import os
import socket
import sys
import threading

CLONE_NEWNET = 0x40000000
libc = ctypes.CDLL(None, use_errno=True)


def enter(path):
    """Moves the calling thread into the network namespace at path."""
    if path == "-":
        path = "/proc/self/ns/net"
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


def addr(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
            try:
                s.shutdown(how)
            except OSError:
                pass


def serve(client, target):
    try:
        upstream = socket.create_connection(target, timeout=10)
    except OSError:
        client.close()
        return
    upstream.settimeout(None)
    back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
    back.start()
    pump(client, upstream)
    back.join()
    client.close()
    upstream.close()


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    listen_ns, listen_addr, connect_ns, connect_addr = sys.argv[1:]
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    enter(listen_ns)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(addr(listen_addr))
    listener.listen(128)
    if connect_ns == "-":
        enter(f"/proc/self/fd/{own}")
    else:
        enter(connect_ns)
    os.close(own)
    target = addr(connect_addr)
    # Threads started from here inherit this thread's (the connect) namespace.
    while True:
        client, _ = listener.accept()
        threading.Thread(target=serve, args=(client, target), daemon=True).start()


if __name__ == "__main__":
    main()
