"""The Edge TPU in a worker process of its own, so that libedgetpu cannot take maskdet down.

libedgetpu runs native code that no Python `except` can stop: a build that does not match the
TFLite runtime crashes (SIGSEGV) while the delegate loads, USB transfer errors end in
`LOG(FATAL)` (SIGABRT), and a wedged device hangs `invoke()`. So one child process owns the
Edge TPU of a device and every model on it (the detector and the classifier share it):

- `TpuWorker` is one child process (`python -c ... child_main`, never a fork: the parent may
  have threads) and the parent's end of a `multiprocessing` Pipe. The child loads the delegate,
  opens each model, runs one inference on zeros (the probe), says `ready` with the tensor
  details, then answers one `invoke` at a time.
- `EdgeTpuHost` is the parent's view of one device: it starts the worker, waits for every answer
  with a deadline (`load_timeout_s` for the probe, `invoke_timeout_s` per inference), turns a
  death by a signal, an error reply or a missed deadline into a `TpuFailure` whose message says
  what to do, kills the worker, and starts a new one later (back-off doubling from
  `retry_first_s` to `retry_max_s`) without blocking: `poll()` is called on later invokes and
  only looks at the pipe (`conn.poll(0)`).
- `EdgeTpuHosts` is the caller's registry of hosts, one per device (`build_pipeline` owns one and
  closes it); `EdgeTpuHosts.shared()` makes it the one every `AcceleratedModel` made inside the
  block joins (the detectors do not pass it down themselves).

`AcceleratedModel` (accelerator.py) is the interpreter the detectors and the classifier see; it
falls back to the CPU twin in-process when the host reports a failure.

Test and diagnostic knobs (never needed in production):
- `$MASKDET_EDGETPU_LIBRARY`: the libedgetpu file to load instead of `libedgetpu.so.1` found by
  the dynamic loader (e.g. the tests' stand-in, or a build under test).
- `$MASKDET_EDGETPU_INVOKE_TIMEOUT_S`, `$MASKDET_EDGETPU_LOAD_TIMEOUT_S`: the deadlines (seconds)
  when the caller gives none (AcceleratorSettings has no field for them yet).
- `$MASKDET_STAND_IN_FAULT` = segv | abort | hang | error and `$MASKDET_STAND_IN_FAULT_AFTER` = N:
  read by the worker process only, which then fails that way on every invoke after the first N
  (the probe is not counted): a device that fails mid-run, which the stand-in library (whose
  delegate claims no node) cannot do by itself.
"""
import contextlib
import contextvars
import importlib.metadata
import logging
import math
import multiprocessing
import multiprocessing.connection
import os
import platform
import signal
import subprocess
import sys
import time
import weakref

from edge.errors import AcceleratorError

log = logging.getLogger(__name__)

EDGETPU_LIBRARY = {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib",
                   "Windows": "edgetpu.dll"}.get(platform.system(), "libedgetpu.so.1")
LIBRARY_ENV = "MASKDET_EDGETPU_LIBRARY"
TIMEOUT_ENV = {"invoke_timeout_s": "MASKDET_EDGETPU_INVOKE_TIMEOUT_S",
               "load_timeout_s": "MASKDET_EDGETPU_LOAD_TIMEOUT_S"}
FAULT_ENV = "MASKDET_STAND_IN_FAULT"
FAULT_AFTER_ENV = "MASKDET_STAND_IN_FAULT_AFTER"
CHECKLIST = ("check that the Coral is plugged in (a USB 3 port, or `lspci` shows it for PCIe), "
             "that libedgetpu1-std is installed, that the udev rules are in place and the service "
             "user is in the plugdev group (USB), or that the gasket / apex driver is loaded and "
             "/dev/apex_0 is readable (PCIe)")

INVOKE_TIMEOUT_S = 5.0   # one inference; Frigate restarts its detector after 10 s
LOAD_TIMEOUT_S = 30.0    # start the worker, load the delegate, open a model, one probe inference
RETRY_FIRST_S = 10.0     # the first retry of the Edge TPU after a failure, then doubling ...
RETRY_MAX_S = 300.0      # ... up to this
STOP_GRACE_S = 2.0       # a worker asked to close is killed after this

CRASH_SIGNALS = ("SIGSEGV", "SIGBUS", "SIGILL")
RUNTIME_DISTRIBUTIONS = {"ai_edge_litert": ("ai-edge-litert", "ai-edge-litert-nightly"),
                         "tflite_runtime": ("tflite-runtime", "tflite_runtime"),
                         "tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-aarch64")}
USB_ADVICE = "check the cable, use a USB 3 port directly (no hub) and a 3 A power supply"
WEDGED_ADVICE = "the device is wedged; unplug and replug it, or power-cycle"
# What the worker process runs (an explicit entry point: nothing of the parent's __main__).
CHILD_CODE = "from edge.inference.edgetpu_child import child_main; child_main()"


class TpuFailure(AcceleratorError):
    """The Edge TPU (its worker process) failed; the message says what to do.

    `kind`: missing (libedgetpu cannot be opened: not retried), unavailable (the delegate or the
    worker cannot start), model (this model cannot run on the Edge TPU; the worker goes on),
    crash, abort, killed, exit, hang, error (an error reply to an inference), released (handed
    to another process for a while: a reload)."""

    def __init__(self, message, kind):
        super().__init__(message)
        self.kind = kind


# --------------------------------------------------------------------------- what a cause says

def edgetpu_library():
    """The libedgetpu to load: `$MASKDET_EDGETPU_LIBRARY` (a test / diagnostic knob) or the
    platform's library name, found by the dynamic loader (LD_LIBRARY_PATH, ld.so.cache)."""
    return os.environ.get(LIBRARY_ENV) or EDGETPU_LIBRARY


def timeouts_from_environment():
    """{invoke_timeout_s, load_timeout_s} set by `$MASKDET_EDGETPU_*_TIMEOUT_S` (a value that is
    not a positive number is named in a warning and ignored)."""
    found = {}
    for option, name in TIMEOUT_ENV.items():
        text = os.environ.get(name)
        if not text:
            continue
        try:
            value = float(text)
        except ValueError:
            value = 0.0
        if math.isfinite(value) and value > 0:
            found[option] = value
        else:
            log.warning("%s=%r is not a positive number of seconds; ignored", name, text)
    return found


def runtime_label(runtime_name):
    """`ai_edge_litert 2.3.0`: the runtime and its installed version (as far as it is known)."""
    for distribution in RUNTIME_DISTRIBUTIONS.get(runtime_name, (runtime_name,)):
        try:
            return f"{runtime_name} {importlib.metadata.version(distribution)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    return runtime_name


def signal_name(returncode):
    """`SIGSEGV` for a return code of -11; None when the process was not ended by a signal."""
    if returncode is None or returncode >= 0:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def death_cause(returncode, phase, runtime_name):
    """A TpuFailure for a worker that ended with `returncode` while `phase` (`load` / `run`)."""
    name = signal_name(returncode)
    runtime = runtime_label(runtime_name)
    if name in CRASH_SIGNALS and phase == "load":
        return TpuFailure(f"libedgetpu and the TFLite runtime do not match (crashed with {name} "
                          f"while loading): install the libedgetpu built for {runtime} (see "
                          "README, Coral)", "crash")
    if name in CRASH_SIGNALS:
        return TpuFailure(f"the Edge TPU worker crashed during an inference ({name}): libedgetpu "
                          f"may not match the TFLite runtime; install the libedgetpu built for "
                          f"{runtime} (see README, Coral)", "crash")
    if name == "SIGABRT" and phase == "run":
        return TpuFailure(f"the Edge TPU aborted during an inference (SIGABRT): a USB fault; "
                          f"{USB_ADVICE}", "abort")
    if name == "SIGABRT":
        return TpuFailure(f"the Edge TPU aborted while loading (SIGABRT): a USB fault, or a "
                          f"libedgetpu that does not match {runtime}; {USB_ADVICE}, and see "
                          "README, Coral", "abort")
    during = "while loading" if phase == "load" else "during an inference"
    if name:
        return TpuFailure(f"the Edge TPU worker was killed by {name} {during} (out of memory, or "
                          "stopped by someone)", "killed")
    return TpuFailure(f"the Edge TPU worker exited with status {returncode} {during}; its "
                      "messages are on stderr (the journal)", "exit")


def hang_cause(seconds, phase):
    """A TpuFailure for a worker that did not answer within `seconds`."""
    during = " while loading" if phase == "load" else ""
    return TpuFailure(f"the Edge TPU did not answer within {seconds:g} s{during}: "
                      f"{WEDGED_ADVICE}", "hang")


# --------------------------------------------------------------------------- the parent's side

def _child_environment():
    """The parent's environment, with this package importable in the child whatever its cwd."""
    import edge

    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(edge.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


class TpuWorker:
    """One worker process and the parent's end of its pipe. Any failure kills the process and
    raises a TpuFailure that says what happened."""

    def __init__(self, runtime_name, device, library):
        self.runtime_name = runtime_name
        parent_end, child_end = multiprocessing.Pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", CHILD_CODE, str(child_end.fileno()), runtime_name,
                 device or "", library],
                pass_fds=(child_end.fileno(),), stdin=subprocess.DEVNULL, stdout=2,
                env=_child_environment())
        except OSError as exc:
            parent_end.close()
            raise TpuFailure(f"cannot start the Edge TPU worker process ({exc})", "unavailable") from exc
        finally:
            child_end.close()  # else the parent never sees the end of the pipe when the child dies
        self.conn = parent_end
        self.pid = self.process.pid
        self._killed = False

    def send(self, request, phase):
        """Send a request; a worker that is gone raises its TpuFailure."""
        try:
            self.conn.send(request)
        except (OSError, ValueError):
            raise self._failure_after_death(phase) from None

    def receive(self, timeout, phase, deadline_s=None):
        """The next reply within `timeout` s, or the TpuFailure of a death or a missed deadline
        (whose message names `deadline_s`, the whole deadline, when `timeout` is what is left)."""
        if not self.conn.poll(max(0.0, timeout)):
            self.kill()
            raise hang_cause(deadline_s or timeout, phase)
        return self._read(phase)

    def receive_now(self, phase):
        """The next reply if one is waiting, else None (never blocks)."""
        return self._read(phase) if self.conn.poll(0) else None

    def _read(self, phase):
        """One reply, or the TpuFailure of a worker that is gone."""
        try:
            return self.conn.recv()
        except (EOFError, OSError):
            raise self._failure_after_death(phase) from None

    def _failure_after_death(self, phase):
        """The worker closed its end: it died (or is dying); its exit status says how."""
        try:
            returncode = self.process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            self.kill()
            return TpuFailure("the Edge TPU worker closed its pipe but did not exit; it was "
                              "killed", "exit")
        self.conn.close()
        return death_cause(returncode, phase, self.runtime_name)

    def kill(self):
        """Kill the process (SIGKILL) and reap it; one stuck in the kernel is left to the OS, and
        waited for only once (a second kill returns at once)."""
        if self.process.poll() is None and not self._killed:
            self._killed = True
            self.process.kill()
            try:
                self.process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                log.warning("the Edge TPU worker %d does not exit after SIGKILL (stuck in the "
                            "USB / PCIe driver?)", self.pid)
        self.conn.close()

    def close(self):
        """Ask the worker to exit; kill it if it does not within STOP_GRACE_S."""
        if self.process.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                self.conn.send(("close",))
            try:
                self.process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                pass
        self.kill()


def _close_workers(workers):
    """Finalizer of an EdgeTpuHost: close its worker (if any)."""
    while workers:
        workers.pop().close()


class EdgeTpuHost:
    """The Edge TPU of one device, run by one worker process that every model on it shares.

    States: idle (no worker yet), starting (a worker is loading the models), up, down (failed:
    a retry is due at `next_retry`), closed. `generation` counts the workers that came up: a
    model served by an older one knows its worker is gone. Not thread-safe (as an interpreter):
    one thread runs a pipeline."""

    def __init__(self, device=None, runtime_name="ai_edge_litert", library=None,
                 invoke_timeout_s=INVOKE_TIMEOUT_S, load_timeout_s=LOAD_TIMEOUT_S,
                 retry_first_s=RETRY_FIRST_S, retry_max_s=RETRY_MAX_S, clock=time.monotonic):
        self.device = device
        self.runtime_name = runtime_name
        self.library = library or edgetpu_library()
        self.invoke_timeout_s = invoke_timeout_s
        self.load_timeout_s = load_timeout_s
        self.retry_first_s = retry_first_s
        self.retry_max_s = retry_max_s
        self.clock = clock
        self.state = "idle"
        self.generation = 0
        self.cause = None            # the last failure, in words
        self._last_failure = None    # ... as a TpuFailure
        self.next_retry = None
        self._backoff = retry_first_s
        self._paths = {}             # key -> Edge TPU model path, every model registered
        self._details = {}           # key -> (input details, output details) in this worker
        self._refused = {}           # key -> why this worker cannot run that model
        self._pending = set()        # keys whose `open` the starting worker has not answered
        self._worker = None
        self._live = []              # the worker, for the finalizer
        self._started_at = None
        self._up_since = None
        self._new_worker = False
        self.starts = 0
        self.failures = 0
        self.last_invoke_s = None    # the last inference as timed inside the worker
        self._finalizer = weakref.finalize(self, _close_workers, self._live)

    # ---- models

    def register(self, path, threads=None):
        """Add a model (an `_edgetpu.tflite` path; `threads` for its ops left on the CPU);
        returns its key. Blocks (at most `load_timeout_s`) while a worker loads it; when the
        host is down the model waits for the next retry. `details(key)` then says whether it
        runs here."""
        if self.state == "starting":
            self._progress(block=True)  # a retry under way: let it finish first
        key = len(self._paths)
        self._paths[key] = (os.fspath(path), threads)
        if self.state == "idle":
            self._start()
        elif self.state == "up":
            self._ask_open(key)
        if self.state == "starting":
            self._progress(block=True)
        return key

    def details(self, key):
        """(input details, output details) of a model the current worker runs, else None."""
        return self._details.get(key) if self.state == "up" else None

    def why_not(self, key):
        """Why the model does not run on the Edge TPU now, as a TpuFailure (None when it does)."""
        if self.state == "up" and key in self._details:
            return None
        if self.state == "up" and key in self._refused:
            return TpuFailure(self._refused[key], "model")
        if self.state == "closed":
            return TpuFailure("the Edge TPU worker was stopped", "unavailable")
        if self.state in ("starting", "idle") and self._last_failure is None:
            return TpuFailure("the Edge TPU worker is starting", "unavailable")
        return self._last_failure

    def serving(self, key, generation):
        """True while the worker of `generation` is up and runs the model."""
        return self.state == "up" and self.generation == generation and key in self._details

    # ---- inference

    def invoke(self, key, inputs):
        """Outputs (by position) of one inference; TpuFailure (the worker killed, a retry
        planned) when the worker dies, replies with an error or misses the deadline."""
        try:
            self._worker.send(("invoke", key, inputs), "run")
            reply = self._worker.receive(self.invoke_timeout_s, "run")
        except TpuFailure as failure:
            self._went_down(failure)
            raise
        if reply[0] != "ok":
            failure = TpuFailure(f"the Edge TPU failed while running: {reply[-1]}", "error")
            self._went_down(failure)
            raise failure
        self.last_invoke_s = reply[2]  # in the worker: the rest of the round trip is transport
        return reply[1]

    def ping(self, payload=None):
        """Send `payload` to the worker and back (what the transport costs); TpuFailure as
        `invoke`."""
        try:
            self._worker.send(("ping", payload), "run")
            return self._worker.receive(self.invoke_timeout_s, "run")[1]
        except TpuFailure as failure:
            self._went_down(failure)
            raise

    def poll(self):
        """Move a retry on without blocking: start a worker when one is due, read the answers of
        a starting worker (`conn.poll(0)`), give up on one past `load_timeout_s`."""
        if self.state == "down" and self.clock() >= self.next_retry:
            log.info("retrying the Edge TPU%s (worker %d)", self._where(), self.starts + 1)
            self._start()
        if self.state == "starting":
            self._progress(block=False)

    # ---- the worker's life

    def _where(self):
        """` usb:0` for log lines (nothing for any device)."""
        return f" {self.device}" if self.device else ""

    def _start(self):
        """Start a worker and ask it to open every registered model."""
        self._details, self._refused = {}, {}
        self.starts += 1
        try:
            self._worker = TpuWorker(self.runtime_name, self.device, self.library)
        except TpuFailure as failure:
            self._went_down(failure)
            return
        self._live[:] = [self._worker]
        self.state, self._started_at, self._new_worker = "starting", self.clock(), True
        self._pending = set(self._paths)
        for key in sorted(self._paths):
            if not self._send(("open", key, *self._paths[key]), "load"):
                return

    def _ask_open(self, key):
        """Ask the running worker to open one more model."""
        if self._send(("open", key, *self._paths[key]), "load"):
            self.state, self._started_at = "starting", self.clock()
            self._pending = {key}

    def _send(self, request, phase):
        """Send to the worker; False (and down) when it is gone."""
        try:
            self._worker.send(request, phase)
        except TpuFailure as failure:
            self._went_down(failure)
            return False
        return True

    def _progress(self, block):
        """Read the starting worker's answers (waiting for them when `block`)."""
        while self.state == "starting" and self._pending:
            left = self.load_timeout_s - (self.clock() - self._started_at)
            try:
                if left <= 0:
                    self._worker.kill()
                    raise hang_cause(self.load_timeout_s, "load")
                reply = (self._worker.receive(left, "load", self.load_timeout_s) if block
                         else self._worker.receive_now("load"))
            except TpuFailure as failure:
                self._went_down(failure)
                return
            if reply is None:
                return
            self._take_answer(reply)
        if self.state == "starting":
            self._came_up()

    def _take_answer(self, reply):
        """One answer to `open`: the model is ready, refused (this model only), or the device
        is unavailable (the worker goes down)."""
        kind, key = reply[0], reply[1]
        self._pending.discard(key)
        if kind == "ready":
            self._details[key] = (reply[2], reply[3])
        elif kind == "model":
            self._refused[key] = reply[2]
            log.warning("%s cannot run on the Edge TPU: %s", self._paths[key][0], reply[2])
        else:  # missing / unavailable: the device or its library, for every model
            self._worker.kill()
            self._went_down(TpuFailure(reply[2], kind))

    def _came_up(self):
        """Every model answered: serve them (a new worker is a new generation)."""
        self.state = "up"
        if not self._new_worker:  # one more model opened by the running worker
            return
        self._new_worker = False
        self.generation += 1
        self._up_since = self.clock()
        if self.starts > 1:
            log.info("the Edge TPU%s answers again (worker %d, pid %d)", self._where(),
                     self.starts, self._worker.pid)

    def _went_down(self, failure):
        """Kill the worker, remember why, and plan the next retry (back-off doubles, and
        starts over after a worker that stayed up for `retry_max_s`; none when libedgetpu itself
        is missing: installing it means restarting maskdet)."""
        if self._worker is not None:
            self._worker.kill()
        self._live.clear()
        was_up_long = self._up_since is not None and \
            self.clock() - self._up_since >= self.retry_max_s
        if was_up_long:
            self._backoff = self.retry_first_s
        # The models say it when they leave the Edge TPU; a retry that fails anew is said here.
        news = self.state == "starting" and self.starts > 1 and str(failure) != self.cause
        self.state, self.cause, self._up_since = "down", str(failure), None
        self._last_failure = failure
        self.failures += 1
        if failure.kind == "missing":
            self.next_retry = math.inf
            log.info("Edge TPU%s: %s; not retried until maskdet restarts", self._where(), failure)
            return
        self.next_retry = self.clock() + self._backoff
        (log.warning if news else log.info)(
            "Edge TPU%s worker %d failed: %s; next try in %.0f s", self._where(), self.starts,
            failure, self._backoff)
        self._backoff = min(self._backoff * 2, self.retry_max_s)

    def counters(self):
        """Worker starts, restarts (starts after the first), failures, state and pid."""
        return {"state": self.state, "worker_starts": self.starts,
                "tpu_restarts": max(0, self.starts - 1), "worker_failures": self.failures,
                "worker_pid": self._worker.pid if self._worker and self.state != "down" else None,
                "cause": self.cause}

    def release(self, reason, retry_in_s):
        """Let another process have the device for a while (a reload builds its models while
        these still run): the worker exits, the models go on on the CPU, and the device is tried
        again in `retry_in_s` seconds as after a failure."""
        if self.state in ("closed", "idle"):
            return
        if self._worker is not None:
            self._worker.close()
        self._live.clear()
        self.state, self.cause, self._up_since = "down", reason, None
        self._last_failure = TpuFailure(reason, "released")
        self.next_retry = self.clock() + retry_in_s
        log.info("Edge TPU%s released: %s; tried again in %.0f s", self._where(), reason, retry_in_s)

    def close(self):
        """Stop the worker; the host serves nothing after this."""
        self._finalizer()
        self.state = "closed"


_SHARED = contextvars.ContextVar("maskdet_edgetpu_hosts", default=None)


class EdgeTpuHosts:
    """A caller's Edge TPU hosts, one per (device, runtime): the models on one device share one
    worker. `build_pipeline` makes one, shares it with the models it opens (`shared()`) and the
    pipeline closes it. `host_options` (timeouts, back-off, clock) go to each EdgeTpuHost; the
    timeouts default to `timeouts_from_environment()`, then to INVOKE_TIMEOUT_S / LOAD_TIMEOUT_S."""

    def __init__(self, **host_options):
        self.host_options = {**timeouts_from_environment(), **host_options}
        self._hosts = {}
        self._models = weakref.WeakSet()

    def host(self, device, runtime_name):
        """The host of `device` (made on first use)."""
        key = (device or "", runtime_name)
        if key not in self._hosts:
            self._hosts[key] = EdgeTpuHost(device, runtime_name, **self.host_options)
        return self._hosts[key]

    def track(self, model):
        """Remember a model that wants the Edge TPU (for `model_counters`)."""
        self._models.add(model)

    def model_counters(self):
        """{model file name: its counters} for every live model that wants the Edge TPU."""
        return {os.path.basename(m.cpu_path): m.counters() for m in list(self._models)}

    @contextlib.contextmanager
    def shared(self):
        """Within the block, an AcceleratedModel made without `hosts` joins these hosts."""
        token = _SHARED.set(self)
        try:
            yield self
        finally:
            _SHARED.reset(token)

    def release(self, reason, retry_in_s=30.0):
        """Every host lets go of its device for a while (see EdgeTpuHost.release)."""
        for host in self._hosts.values():
            host.release(reason, retry_in_s)

    def close(self):
        """Stop every worker."""
        for host in self._hosts.values():
            host.close()


def shared_hosts():
    """The EdgeTpuHosts of the enclosing `EdgeTpuHosts.shared()` block, else None."""
    return _SHARED.get()
