"""The worker subprocess seen from the service: its command line, how it starts, and the supervision loop."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from common.errors import UserInputError
from train.rundir import CONFIG, RunDir

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
POLL_SECONDS = 0.25
# The worker stops after its current optimizer step; past this it is terminated (a step can take a minute on CPU).
CANCEL_GRACE_SECONDS = 600.0
PARENT_ENV = "PREFLAB_PARENT_PID"
# The device a single-process worker loads on once CUDA_VISIBLE_DEVICES shows it only its own GPU (as cuda:0).
WORKER_DEVICE_ENV = "PREFLAB_WORKER_DEVICE"


@dataclass(frozen=True)
class WorkerExit:
    """How the worker process ended."""

    code: int | None
    cancel_requested: bool


def worker_command(
    run_dir: str | os.PathLike,
    *,
    processes: int = 1,
    accelerate_config: str | None = None,
    cpu: bool | None = None,
    accelerate_processes: int | None = None,
) -> list[str]:
    """The worker's command line: plain Python for one process, else torchrun (CPU) or `accelerate launch` (GPUs).

    `accelerate launch --cpu --num_processes N` starts a single process, so several CPU processes go through
    torchrun (gloo). `accelerate_processes` forces `accelerate launch` with that many processes.
    """
    worker = ["-m", "train.worker", str(run_dir)]
    if accelerate_processes is not None:
        return [
            *_ACCELERATE,
            "--num_processes",
            str(accelerate_processes),
            *(["--cpu"] if cpu else []),
            *worker,
        ]
    if processes == 1 and not accelerate_config:
        return [sys.executable, *worker]
    if cpu is None:
        cpu = not _cuda_available()
    if cpu and not accelerate_config:
        # --standalone: a rendezvous on a free local port, so two runs on one machine do not collide.
        return [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            str(processes),
            *worker,
        ]
    config = ["--config_file", str(accelerate_config)] if accelerate_config else []
    multi = ["--multi_gpu"] if processes > 1 and not accelerate_config else []
    return [*_ACCELERATE, *config, *multi, "--num_processes", str(processes), *worker]


def launcher_for(cfg) -> Callable[[Path], subprocess.Popen]:
    """How a run with settings `cfg` starts its worker: one process, or `cfg.processes` of them."""
    processes, config = int(cfg.processes), getattr(cfg, "accelerate_config", None)
    if processes == 1 and not config:
        return spawn_worker
    cpu = bool(cfg.use_cpu) if cfg.use_cpu is not None else None

    def launch(run_dir: Path) -> subprocess.Popen:
        command = worker_command(run_dir, processes=processes, accelerate_config=config, cpu=cpu)
        return spawn_worker(run_dir, command, extra_env={"ACCELERATE_USE_CPU": "true"} if cpu else None)

    return launch


_ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch"]


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


# The worker's environment is built from this list: it trains from files and never needs an API key or a Hub
# token (a gated base model still loads with the token saved by `hf auth login`).
_WORKER_ENV_NAMES = frozenset(
    "PATH HOME USER LOGNAME LANG LANGUAGE TZ TERM TMPDIR TEMP TMP PYTHONPATH PYTHONHASHSEED VIRTUAL_ENV "
    "LD_LIBRARY_PATH TOKENIZERS_PARALLELISM MASTER_ADDR MASTER_PORT WORLD_SIZE RANK LOCAL_RANK "
    "SSL_CERT_FILE SSL_CERT_DIR REQUESTS_CA_BUNDLE CC CXX".split()
)
_WORKER_ENV_PREFIXES = (
    "LC_", "XDG_", "CUDA_", "NVIDIA_", "NCCL_", "CUBLAS_", "TORCH", "PYTORCH_", "OMP_", "MKL_",
    "OPENBLAS_", "HIP_", "ROCR_", "HF_", "TRANSFORMERS_", "ACCELERATE_", "PREFLAB_",
)  # fmt: skip
_SECRET_NAME = re.compile(r"(^|_)(TOKEN|KEY|API_KEY|SECRET|PASSWORD|PASSWD|CREDENTIALS?|AUTH)(_|$)", re.I)


def worker_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The worker's environment: what training needs from `environ`, never a credential."""
    return {
        k: v
        for k, v in environ.items()
        if (k in _WORKER_ENV_NAMES or k.startswith(_WORKER_ENV_PREFIXES)) and not _SECRET_NAME.search(k)
    }


def single_gpu_env(device: str, environ: Mapping[str, str]) -> dict[str, str]:
    """What a single-process worker on `device` adds to its environment: on `cuda:N`, only that GPU visible.

    The Trainer of one process uses every GPU it sees (DataParallel) and puts the model on cuda:0, so a run meant
    for cuda:1 would land on GPU 0 and spread over the rest. Masking the others makes cuda:N the worker's cuda:0;
    an index counts within the CUDA_VISIBLE_DEVICES this process already has, as torch counts it.
    """
    match = re.fullmatch(r"cuda(?::(\d+))?", device)
    if not match:
        return {}
    index = int(match.group(1) or 0)
    visible = [v.strip() for v in environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if "CUDA_VISIBLE_DEVICES" in environ and index >= len(visible):
        raise UserInputError(
            f"device {device} does not exist: CUDA_VISIBLE_DEVICES={environ['CUDA_VISIBLE_DEVICES']!r} "
            f"shows {len(visible)} GPU(s)"
        )
    physical = visible[index] if "CUDA_VISIBLE_DEVICES" in environ else str(index)
    return {"CUDA_VISIBLE_DEVICES": physical, WORKER_DEVICE_ENV: "cuda:0"}


def spawn_worker(
    run_dir: Path, command: list[str] | None = None, *, extra_env: Mapping[str, str] | None = None
) -> subprocess.Popen:
    """Start the worker in its own session, output appended to RUN_DIR/worker.log."""
    rd = RunDir(run_dir)
    env = worker_env(os.environ)
    if (
        command is None
    ):  # one process: it sees only the run's GPU (several processes: the launcher assigns them)
        env.update(single_gpu_env((rd.read_json(CONFIG) or {}).get("device") or "cpu", os.environ))
    env.update(extra_env or {})
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    # The parent downloaded the model with the user's token (models.fetch); the worker has neither token nor network.
    env["HF_HUB_OFFLINE"] = "1"
    # The worker runs in its own session, so it would outlive a killed parent; it stops when this PID is gone.
    env[PARENT_ENV] = str(os.getpid())
    with open(rd.log_path, "ab") as out:
        # Own session: Ctrl-C in the terminal reaches the service, which cancels the worker cleanly.
        return subprocess.Popen(
            command or worker_command(run_dir),
            cwd=rd.path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def supervise(
    proc,
    rd: RunDir,
    *,
    on_poll: Callable[[], None],
    stop: Callable[[], bool],
    grace: float = CANCEL_GRACE_SECONDS,
) -> WorkerExit:
    """Poll until the worker exits; `stop()` turns into the cancel file, then a terminate after `grace` seconds."""
    cancel_at: float | None = None
    try:
        while True:
            code = proc.poll()
            on_poll()  # after poll(): once the exit code is known, this call sees the worker's last lines
            if code is not None:
                return WorkerExit(code, cancel_at is not None)
            if cancel_at is None and stop():
                rd.request_cancel()
                cancel_at = time.monotonic()
                log.info("%s: cancel requested", rd.path)
            if cancel_at is not None and time.monotonic() - cancel_at > grace:
                terminate(proc)
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        rd.request_cancel()
        terminate(proc, grace=30.0)
        raise


def terminate(proc, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if the process is still there after `grace` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def exit_reason(code: int | None) -> str:
    """Why a worker ended without writing a final status, in words."""
    if code is not None and code < 0:
        try:
            return f"the worker was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"the worker was killed by signal {-code}"
    return f"the worker exited with code {code} without finishing"
