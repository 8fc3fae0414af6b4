"""A pre-forked interpreter for local runs: jobs start without paying the imports again.

Most of a light job's time is imports, not work: a ``generate`` job on the embedded default
spends about 8 s importing torch, transformers and the model families' classes and about 1 s
generating; ``score`` about 2 s importing pandas and scipy for milliseconds of work. For a
local run (``snakemake --cores N``), ``rules/common.smk``'s ``onstart`` starts one server
(:func:`start`) that imports those *third-party* libraries once and listens on a Unix socket
in a private folder; every job's ``safervlm`` process (:func:`delegate`, called first thing
by :func:`safervlm.cli.main`) hands its command line, working directory, environment, umask
and standard streams to the server, which forks a child that runs the stage exactly as the
job would have (``safervlm.cli.main``). The job's process waits for the child's exit status
and exits with it; Snakemake sees an ordinary job.

What keeps a forked job identical to a fresh one:

- **No project code is preloaded.** The server imports only third-party libraries; each
  child imports ``safervlm``'s stage modules from disk, so a job runs the code its rule's
  digest names, as a fresh process would.
- **Threads:** the server starts with every thread variable Snakemake sets (``OMP_NUM_THREADS``
  …) at 1, so no library starts a thread pool before the fork; the child applies the job's
  own count (``torch.set_num_threads``, ``threadpoolctl``) before running.
- **Environment read at import time:** a request whose environment differs from the
  server's in a variable libraries read when imported (``PYTHON*``, ``HF_*``, ``TORCH*``,
  ``CUDA*`` …; :data:`IMPORT_TIME_ENV`), or whose interpreter or ``sys.path`` differs, is
  refused, and the job runs in its own process as before. So is a request without
  ``OMP_NUM_THREADS`` (not a Snakemake job) and one from a worker of a distributed launch
  (``RANK``, ``LOCAL_RANK`` …: multi-GPU training stays in its launcher's processes).
- **Exit:** a child flushes its streams and leaves with ``os._exit`` (the server's inherited
  ``atexit`` handlers are not the job's to run); no stage relies on ``atexit``: outputs are
  written atomically before a stage returns and MLflow runs are ended explicitly.
- **Failure is never silent:** if the server is not up yet (it listens only once its imports
  are done), is gone, or refuses, the job runs in-process; a child that dies without
  reporting makes the job fail (exit 1, with a message in the job's log). A job killed by
  Snakemake closes its connection and the child exits at once.

A run with fewer than :data:`MIN_JOBS` jobs to do starts no server. The server exits when
Snakemake does (``onsuccess``/``onerror`` call :func:`stop`; it also watches its parent
process). ``SAFERVLM_PREFORK=0`` turns it off; cluster runs never start it (``onstart``
runs it for the local executor only). Only the owner can connect (the socket sits in a
``0700`` folder, and the server checks the peer's uid).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shlex
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ENV_SOCKET = "SAFERVLM_PREFORK_SOCKET"  # set for the jobs by start(); the socket's path
ENV_SWITCH = "SAFERVLM_PREFORK"  # "0": never start the server
# The third-party libraries the stages import (generate/qi_score/sft/grpo: torch, transformers
# and every model family's classes, trl; judge/score/report: pandas, pyarrow, scipy,
# scikit-learn). The families' part is the union of their ``Family.preload`` (written out: the
# server imports no project code; a test keeps it equal to safervlm.models.families.preloads()).
# A module that fails to import is skipped (serve()), so a family's optional module never
# breaks the server.
PRELOAD = (
    "numpy",
    "pandas",
    "pyarrow.parquet",
    "scipy.stats",
    "sklearn.metrics",
    "PIL.Image",
    "pydantic",
    "yaml",
    "torch",
    "transformers",
    "transformers.models.qwen2_5_vl.modeling_qwen2_5_vl",
    "transformers.models.qwen2_5_vl.processing_qwen2_5_vl",
    "transformers.models.qwen2_vl.image_processing_pil_qwen2_vl",
    "transformers.models.qwen3_vl.modeling_qwen3_vl",
    "transformers.models.qwen3_vl.processing_qwen3_vl",
    "transformers.models.gemma3.modeling_gemma3",
    "transformers.models.gemma3.processing_gemma3",
    "transformers.models.gemma3.image_processing_pil_gemma3",
    "transformers.models.llava_onevision.modeling_llava_onevision",
    "transformers.models.llava_onevision.processing_llava_onevision",
    "transformers.models.llava_onevision.image_processing_pil_llava_onevision",
    "transformers.models.smolvlm.modeling_smolvlm",
    "transformers.models.smolvlm.processing_smolvlm",
    "transformers.models.smolvlm.image_processing_pil_smolvlm",
    "transformers.models.internvl.modeling_internvl",
    "transformers.models.internvl.processing_internvl",
    "transformers.models.got_ocr2.image_processing_pil_got_ocr2",
    "transformers.models.glm4v.modeling_glm4v",
    "transformers.models.glm4v.processing_glm4v",
    "transformers.models.glm4v.image_processing_pil_glm4v",
    "transformers.models.idefics3.modeling_idefics3",
    "transformers.models.idefics3.processing_idefics3",
    "transformers.models.idefics3.image_processing_pil_idefics3",
    "transformers.models.gemma4.modeling_gemma4",
    "transformers.models.gemma4.processing_gemma4",
    "transformers.models.gemma4.image_processing_pil_gemma4",
    "trl",
)
# The model families' part of PRELOAD (a test compares it with the registry's).
FAMILY_PRELOAD = PRELOAD[PRELOAD.index("transformers") + 1 : PRELOAD.index("trl")]
# Thread-count variables Snakemake sets per job (snakemake/shell.py); the server runs with 1.
THREAD_ENV = (
    "OMP_NUM_THREADS",
    "GOTO_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
# A worker of a distributed launch (accelerate, torchrun) belongs to its launcher's process tree.
DISTRIBUTED_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
# Prefixes of variables that libraries read when imported: a job whose value differs from
# the server's would import differently, so it runs in its own process.
IMPORT_TIME_ENV = (
    "PYTHON",
    "LD_",
    "HF_",
    "HUGGINGFACE",
    "TRANSFORMERS",
    "TORCH",
    "PYTORCH",
    "CUDA",
    "NCCL",
    "TOKENIZERS",
    "KMP_",
    "MKL_",
    "OPENBLAS_",
    "MPL",
    "XDG_",
    "ACCELERATE",
    "TRL_",
    "SCIPY",
    "NUMPY",
    "PANDAS",
    "ARROW",
)
# The server's own imports cost about one generate job's or four score jobs' start-up: a run
# with fewer jobs than this starts none (rules/common.smk).
MIN_JOBS = 6
REQUEST_TIMEOUT = 10.0  # seconds a connected client has to send its request
_HEADER = struct.Struct("!Q")  # request length, sent with the three standard streams' fds
_STATUS = struct.Struct("!i")  # the child's exit status
STARTED, REFUSED = b"S", b"R"


# -- the job's side ----------------------------------------------------------------------------
def delegate(argv: list[str]) -> int | None:
    """Run ``safervlm argv`` in a forked child of the server; its exit status, or ``None``
    when there is no server to hand it to (or it refused): then run in this process."""
    path = os.environ.get(ENV_SOCKET)
    if not path:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        return None
    umask = os.umask(0)
    os.umask(umask)
    body = json.dumps(
        {
            "argv": ["safervlm", *argv],
            "cwd": os.getcwd(),
            "env": dict(os.environ),
            "umask": umask,
            "interpreter": _interpreter(),
            "path": sys.path[1:],
        }
    ).encode()
    with sock:
        try:
            socket.send_fds(sock, [_HEADER.pack(len(body))], [0, 1, 2])
            sock.sendall(body)
            answer = _recv_exact(sock, 1)
        except OSError:
            return None
        if answer != STARTED:  # refused (or the server went away before starting it)
            return None
        try:
            status = _recv_exact(sock, _STATUS.size)
        except OSError:
            status = b""
    if len(status) != _STATUS.size:
        print("safervlm: the pre-forked worker running this job died without an exit status", file=sys.stderr)
        return 1
    return int(_STATUS.unpack(status)[0])


def _interpreter() -> list[str]:
    """The interpreter binary and its environment (a venv's ``python`` and ``python3`` agree)."""
    return [os.path.realpath(sys.executable), sys.prefix]


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    """Up to ``n`` bytes; fewer only when the peer closed the connection."""
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


# -- the server ----------------------------------------------------------------------------------
def refusal(request: Mapping[str, Any], env: Mapping[str, str]) -> str | None:
    """Why a server whose environment before its imports was ``env`` must not run ``request``
    (then the job runs in its own process)."""
    if request.get("interpreter") != _interpreter():
        return f"another interpreter or environment ({request.get('interpreter')})"
    if request.get("path") != sys.path[1:]:
        return "another sys.path"
    job_env = request.get("env") or {}
    threads = job_env.get("OMP_NUM_THREADS", "")
    if not threads.isdigit() or int(threads) < 1:
        return "no OMP_NUM_THREADS (not a Snakemake job)"
    launched = [k for k in DISTRIBUTED_ENV if k in job_env]
    if launched:
        return f"a distributed worker ({', '.join(launched)})"
    keys = {k for k in {*job_env, *env} if k.startswith(IMPORT_TIME_ENV) and k not in THREAD_ENV}
    differ = sorted(k for k in keys if job_env.get(k) != env.get(k))
    if differ:
        return f"environment read at import time differs: {', '.join(differ)}"
    return None


def serve(path: str, parent: int, preload: tuple[str, ...] = PRELOAD) -> None:
    """Import ``preload``, then fork a child per request until ``parent`` exits."""
    before = dict(os.environ)
    for name in preload:
        with contextlib.suppress(Exception):  # a library that is not installed: its jobs import it
            importlib.import_module(name)
    # What the imports set in the environment (torch: KMP_*, TORCHINDUCTOR_CACHE_DIR …): a fresh
    # job process sets the same when it imports them, so the children get it too.
    added = {k: v for k, v in os.environ.items() if k not in before}
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # runs serve()'s cleanup
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    tmp = f"{path}.{os.getpid()}"
    server.bind(tmp)
    server.listen(64)
    os.replace(tmp, path)  # clients connect only once the imports are done
    server.settimeout(1.0)
    print(f"prefork: listening on {path} (pid {os.getpid()})", file=sys.stderr, flush=True)
    try:
        _accept(server, parent, before, added)
    finally:  # the parent Snakemake is gone, or stop() terminated the server
        _remove(path)


def _accept(server: socket.socket, parent: int, before: Mapping[str, str], added: Mapping[str, str]) -> None:
    """Fork a child per well-formed, acceptable request until ``parent`` exits."""
    while os.getppid() == parent:
        try:
            conn, _ = server.accept()
        except TimeoutError:
            continue
        conn.settimeout(REQUEST_TIMEOUT)  # a client that connects and sends nothing blocks no one
        fds: list[int] = []
        try:
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            if struct.unpack("3i", creds)[1] != os.getuid():
                raise OSError("another user")
            header, fds, _, _ = socket.recv_fds(conn, _HEADER.size, 3)
            if len(header) != _HEADER.size or len(fds) != 3:
                raise OSError("malformed request")
            request = json.loads(_recv_exact(conn, _HEADER.unpack(header)[0]))
            why = refusal(request, before)
            if why:
                conn.sendall(REFUSED)
                print(f"prefork: refused {request.get('argv', [])[:2]}: {why}", file=sys.stderr, flush=True)
            else:
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    server.close()
                    _child(conn, request, fds, added)  # never returns
                print(f"prefork: pid {pid} runs {shlex.join(request['argv'])}", file=sys.stderr, flush=True)
        except (OSError, ValueError) as exc:
            print(f"prefork: bad request: {exc}", file=sys.stderr, flush=True)
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            conn.close()


def _child(conn: socket.socket, request: Mapping[str, Any], fds: list[int], added: Mapping[str, str]) -> None:
    """Become the job (its streams, folder, environment, threads), run it, report, exit."""
    status = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        for target, fd in zip((0, 1, 2), fds, strict=True):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update({**added, **request["env"]})
        os.umask(int(request["umask"]))
        sys.argv = list(request["argv"])
        tempfile.tempdir = None  # TMPDIR is the job's
        _set_threads(int(request["env"]["OMP_NUM_THREADS"]))
        conn.settimeout(None)
        conn.sendall(STARTED)
        # The job's process went away (Snakemake cancelled the job): stop at once.
        threading.Thread(target=_exit_when_closed, args=(conn,), daemon=True).start()
        # The job's entry point, imported here, in the child, from disk (like cli's stages):
        # the server never imports project code.
        status = importlib.import_module("safervlm.cli").main(sys.argv[1:])
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
        status = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        with contextlib.suppress(OSError):
            conn.sendall(_STATUS.pack(status))
        os._exit(status & 0xFF)


def _exit_when_closed(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while conn.recv(1):
            pass
    os._exit(1)


def _set_threads(n: int) -> None:
    """The job's thread count, as a fresh process would take it from ``OMP_NUM_THREADS``."""
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    with contextlib.suppress(ImportError):
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)


# -- the workflow's side -------------------------------------------------------------------------
def start(
    log: str | os.PathLike[str], env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes] | None:
    """Start a server for this (Snakemake) process and point the jobs at it: sets
    ``SAFERVLM_PREFORK_SOCKET`` in ``os.environ``, which the jobs inherit. ``None`` when
    ``SAFERVLM_PREFORK=0`` or not on Linux. Jobs started before it listens run in their own
    process."""
    env = dict(os.environ if env is None else env)
    if env.get(ENV_SWITCH, "1") == "0" or not sys.platform.startswith("linux"):
        return None  # off, or not Linux (SO_PEERCRED; macOS frameworks are not fork-safe)
    folder = tempfile.mkdtemp(prefix="safervlm-prefork-")  # 0700: only this user connects
    path = str(Path(folder) / "socket")
    env.pop(ENV_SOCKET, None)
    env.update({k: "1" for k in THREAD_ENV})
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "safervlm.prefork", path, str(os.getpid())],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    os.environ[ENV_SOCKET] = path
    return proc


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    """Stop the server (running children finish their jobs). It removes its socket and folder
    itself; this removes them too for a server that died before listening or was killed."""
    path = os.environ.pop(ENV_SOCKET, None)
    if proc is not None and proc.poll() is None:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        if proc.poll() is None:
            proc.kill()
    if path:
        _remove(path)


def _remove(path: str) -> None:
    """The socket and its private folder, if still there."""
    with contextlib.suppress(OSError):
        os.unlink(path)
    with contextlib.suppress(OSError):
        os.rmdir(os.path.dirname(path))


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
