"""Deploy models to running devices (what Greengrass deployments and AWS IoT Jobs did).

``job`` builds the job document and names the topics, ``artifact`` packs, fetches and
safely unpacks model files, ``server`` serves them over HTTP, ``swap`` holds the live
model so the device loop can change it between two frames, and ``agent`` is the device
side that receives a job, checks it, swaps and rolls back. Python 3.8-compatible and
torch-free: the agent runs on the device.
"""

from __future__ import annotations

from .._registry import lazy_getattr

__getattr__ = lazy_getattr(
    __name__,
    {
        "DeploymentAgent": __name__ + ".agent",
        "AgentConfig": __name__ + ".agent",
        "SwappableModel": __name__ + ".swap",
        "make_job": __name__ + ".job",
        "publish_job": __name__ + ".job",
        "ArtifactServer": __name__ + ".server",
    },
)
