"""vLLM's native multi-node mode, as far as the SOLV roles depend on it: the head (rank 0) listens on
--master-addr:--master-port and serves the API only when every rank of --nnodes joined; a follower (--headless)
connects there (retrying until the head is up) and serves nothing. A lost rank stops the group: the head exits when
a follower's connection drops, a follower when the head's does (vLLM's engine dies with its NCCL group), and
systemd restarts each until the group is whole again.

Wire protocol (the stand-in's own, over TCP): a follower sends `{"rank": R, "nnodes": N}` and a newline; the head
answers `ok` and a newline, or an error line and closes.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time

log = logging.getLogger("vllm_standin")


def _lost(what: str) -> None:
    log.error("RuntimeError: %s; the group is broken, exiting (vLLM's engine dies with its NCCL group)", what)
    logging.shutdown()
    os._exit(1)


def head_wait(master_addr: str, master_port: int, nnodes: int) -> None:
    """Rank 0: wait until ranks 1..nnodes-1 joined, then watch them (a lost one ends the process)."""
    server = socket.create_server(("0.0.0.0", master_port), reuse_port=False)
    log.info("head of %d nodes: waiting for %d follower(s) on %s:%d", nnodes, nnodes - 1, master_addr, master_port)
    joined: dict[int, socket.socket] = {}
    while len(joined) < nnodes - 1:
        conn, peer = server.accept()
        try:
            hello = json.loads(conn.makefile("r").readline() or "{}")
            rank, their_nnodes = int(hello.get("rank", -1)), int(hello.get("nnodes", -1))
        except (ValueError, OSError):
            conn.close()
            continue
        if their_nnodes != nnodes or not 0 < rank < nnodes or rank in joined:
            conn.sendall(f"refused: rank {rank} of {their_nnodes}, this group has {nnodes}\n".encode())
            conn.close()
            continue
        conn.sendall(b"ok\n")
        joined[rank] = conn
        log.info("rank %d joined from %s (%d/%d)", rank, peer[0], len(joined) + 1, nnodes)
    server.close()
    for rank, conn in joined.items():
        threading.Thread(target=_watch, args=(conn, f"rank {rank} left the group"), daemon=True).start()
    log.info("all %d ranks joined", nnodes)


def follower_join(master_addr: str, master_port: int, rank: int, nnodes: int) -> None:
    """Rank > 0: join the head (retrying while it is not up), then serve nothing until the head goes."""
    while True:
        try:
            conn = socket.create_connection((master_addr, master_port), timeout=5)
            conn.sendall((json.dumps({"rank": rank, "nnodes": nnodes}) + "\n").encode())
            answer = conn.makefile("r").readline().strip()
        except OSError as err:
            log.info("waiting for the head at %s:%d (%s)", master_addr, master_port, err)
            time.sleep(1)
            continue
        if answer != "ok":
            _lost(f"the head at {master_addr}:{master_port} refused rank {rank}: {answer or 'closed'}")
        conn.settimeout(None)
        log.info("rank %d of %d joined the head at %s:%d (headless: no API)", rank, nnodes, master_addr, master_port)
        _watch(conn, f"the head at {master_addr}:{master_port} left the group")


def _watch(conn: socket.socket, what: str) -> None:
    try:
        while conn.recv(1):
            pass
    except OSError:
        pass
    _lost(what)
