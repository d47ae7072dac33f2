"""Jupyter kernels for papermill that cannot collide: each talks over its own Unix sockets (IPC transport).

With the default TCP transport, jupyter_client picks "free" ports by binding port 0 and closing it again;
the kernel binds them a moment later. Kernels started at the same moment by separate processes (Snakemake's
parallel jobs, a test that starts six) can be handed the same port and fail with `ZMQError: Address already
in use`. Here each kernel's sockets are files under the temp folder whose names hold a fresh UUID, so no two
kernels share one, whatever runs beside them (jupyter_client removes them when the kernel stops).
"""
from __future__ import annotations

import tempfile
import uuid
from pathlib import Path
from typing import Any

from jupyter_client.manager import KernelManager
from traitlets import CaselessStrEnum

KERNEL_NAME = "python3"  # the notebooks' kernel: the Python that runs papermill (`--sys-prefix` kernelspec)


class IPCKernelManager(KernelManager):
    """A KernelManager on IPC transport with a socket prefix unique to this kernel."""

    transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)

    def _ip_default(self) -> str:
        return str(Path(tempfile.gettempdir()) / f"lottery-kernel-{uuid.uuid4().hex}")


def execute(notebook: str | Path, output: str | Path, parameters: dict[str, Any], cwd: str | Path,
            **kwargs: Any) -> Any:
    """`papermill.execute_notebook` on an `IPCKernelManager` kernel (no progress bar); kwargs go to papermill."""
    import papermill

    kwargs = {"kernel_name": KERNEL_NAME, "progress_bar": False, **kwargs}
    return papermill.execute_notebook(str(notebook), str(output), parameters=parameters, cwd=str(cwd),
                                      kernel_manager_class=IPCKernelManager, **kwargs)
