"""Notebook kernels over Unix domain sockets instead of TCP ports.

jupyter_client's default (tcp) transport picks five free ports by binding to port 0, closing the
sockets and writing the numbers into the kernel's connection file; the kernel binds them a moment
later. Another process starting a kernel in that moment can be handed the same port, and the
kernel then dies with ``ZMQError: Address already in use`` and its client waits out the 60 s
start-up timeout. Two runs at once, a sweep's workers, or pytest-xdist's workers each starting
kernels meet it (our CI did, twice). The ipc transport names each socket by a file path made
from the kernel's own connection file, so no two kernels can be given the same one. The file's
name carries the pid of the process that started the kernel; each new one first removes the files
of kernels whose process is gone (``sweep_stale``: a process killed outright cleans up nothing).

``execute_notebook`` is ``papermill.execute_notebook`` with that kernel manager: every notebook the
workbench, its benchmarks and its tests execute goes through it (a test holds that no other call
to papermill exists). ``IpcKernelManager`` is the blocking twin for tools that build a
``KernelManager`` themselves (nbval: see ``tests/nbval_ipc.py``).
"""
from __future__ import annotations

import os
import re
import tempfile
import uuid

from jupyter_client import AsyncKernelManager, KernelManager
from traitlets import default

# A Unix socket path is at most 107 bytes on Linux; "-ipc-<port>" is appended to the stem.
_MAX_SOCKET_PATH = 100


def _socket_dir() -> str:
    """Where the connection file and its socket files go: the temp dir, or /tmp when its path
    would make the socket names too long."""
    here = tempfile.gettempdir()
    return here if len(here) + len("/mbmlab-kernel-4194304--ipc-99") + 32 <= _MAX_SOCKET_PATH else "/tmp"


# mbmlab-kernel-<pid of the process that started the kernel>-<uuid>.json, and its sockets -ipc-<n>
_KERNEL_FILE = re.compile(r"mbmlab-kernel-(\d+)-[0-9a-f]{32}(?:\.json|-ipc-\d+)")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def sweep_stale(folder: str) -> list[str]:
    """Remove the connection and socket files of kernels whose starting process is gone. A kernel
    manager deletes them when it shuts its kernel down; a process killed outright (SIGKILL, a
    machine's OOM killer) never does, and each such kernel left six files in /tmp for good. Files
    of a process still alive are never touched (nor files of other names). Returns what it removed."""
    removed, alive = [], {}
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _KERNEL_FILE.fullmatch(entry.name)
        if match is None:
            continue
        pid = int(match.group(1))
        if pid not in alive:
            alive[pid] = _alive(pid)
        if not alive[pid]:
            try:
                os.unlink(entry.path)
                removed.append(entry.path)
            except FileNotFoundError:  # another process swept it first
                pass
    return removed


class _Ipc:
    """The ipc transport, with an absolute connection file named per kernel. The socket paths
    derive from it (``<stem>-ipc-<n>``): absolute, so the kernel (started in the run folder) and
    the client (in the caller's directory) name the same files; unique, so kernels never share."""

    @default("transport")
    def _transport_default(self) -> str:
        import zmq

        return "ipc" if zmq.has("ipc") else "tcp"  # a libzmq built without ipc (older Windows builds)

    @default("connection_file")
    def _connection_file_default(self) -> str:
        folder = _socket_dir()
        sweep_stale(folder)  # what kernels of killed processes left behind
        return os.path.join(folder, f"mbmlab-kernel-{os.getpid()}-{uuid.uuid4().hex}.json")


class AsyncIpcKernelManager(_Ipc, AsyncKernelManager):
    """What papermill's nbclient engine starts kernels with (see ``KERNEL_MANAGERS``)."""


class IpcKernelManager(_Ipc, KernelManager):
    """The blocking kernel manager over ipc, for nbval and other synchronous clients."""


# Keyword arguments for papermill.execute_notebook: it passes them on to nbclient.NotebookClient.
KERNEL_MANAGERS = {"kernel_manager_class": AsyncIpcKernelManager}


def execute_notebook(source, out, **kwargs):
    """``papermill.execute_notebook(source, out, **kwargs)``, its kernel on Unix sockets
    (``AsyncIpcKernelManager``). papermill is looked up at each call, so a test's patch of
    ``papermill.execute_notebook`` is what runs."""
    import papermill as pm

    return pm.execute_notebook(str(source), str(out), **kwargs, **KERNEL_MANAGERS)
