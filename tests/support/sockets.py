"""The inet sockets of processes a test started, and whether an address is loopback."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class Socket:
    """One inet socket of a process: its state and both ends' addresses ('' when unbound)."""

    process: str
    status: str
    local: str
    remote: str


def process_sockets(processes: Iterable[psutil.Process]) -> list[Socket]:
    """Every inet socket of these processes (ones that have exited are skipped)."""
    found = []
    for proc in processes:
        try:
            for conn in proc.net_connections("inet"):
                remote = conn.raddr.ip if conn.raddr else ""
                found.append(Socket(proc.name(), conn.status, conn.laddr.ip, remote))
        except psutil.NoSuchProcess:
            continue
    return found


def is_loopback(ip: str) -> bool:
    """Whether an address is loopback (IPv4-mapped ::ffff:127.0.0.1 included); '' is none."""
    if not ip:
        return True
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))
