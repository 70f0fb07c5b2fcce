"""The device side of a deployment: receive a job, check it, swap, report, roll back.

:class:`DeploymentAgent` listens on the device's job topics (and its groups'), and runs each
job in its own thread while the device loop keeps inferring with the current model:
download (size-bounded) -> sha256 -> safe unpack -> card check (same input contract, every
current class present) -> load -> self-test on frames the loop kept -> swap between two
frames -> probation. Every step is reported to the job's update topic; any failure leaves
the running model untouched and reports ``FAILED`` with the reason.
"""

from __future__ import annotations

import json
import logging
import queue
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from .._registry import require
from ..errors import CaltechEdgeError
from ..runtime.predictor import artifact_hash, load_model
from . import job as jobs
from .artifact import MAX_ARTIFACT_BYTES, DeploymentError, fetch, unpack
from .state import DeployState
from .swap import SwappableModel

log = logging.getLogger(__name__)
Loader = Callable[..., Any]


@dataclass
class AgentConfig:
    """Where the agent listens, what it accepts, and how long a new model is on probation."""

    thing: str
    state_dir: Path
    groups: Tuple[str, ...] = ()
    host: Optional[str] = None  # no broker: jobs only through submit()
    port: int = 1883
    tls: Any = None
    max_bytes: int = MAX_ARTIFACT_BYTES
    probation_frames: int = 20
    collapse_ratio: float = 0.5
    max_error_rate: float = 0.0
    allow_new_classes: bool = False  # a model with more classes than the running one
    load_kwargs: Dict[str, Any] = field(default_factory=dict)


def check_card(summary: Dict[str, Any], current: Any, *, allow_new_classes: bool = False) -> None:
    """Refuse a model whose input contract differs or which lacks a class the device uses.

    Unless ``allow_new_classes``, the class count must also equal the running model's:
    whatever consumes the results (rules, dashboards) was built for those classes.
    """
    card = current.card
    if summary.get("preprocess") != card.preprocess.to_dict():
        raise DeploymentError(
            "input contract differs: preprocess {} != running {}".format(
                summary.get("preprocess"), card.preprocess.to_dict()
            )
        )
    names = list(summary.get("class_names") or [])
    if len(names) != int(summary.get("num_classes", -1)):
        raise DeploymentError(
            "card lists {} class names but says num_classes={}".format(
                len(names), summary.get("num_classes")
            )
        )
    if not allow_new_classes and len(names) != card.num_classes:
        raise DeploymentError(
            "class count {} differs from the running model's {}".format(
                len(names), card.num_classes
            )
        )
    missing = [c for c in card.class_names if c not in names]
    if missing:
        raise DeploymentError(
            f"{len(missing)} of the running model's classes are missing (e.g. {missing[0]!r})"
        )


def self_test(candidate: Any, summary: Dict[str, Any], samples: List[Any]) -> int:
    """Run the candidate on kept frames; its outputs must be finite, one per declared class."""
    if [str(c) for c in candidate.card.class_names] != list(summary["class_names"]):
        raise DeploymentError("the artifact's own card does not match the job's card summary")
    if not samples:  # the loop has not seen a frame yet: a mid-grey frame still exercises it
        samples = [("frame", np.full((64, 64, 3), 128, np.uint8), None)]
    for kind, data, roi in samples:
        x = candidate.preprocess(data, roi) if kind == "frame" else np.asarray(data)
        logits = np.asarray(candidate.logits(x[None]))
        if logits.reshape(1, -1).shape[1] != len(candidate.labels):
            raise DeploymentError(
                f"self-test: model outputs {logits.reshape(1, -1).shape[1]} scores for {len(candidate.labels)} classes"
            )
        if not np.all(np.isfinite(logits)):
            raise DeploymentError("self-test: model outputs non-finite scores")
    return len(samples)


class DeploymentAgent:
    """Owns the :class:`SwappableModel` the device loop runs and applies deployment jobs."""

    def __init__(self, config: AgentConfig, model: Any, *, loader: Loader = load_model) -> None:
        self.config = config
        self.loader = loader
        self.state = DeployState(Path(config.state_dir) / "deploy")
        self._pending_reports: List[Tuple[str, str, Dict[str, Any]]] = []
        live = self._restore(model)
        resume = (
            self._load_meta(self.state.active.get("previous"))
            if self.state.active.get("probation")
            else None
        )
        self.model = SwappableModel(
            resume if resume is not None else live,
            collapse_ratio=config.collapse_ratio,
            max_error_rate=config.max_error_rate,
        )
        if resume is not None:  # a clean restart mid-probation resumes the probation
            job_id = str((self.state.active.get("current") or {}).get("job_id", ""))
            self.model.swap(
                live, probation_frames=config.probation_frames, on_verdict=self._verdict_cb(job_id)
            )
        self.history: List[Dict[str, Any]] = []
        self._jobs: queue.Queue = queue.Queue()
        self._client: Any = None
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._work, name="deploy-agent", daemon=True)
        self._worker.start()
        self.state.mark_clean(False)
        if config.host:
            self._connect()

    # -- restart ------------------------------------------------------------------------
    def _load_meta(self, meta: Optional[Dict[str, Any]]) -> Any:
        if not meta or not meta.get("path"):
            return None
        try:
            return self.loader(meta["path"], **self.config.load_kwargs)
        except (CaltechEdgeError, OSError) as exc:
            log.warning("cannot reload model %s: %s", meta.get("path"), exc)
            return None

    def _restore(self, given: Any) -> Any:
        """The model to start with: the persisted active one unless it crashed on probation."""
        active = self.state.active
        if not active:
            return given
        if active.get("probation") and not active.get("clean"):
            failed = active.get("current") or {}
            log.warning(
                "the process died while model %s was on probation: rolling back", failed.get("hash")
            )
            self.state.end_probation(False)
            self._report_later(
                failed.get("job_id", ""), "FAILED", reason="crashed during probation"
            )
        model = self._load_meta(self.state.active.get("current"))
        return model if model is not None else given

    def _meta(self, model: Any, job_id: str = "") -> Dict[str, Any]:
        return {
            "path": str(getattr(model, "path", "") or ""),
            "hash": model.info.get("hash", ""),
            "job_id": job_id,
        }

    # -- MQTT -----------------------------------------------------------------------------
    def _connect(self) -> None:
        mqtt = require("paho.mqtt.client", "mqtt", purpose="receiving deployments")
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"{self.config.thing}-deploy",
            clean_session=False,
        )
        if self.config.tls is not None:
            tls = self.config.tls
            client.tls_set(ca_certs=tls.ca_certs, certfile=tls.certfile, keyfile=tls.keyfile)
        topics = [jobs.notify_topic(self.config.thing)] + [
            jobs.group_topic(g) for g in self.config.groups
        ]
        self._subscribed = threading.Event()

        def on_connect(c: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
            if not getattr(reason, "is_failure", False):
                c.subscribe([(t, 1) for t in topics])
                for job_id, status, details in self._pending_reports:
                    self._publish_status(job_id, status, **details)
                self._pending_reports = []

        client.on_connect = on_connect
        client.on_subscribe = lambda *a: self._subscribed.set()
        client.on_message = self._on_message
        client.reconnect_delay_set(min_delay=1, max_delay=8)
        client.connect_async(self.config.host, int(self.config.port), keepalive=30)
        client.loop_start()
        self._client = client

    def wait_subscribed(self, timeout: float = 10.0) -> bool:
        return self._client is not None and self._subscribed.wait(timeout)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        try:
            body = json.loads(msg.payload.decode("utf-8"))
            document = body["execution"]["jobDocument"]
            job_id = str(document["jobId"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            if msg.payload:
                log.warning("ignoring a malformed job notification on %s", msg.topic)
            return
        if self.state.job_status(job_id) in jobs.TERMINAL:
            return  # a retained notification of a job this device already finished
        self._jobs.put(document)

    def _report_later(self, job_id: str, status: str, **details: Any) -> None:
        self.state.record_job(job_id, status, details.get("reason", ""))
        self._pending_reports.append((job_id, status, details))

    def _publish_status(self, job_id: str, status: str, **details: Any) -> None:
        self.history.append(dict(details, jobId=job_id, status=status))
        if status in jobs.TERMINAL:
            self.state.record_job(job_id, status, str(details.get("reason", "")))
        log.info("job %s: %s %s", job_id, status, details)
        if self._client is not None:
            data = jobs.status_update(self.config.thing, job_id, status, **details)
            self._client.publish(jobs.update_topic(self.config.thing, job_id), data, qos=1)

    # -- jobs -----------------------------------------------------------------------------
    def submit(self, document: Dict[str, Any]) -> None:
        """Queue a job document without MQTT (tests, a local file watcher)."""
        self._jobs.put(document)

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                document = self._jobs.get(timeout=0.2)
            except queue.Empty:
                continue
            job_id = str(document.get("jobId", "unknown"))
            try:
                self.apply(document)
            except DeploymentError as exc:
                self._publish_status(job_id, "FAILED", reason=str(exc))
            except (CaltechEdgeError, OSError, KeyError, ValueError, TypeError) as exc:
                self._publish_status(job_id, "FAILED", reason=str(exc))
            except Exception as exc:  # a backend failing to load is a FAILED job, not a dead agent
                log.exception("job %s failed", job_id)
                self._publish_status(job_id, "FAILED", reason=f"{type(exc).__name__}: {exc}")
            finally:
                self._jobs.task_done()

    def apply(self, document: Dict[str, Any]) -> None:
        """Run one job to the swap; the verdict (SUCCEEDED/FAILED) follows after probation."""
        job_id = str(document["jobId"])
        art, summary = document["artifact"], document["card"]
        self._publish_status(job_id, "IN_PROGRESS", step="downloading")
        if int(art["size"]) > self.config.max_bytes:
            raise DeploymentError(
                "artifact of {} bytes is over this device's {} byte limit".format(
                    art["size"], self.config.max_bytes
                )
            )
        staging = self.state.root / "staging" / job_id.replace("/", "_")
        download = staging / "download"
        digest = fetch(
            str(art["url"]), download, max_bytes=min(self.config.max_bytes, int(art["size"]))
        )
        if digest != art["sha256"]:
            raise DeploymentError(
                "sha256 mismatch: got {}, job says {}".format(digest[:12], str(art["sha256"])[:12])
            )
        target = self.state.models_dir(digest)
        if target.exists():
            shutil.rmtree(str(target))
        path = unpack(
            download,
            str(art["entry"]),
            target,
            archive=bool(art.get("archive")),
            max_bytes=self.config.max_bytes,
        )
        shutil.rmtree(str(staging), ignore_errors=True)
        check_card(summary, self.model.current, allow_new_classes=self.config.allow_new_classes)
        self._publish_status(job_id, "IN_PROGRESS", step="self-test")
        candidate = self.loader(path, **self.config.load_kwargs)
        if art.get("model_hash") and artifact_hash(path) != art["model_hash"]:
            raise DeploymentError("unpacked model hash differs from the job's model_hash")
        tested = self_test(candidate, summary, self.model.sample())
        previous = self.model.current
        frames = self.config.probation_frames
        self.state.set_active(
            self._meta(candidate, job_id), self._meta(previous), probation=frames > 0
        )
        self._publish_status(
            job_id,
            "IN_PROGRESS",
            step="probation",
            self_tested_frames=tested,
            model_hash=candidate.info.get("hash"),
        )
        self.model.swap(candidate, probation_frames=frames, on_verdict=self._verdict_cb(job_id))

    def _verdict_cb(self, job_id: str) -> Callable[[bool, str], None]:
        def verdict(passed: bool, reason: str) -> None:
            self.state.end_probation(passed)
            status = "SUCCEEDED" if passed else "FAILED"
            details = {"reason": reason, "model_hash": self.model.current.info.get("hash")}
            if not passed:
                details["rolled_back"] = True
            self._publish_status(job_id, status, **details)

        return verdict

    def idle(self, timeout: float = 30.0) -> bool:
        """Wait until no job is queued or being applied (tests, a clean shutdown)."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._jobs.unfinished_tasks == 0:
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self._stop.set()
        self._worker.join(timeout=10)
        self.state.mark_clean(True)
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
