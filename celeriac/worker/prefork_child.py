"""The prefork pool's other side: the fork server, the child loop, and what crosses between.

Processes (``worker/prefork.py`` is the worker's side)::

    worker (asyncio loop, leases, acks)
      └── fork server: forked by the worker once, before its event loop and threads exist;
          │            single-threaded for ever, it only forks children and reaps them
          ├── child 1: runs one sync task body at a time, then waits for the next
          └── child 2 ...

A child is forked from the fork server, never from the worker: the worker has threads
(the lease keeper, the SQLite connection, the bridge), and a fork copies whatever lock
one of them held at that moment into a child that can never release it (Celery's
children that deadlock after a memory recycle, celery/celery#4809). The fork server is
a copy of the worker taken after the app was imported and ``gc.freeze()``: every child
shares those pages with it and with the worker, copy-on-write.

What crosses:

- worker -> fork server, on a ``SOCK_SEQPACKET`` pair: ``spawn`` with the child's socket
  attached (``SCM_RIGHTS``); back: ``spawned`` (pid), ``spawn-failed``, ``exited`` (pid and
  wait status, for every child it reaps).
- worker <-> child, on a stream socket: length-prefixed msgpack frames. ``run`` carries
  the task's name, its request and its arguments in the same wire form as a message
  (``serialization.to_wire``), so no user object needs to pickle; pickle is the fallback
  only for what JSON cannot hold (arguments of a ``serializer='pickle'`` task, a return
  value only the worker's own result handling would refuse). The reply is the body's
  value (wire form) or what it raised (pickled when the exception survives a round trip,
  else its class path and message), and the child's resident memory.

A child sets ``PR_SET_PDEATHSIG`` (SIGKILL) on the fork server, and the fork server on
the worker: a worker killed with SIGKILL leaves no process behind. Both leave the
worker's process group, so a signal sent to the worker's group (a terminal's Ctrl-C,
``kill -TERM -PGID``) reaches the worker alone, which then stops its children in order.
"""

from __future__ import annotations

import base64
import contextlib
import io
import logging
import os
import pickle
import select
import signal
import socket
import struct
import sys
import time
import traceback
from dataclasses import fields
from types import CodeType, FrameType
from typing import TYPE_CHECKING, Any, NoReturn

import msgspec

from .. import signals
from ..context import Request
from ..exceptions import Reject, Retry, SerializationError, SoftTimeLimitExceeded, TaskError
from ..execution import Outcome, _Raised, run_body
from ..serialization import from_wire, safe_text, to_wire
from . import processes

if TYPE_CHECKING:
    from ..app import Celery

logger = logging.getLogger("celeriac.worker")

_HEADER = struct.Struct(">I")
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode
_REQUEST_FIELDS = tuple(f.name for f in fields(Request) if f.name not in ("args", "kwargs"))
REAP_GRACE_S = 2.0  # the fork server's wait for its children once the worker is gone


# --- frames -----------------------------------------------------------------------------


def frame(message: dict[str, Any]) -> bytes:
    body = _encode(message)
    return _HEADER.pack(len(body)) + body


def decode_frame(body: bytes) -> dict[str, Any]:
    message: dict[str, Any] = _decode(body)
    return message


def header_length(header: bytes) -> int:
    length: int = _HEADER.unpack(header)[0]
    return length


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buffer = bytearray(n)
    view = memoryview(buffer)
    got = 0
    while got < n:
        count = sock.recv_into(view[got:])
        if count == 0:
            return None
        got += count
    return bytes(buffer)


def _recv_frame(sock: socket.socket) -> dict[str, Any] | None:
    header = _recv_exact(sock, _HEADER.size)
    if header is None:
        return None
    body = _recv_exact(sock, header_length(header))
    return None if body is None else decode_frame(body)


# --- what crosses: a call -------------------------------------------------------------


def encode_call(task_name: str, request: Request, soft_time_limit: float | None, rss: bool = False) -> bytes:
    """A ``run`` frame: the request in wire form, or pickled if JSON cannot hold it.
    ``rss``: the reply should say how much resident memory the child holds."""
    call: dict[str, Any] = {"op": "run", "task": task_name, "soft": soft_time_limit}
    if rss:
        call["rss"] = True
    try:
        call["args"] = to_wire(request.args, "the arguments")
        call["kwargs"] = to_wire(request.kwargs, "the keyword arguments")
        call["request"] = to_wire({name: getattr(request, name) for name in _REQUEST_FIELDS}, "the request")
        return frame(call)
    except Exception:  # SerializationError, or a value msgpack refuses (a lone surrogate, a huge int)
        pass
    for key in ("args", "kwargs", "request"):
        call.pop(key, None)
    try:
        call["pickle"] = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise SerializationError(
            f"the arguments of {task_name}[{request.id}] can be sent to a prefork child neither as "
            f"JSON nor pickled: {exc!r}") from exc
    return frame(call)


def decode_call(call: dict[str, Any]) -> Request:
    if "pickle" in call:
        request: Request = pickle.loads(call["pickle"])
        return request
    meta = from_wire(call["request"])
    if isinstance(meta.get("timelimit"), list):
        meta["timelimit"] = tuple(meta["timelimit"])
    return Request(args=from_wire(call["args"]), kwargs=from_wire(call["kwargs"]), **meta)


# --- what crosses: an outcome ---------------------------------------------------------


def encode_outcome(task_name: str, result: Any, rss: int | None) -> bytes:
    """The ``done`` frame for what ``run_body`` returned (its handlers ran here, in the child)."""
    if type(result) is _Raised:
        return frame({"op": "done", "raised": encode_exception(result.exc), "tb": safe_text(result.traceback),
                      "outcome": _encode_classified(result), "rss": rss})
    try:
        return frame({"op": "done", "value": to_wire(result), "rss": rss})
    except Exception:
        pass
    try:
        return frame({"op": "done", "pickle": pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL), "rss": rss})
    except Exception as exc:
        error = SerializationError(
            f"the return value of {task_name} cannot be sent from its prefork child: JSON cannot hold "
            f"it and pickle refused it ({exc!r})")
        return frame({"op": "done", "raised": encode_exception(error), "tb": "", "rss": rss})


def decode_outcome(reply: dict[str, Any]) -> Any:
    """What ``run_body`` returned in the child: the body's value, or a ``_Raised``."""
    if "raised" in reply:
        exc = decode_exception(reply["raised"])
        tb = reply.get("tb") or ""
        classified = _decode_classified(reply.get("outcome"), exc)
        return _Raised(exc, tb) if classified is None else _Raised(exc, tb, classified)
    if "pickle" in reply:
        return pickle.loads(reply["pickle"])
    return from_wire(reply.get("value"))


def _encode_classified(raised: _Raised) -> dict[str, Any] | None:
    """How ``run_body`` classified what the body raised, and whether it ran the handlers for it."""
    outcome: Outcome | None = getattr(raised, "outcome", None)
    if outcome is None:
        return None
    if outcome.exc is None:
        exc: Any = None
    elif outcome.exc is raised.exc:
        exc = "raised"
    elif outcome.exc is getattr(raised.exc, "exc", None):
        exc = "inner"  # retry(exc=...): the Retry's own cause
    else:
        exc = encode_exception(outcome.exc)
    retry_args: Any = None
    if outcome.retry_args is not None:
        try:
            retry_args = {"wire": to_wire(list(outcome.retry_args))}
            _encode(retry_args)
        except Exception:
            with contextlib.suppress(Exception):
                retry_args = {"pickle": pickle.dumps(outcome.retry_args, protocol=pickle.HIGHEST_PROTOCOL)}
    return {"kind": outcome.kind, "exc": exc, "traceback": safe_text(outcome.traceback or "") or None,
            "retry_in_s": outcome.retry_in_s, "retry_args": retry_args,
            "handled": bool(getattr(outcome, "handled", False))}


def _decode_classified(classified: dict[str, Any] | None, raised: BaseException) -> Outcome | None:
    if not classified:
        return None
    exc_field = classified.get("exc")
    exc: BaseException | None
    if exc_field == "raised":
        exc = raised
    elif exc_field == "inner":
        exc = getattr(raised, "exc", None) or raised
    elif isinstance(exc_field, dict):
        exc = decode_exception(exc_field)
    else:
        exc = None
    retry_args: Any = None
    packed = classified.get("retry_args")
    if packed:
        if "pickle" in packed:
            retry_args = tuple(pickle.loads(packed["pickle"]))
        else:
            args, kwargs = from_wire(packed["wire"])
            retry_args = (args, kwargs)
    outcome = Outcome(classified["kind"], exc=exc, traceback=classified.get("traceback"),
                      retry_in_s=classified.get("retry_in_s"), retry_args=retry_args)
    if hasattr(outcome, "handled"):
        outcome.handled = bool(classified.get("handled"))
    return outcome


def type_path(exc: BaseException) -> str:
    kind = type(exc)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def encode_exception(exc: BaseException) -> dict[str, Any]:
    """An exception, pickled if it comes back out of pickle (many user exceptions do not:
    an ``__init__`` with two required arguments), and always its class path and message."""
    described: dict[str, Any] = {"type": type_path(exc), "message": _text_of(exc)}
    try:
        data = pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.loads(data)
    except Exception:
        pass
    else:
        described["pickle"] = data
        return described
    if isinstance(exc, Retry):
        new_args = getattr(exc, "new_args", None)
        described["retry"] = {
            "when": exc.when, "message": exc.message,
            "exc": encode_exception(exc.exc) if exc.exc is not None else None,
            "new_args": base64.b64encode(pickle.dumps(new_args)).decode() if new_args is not None else None,
        }
    elif isinstance(exc, Reject):
        described["reject"] = {"reason": _text_of(exc), "requeue": bool(exc.requeue)}
    return described


def decode_exception(described: dict[str, Any]) -> BaseException:
    if "pickle" in described:
        with contextlib.suppress(Exception):
            exc: BaseException = pickle.loads(described["pickle"])
            return exc
    message = described.get("message") or ""
    if "retry" in described:
        retry = described["retry"]
        inner = decode_exception(retry["exc"]) if retry.get("exc") else None
        rebuilt = Retry(retry.get("message"), exc=inner, when=retry.get("when"))
        if retry.get("new_args"):
            rebuilt.new_args = pickle.loads(base64.b64decode(retry["new_args"]))  # type: ignore[attr-defined]
        return rebuilt
    if "reject" in described:
        return Reject(described["reject"]["reason"], requeue=described["reject"]["requeue"])
    path = described.get("type") or "Exception"
    cls = _exception_class(path)
    if cls is None:
        return TaskError(path, message)
    try:
        return cls(message)
    except Exception:
        rebuilt_exc = cls.__new__(cls)
        rebuilt_exc.args = (message,)
        return rebuilt_exc


def _exception_class(path: str) -> type[BaseException] | None:
    module_name, _, qualname = path.rpartition(".")
    if not module_name:
        module_name, qualname = "builtins", path
    target: Any = sys.modules.get(module_name)  # only modules imported already: never import code
    if target is None:
        return None
    try:
        for part in qualname.split("."):
            target = getattr(target, part)
    except AttributeError:
        return None
    return target if isinstance(target, type) and issubclass(target, BaseException) else None


def _text_of(exc: BaseException) -> str:
    try:
        return safe_text(str(exc))
    except Exception as again:
        return f"<{type(exc).__qualname__}: its message could not be read: {again!r}>"


# --- the fork server ------------------------------------------------------------------


def zygote_main(ctrl: socket.socket, worker_pid: int, app: Celery, worker_name: str) -> NoReturn:
    """The fork server's whole life: fork children on request, report each one's exit."""
    code = 0
    try:
        processes.die_with_parent(signal.SIGKILL, worker_pid)
        with contextlib.suppress(OSError):
            os.setpgid(0, 0)  # out of the worker's group: a group signal is the worker's to handle
        processes.reset_signals(ignore=(signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGHUP,
                                        signal.SIGUSR1, signal.SIGUSR2))
        processes.set_process_name(_child_name(worker_name, "ForkServer"))
        _serve_forks(ctrl, app, worker_name)
    except BaseException:
        code = 1
        with contextlib.suppress(Exception):
            logger.exception("the prefork pool's fork server failed")
    finally:
        _flush_and_exit(code)


def _serve_forks(ctrl: socket.socket, app: Celery, worker_name: str) -> None:
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # only to wake the select below
    zygote_pid = os.getpid()
    children: set[int] = set()

    def tell(message: dict[str, Any]) -> bool:
        try:
            ctrl.send(msgspec.json.encode(message))
        except OSError:
            return False  # the worker closed its end: it is shutting down, or gone
        return True

    def reap() -> None:
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            children.discard(pid)
            tell({"op": "exited", "pid": pid, "status": status})

    while True:
        readable, _, _ = select.select([ctrl.fileno(), wake_r], [], [], 1.0)
        if wake_r in readable:
            with contextlib.suppress(OSError):
                os.read(wake_r, 4096)
        reap()
        if ctrl.fileno() not in readable:
            continue
        try:
            data, fds, _, _ = socket.recv_fds(ctrl, 65536, 4)
        except (BlockingIOError, InterruptedError):
            continue
        except OSError:
            data, fds = b"", []
        if not data:
            break  # the worker closed its end, or died
        request = msgspec.json.decode(data)
        if request.get("op") != "spawn" or not fds:
            for fd in fds:
                os.close(fd)
            continue
        child_fd = fds[0]
        for extra in fds[1:]:
            os.close(extra)
        try:
            pid = os.fork()
        except OSError as exc:
            os.close(child_fd)
            if not tell({"op": "spawn-failed", "id": request["id"], "error": str(exc)}):
                break
            continue
        if pid == 0:
            code = 1
            try:
                signal.set_wakeup_fd(-1)
                os.close(wake_r)
                os.close(wake_w)
                ctrl.close()
                code = child_main(child_fd, app, request["name"], zygote_pid)
            finally:
                _flush_and_exit(code)
        os.close(child_fd)
        children.add(pid)
        if not tell({"op": "spawned", "id": request["id"], "pid": pid}):
            break

    # The worker is gone or shutting down: it has told the children to exit already.
    deadline = time.monotonic() + REAP_GRACE_S
    while children and time.monotonic() < deadline:
        reap()
        time.sleep(0.02)
    for pid in children:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


# --- a child --------------------------------------------------------------------------


class _SoftLimit:
    """``soft_time_limit`` in a child: SIGALRM raises ``SoftTimeLimitExceeded`` in the body.

    Only inside the body: if the alarm comes while the child runs its own code (sending
    the reply, ``task_postrun`` receivers), nothing is raised; the body is over anyway.
    """

    def __init__(self) -> None:
        self.body: CodeType | None = None
        self.armed = False
        self.seconds = 0.0

    def arm(self, body: CodeType | None, seconds: float) -> None:
        self.body, self.armed, self.seconds = body, True, seconds
        signal.setitimer(signal.ITIMER_REAL, seconds)

    def disarm(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        self.armed, self.body = False, None

    def on_alarm(self, signum: int, frame: FrameType | None) -> None:
        if not self.armed:
            return
        if self.body is not None:
            current = frame
            while current is not None and current.f_code is not self.body:
                current = current.f_back
            if current is None:
                return  # not in the body (its prerun/postrun, or already returning)
        self.armed = False
        raise SoftTimeLimitExceeded(f"soft time limit ({self.seconds:g}s) exceeded")


def _body_code(task: Any) -> CodeType | None:
    run = task.run
    function = getattr(run, "__func__", run)
    code: CodeType | None = getattr(function, "__code__", None)
    return code


def child_main(fd: int, app: Celery, name: str, zygote_pid: int) -> int:
    """Run bodies for the worker until it says stop (or goes away); the exit code."""
    processes.die_with_parent(signal.SIGKILL, zygote_pid)
    # A terminal's Ctrl-C and Ctrl-\ are the worker's to handle; SIGTERM (revoke's
    # terminate) and SIGKILL end the child.
    processes.reset_signals(ignore=(signal.SIGINT, signal.SIGQUIT))
    processes.set_process_name(name)
    soft = _SoftLimit()
    signal.signal(signal.SIGALRM, soft.on_alarm)
    sock = socket.socket(fileno=fd)
    sock.setblocking(True)
    signals.worker_process_init.send(sender=None)
    sock.sendall(frame({"op": "hello", "pid": os.getpid()}))
    while True:
        try:
            call = _recv_frame(sock)
        except OSError:
            return 0
        if call is None or call.get("op") != "run":
            return 0  # "exit", or the worker closed our socket: recycled or shutting down
        reply = _run(app, call, soft)
        with contextlib.suppress(Exception):
            sys.stdout.flush()  # what the body printed, before the worker may recycle this child
        try:
            sock.sendall(reply)
        except OSError:
            return 0


def _run(app: Celery, call: dict[str, Any], soft: _SoftLimit) -> bytes:
    task_name = call["task"]
    try:
        task = app.get_task(task_name)
        request = decode_call(call)
    except Exception as exc:  # NotRegistered, or arguments that do not decode
        return encode_outcome(task_name, _Raised(exc, traceback.format_exc()), _rss(call))
    seconds = call.get("soft")
    if seconds:
        soft.arm(_body_code(task), float(seconds))
    try:
        result = run_body(task, request)
    except Exception as exc:  # celeriac's own code around the body failed: still only this task's outcome
        result = _Raised(exc, traceback.format_exc())
    finally:
        if seconds:
            soft.disarm()
    return encode_outcome(task_name, result, _rss(call))


def _rss(call: dict[str, Any]) -> int | None:
    return processes.rss_kib() if call.get("rss") else None  # read only for --max-memory-per-child


def _child_name(worker_name: str, name: str) -> str:
    return name if worker_name == "MainProcess" else f"{worker_name}/{name}"


def child_name(worker_name: str, number: int) -> str:
    return _child_name(worker_name, f"ForkPoolWorker-{number}")


def _flush_and_exit(code: int) -> NoReturn:
    """Leave a forked process without running the parent's atexit handlers or joining its threads."""
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            if stream is not None and not isinstance(stream, io.StringIO):
                stream.flush()
    os._exit(code)
