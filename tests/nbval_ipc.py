"""pytest plugin for the nbval subprocess (``-p nbval_ipc``): nbval starts its kernels with
``jupyter_client.KernelManager`` over tcp, which can race another process for a free port;
this swaps in ``mbmlab.lab.kernels.IpcKernelManager`` (Unix sockets, one set per kernel)."""
import nbval.kernel

from mbmlab.lab.kernels import IpcKernelManager


def pytest_configure(config):
    nbval.kernel.KernelManager = IpcKernelManager
