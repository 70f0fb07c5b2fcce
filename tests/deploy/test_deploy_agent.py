"""The device agent on real exported models: swap, refusals, rollback, restart (no broker)."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from caltech_edge.deploy.agent import AgentConfig, DeploymentAgent
from caltech_edge.deploy.artifact import DeploymentError, pack, safe_extract
from caltech_edge.deploy.job import make_job
from caltech_edge.deploy.publisher import resolve_artifact
from caltech_edge.runtime.predictor import load_model

FRAME = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)


def _job(path: Path, tmp_path: Path, job_id: str) -> dict:
    shipped, entry = pack(path, tmp_path / "ship")
    return make_job(shipped, entry, path, load_model(path).card, url=str(shipped), job_id=job_id)


def _agent(tmp_path: Path, model_path: Path, **kw) -> DeploymentAgent:
    config = AgentConfig(thing="cam", state_dir=tmp_path / "state", **kw)
    return DeploymentAgent(config, load_model(model_path))


def _run(agent: DeploymentAgent, n: int) -> list:
    return [agent.model.predict(FRAME)["model"]["hash"] for _ in range(n)]


def test_swap_then_probation_succeeds_and_survives_restart(models, tmp_path):
    agent = _agent(tmp_path, models["v1"], probation_frames=5)
    old = _run(agent, 3)[-1]
    agent.submit(_job(models["v2_ir"], tmp_path, "j1"))
    assert agent.idle(60)
    hashes = _run(agent, 6)
    new = load_model(models["v2_ir"]).info["hash"]
    assert hashes == [new] * 6 and new != old
    assert [h["status"] for h in agent.history][-1] == "SUCCEEDED"
    assert agent.history[-1]["model_hash"] == new
    agent.close()
    again = _agent(tmp_path, models["v1"], probation_frames=5)  # restarts with the deployed model
    assert _run(again, 1) == [new]
    again.close()


@pytest.mark.parametrize(
    ("name", "tamper", "reason"),
    [
        ("v2", "corrupt", "sha256 mismatch"),
        ("two_class", None, "class count 2 differs"),
        ("v2", "too_big", "byte limit"),
    ],
)
def test_refused_artifacts_never_go_live(models, tmp_path, name, tamper, reason):
    agent = _agent(tmp_path, models["v1"], probation_frames=0, max_bytes=200 * 1024 * 1024)
    before = _run(agent, 2)[-1]
    job = _job(models[name], tmp_path, "bad")
    if tamper == "corrupt":
        copy = tmp_path / "corrupt.onnx"
        data = bytearray(Path(job["artifact"]["url"]).read_bytes())
        data[len(data) // 2] ^= 0xFF
        copy.write_bytes(bytes(data))
        job["artifact"]["url"] = str(copy)
    elif tamper == "too_big":
        agent.config.max_bytes = 1000
    agent.submit(job)
    assert agent.idle(60)
    assert agent.history[-1]["status"] == "FAILED"
    assert reason in agent.history[-1]["reason"]
    assert _run(agent, 2) == [before, before]
    agent.close()


def test_confidence_collapse_rolls_back_without_losing_frames(models, tmp_path):
    agent = _agent(tmp_path, models["v1"], probation_frames=4, collapse_ratio=0.6)
    before = _run(agent, 10)[-1]
    agent.submit(_job(models["collapse"], tmp_path, "collapse"))
    assert agent.idle(60)
    hashes = _run(agent, 8)
    assert len(hashes) == 8  # every frame produced a result, first 4 by the degraded model
    assert hashes[4:] == [before] * 4 and hashes[0] != before
    assert (
        agent.history[-1]["status"] == "FAILED"
        and "confidence collapse" in agent.history[-1]["reason"]
    )
    agent.close()
    assert _run(_agent(tmp_path, models["v1"]), 1) == [before]  # rollback persisted


def test_crash_during_probation_rolls_back_on_restart(models, tmp_path):
    agent = _agent(tmp_path, models["v1"], probation_frames=50)
    before = _run(agent, 2)[-1]
    agent.submit(_job(models["v2"], tmp_path, "crashy"))
    assert agent.idle(60)
    assert _run(agent, 1) != [before]
    # no close(): the process "died" with the new model on probation
    again = _agent(tmp_path, models["v1"], probation_frames=50)
    assert _run(again, 1) == [before]
    assert again.state.job_status("crashy") == "FAILED"
    again.close()


def test_safe_extract_refuses_links_and_traversal(tmp_path):
    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as tar:
        info = tarfile.TarInfo("../escape.bin")
        info.size = 0
        tar.addfile(info)
    with pytest.raises(DeploymentError, match="plain file name"):
        safe_extract(bad, tmp_path / "out")
    link = tmp_path / "link.tar"
    with tarfile.open(link, "w") as tar:
        info = tarfile.TarInfo("model.bin")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(DeploymentError, match="not a regular file"):
        safe_extract(link, tmp_path / "out")
    assert not (tmp_path / "escape.bin").exists() and not (tmp_path / "out" / "model.bin").exists()


def test_resolve_artifact_finds_the_model_in_a_folder(models, tmp_path):
    folder = tmp_path / "bundle"
    shutil.copytree(models["v2_ir"].parent, folder)
    assert resolve_artifact(folder).name == "model.xml"
