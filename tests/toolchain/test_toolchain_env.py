"""Toolchain environments: the table, cache keys, building (real uv/venv), doctor, clean, and
the one-line errors when an environment is missing and may not be built."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from caltech_edge.errors import ToolchainError
from caltech_edge.toolchains import env
from caltech_edge.toolchains.table import MXNET, TOOLCHAINS, Toolchain, get_toolchain

# A toolchain with nothing to download: building it exercises the real builder (uv venv, or
# venv) offline, in a second or so.
TINY = Toolchain(name="tiny", requirements=(), provides="json", description="test")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(env.HOME_ENV, str(tmp_path / "toolchains"))
    return tmp_path / "toolchains"


def test_the_mxnet_row_pins_what_mxnet_needs_and_derives_its_users() -> None:
    assert TOOLCHAINS.names() == ("mxnet",)
    tc = get_toolchain("mxnet")
    assert "mxnet==1.9.1" in tc.requirements
    assert any(r.startswith("numpy") and "<1.24" in r for r in tc.requirements)
    assert any(r.startswith("onnx==") for r in tc.requirements)
    assert tc.formats == ("mxnet",)  # from the toolchain column of FORMATS
    assert tc.frameworks == ("gluon",)  # from the framework registry


def test_unknown_toolchain_gets_a_did_you_mean() -> None:
    from caltech_edge.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="Did you mean 'mxnet'"):
        get_toolchain("mxnett")


def test_cache_dir_follows_xdg_and_the_key_follows_the_requirements(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(env.HOME_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert env.cache_root() == tmp_path / "caltech-edge" / "toolchains"
    assert env.env_dir(MXNET).parent == env.cache_root()
    assert env.env_dir(MXNET).name.startswith("mxnet-")
    bumped = dataclasses.replace(MXNET, requirements=(*MXNET.requirements, "extra==1"))
    assert env.env_key(bumped) != env.env_key(MXNET)
    assert env.env_key(dataclasses.replace(MXNET, description="x")) == env.env_key(MXNET)


def test_missing_toolchain_with_auto_install_off_names_the_install_command(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(env.AUTO_INSTALL_ENV, "0")
    with pytest.raises(ToolchainError) as info:
        env.ensure(TINY)
    message = str(info.value)
    assert "caltech-edge toolchain install tiny" in message and "\n" not in message
    assert not any(home.glob("tiny-*"))  # nothing was built


def test_unbuildable_toolchain_is_a_one_line_error_and_leaves_nothing(home: Path) -> None:
    broken = Toolchain(
        name="broken", requirements=("caltech-edge-no-such-package==0.0.1",), provides="json"
    )
    with pytest.raises(ToolchainError) as info:
        env.build(broken, quiet=True)
    message = str(info.value)
    assert "caltech-edge toolchain install broken" in message and "\n" not in message
    assert not env.status(broken).ready and not env.env_dir(broken).exists()


def test_build_marks_ready_once_and_a_second_build_reuses_it(home: Path) -> None:
    path = env.build(TINY, quiet=True)
    state = env.status(TINY)
    assert state.ready and state.path == path and state.size_bytes > 0
    assert state.versions["python"] == sys.version.split()[0]
    marker = json.loads((path / env.MARKER).read_text())
    assert marker["built_with"] in ("uv", "pip") and marker["requirements"] == []
    python = env.env_python(path)
    out = subprocess.run([str(python), "-c", "import sys; print(sys.prefix)"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    assert Path(out.stdout.strip()).resolve() == path.resolve()  # a real, separate venv
    assert env.ensure(TINY) == python
    env.build(TINY, quiet=True)
    assert json.loads((path / env.MARKER).read_text())["built"] == marker["built"]


def test_the_venv_and_pip_route_builds_too(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(env.BUILDER_ENV, "pip")
    assert env.find_uv() is None
    path = env.build(TINY, quiet=True)
    assert json.loads((path / env.MARKER).read_text())["built_with"] == "pip"
    assert (path / "pyvenv.cfg").is_file() and env.status(TINY).ready


def test_concurrent_builds_wait_for_each_other(home: Path) -> None:
    """Two processes asking at once: one builds, the other finds it ready (the file lock)."""
    code = (
        "from caltech_edge.toolchains import env;"
        "from caltech_edge.toolchains.table import Toolchain;"
        "env.build(Toolchain(name='tiny', requirements=(), provides='json'), quiet=True);"
        "print(open(str(env.env_dir(Toolchain(name='tiny', requirements=(), provides='json'))"
        " / 'toolchain.json')).read())"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outs[0]["built"] == outs[1]["built"]  # built once, not twice


def test_doctor_reports_stale_environments_and_clean_removes_them(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from caltech_edge.cli import main

    env.build(TINY, quiet=True)
    stale = home / "tiny-000000000000"
    (stale / "bin").mkdir(parents=True)
    assert env.status(TINY).stale == [stale]
    assert env.clean(TINY) == [stale] and not stale.exists()
    assert env.status(TINY).ready  # the current one stays
    assert env.clean(TINY, everything=True) == [env.env_dir(TINY)]
    assert not env.status(TINY).ready
    assert main(["toolchain", "doctor"]) == 1  # mxnet missing in this empty home
    printed = capsys.readouterr().out
    assert "mxnet: MISSING" in printed and "caltech-edge toolchain install mxnet" in printed
