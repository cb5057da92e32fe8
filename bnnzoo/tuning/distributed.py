"""keras-tuner's chief/worker mode, with bounded waits and lost-worker recovery.

keras-tuner distributes a search through environment variables: every process
runs the same search; the one whose `KERASTUNER_TUNER_ID` contains `chief` runs
the oracle as a gRPC server at `KERASTUNER_ORACLE_IP:KERASTUNER_ORACLE_PORT` and
blocks; the others (workers) ask it for trials, train them and report back.
`configure` sets those variables for `bnnzoo tune --distributed chief|worker`.

Two things stock keras-tuner 1.4.8 does not do, added here:

* **A worker that dies no longer blocks the search.** The stock chief waits
  forever for a dead worker's trial. Here workers send a heartbeat while they
  train; a worker silent for `worker_timeout` seconds is dropped and its trial
  goes back to the queue for another worker (finished trials are untouched).
  When the trial budget is spent the chief holds idle workers (they poll) until
  no other worker's trial can still come back, then stops them.
* **An unreachable chief is an error, not a hang.** Stock workers wait up to an
  hour per call. `wait_for_chief` fails within `connect_timeout` seconds with a
  message naming the address, and `set_rpc_timeout` bounds every later call.
"""

from __future__ import annotations

import os
import socket
import time
from concurrent import futures
from typing import Callable

from keras_tuner import synchronized
from keras_tuner.engine import trial as _trial_module

# keras-tuner 1.4 has no public API for its chief/worker service: the oracle servicer,
# the RPC client's timeout and the generated protos live only under `keras_tuner.src`
# (`keras_tuner.src.distribute`, `keras_tuner.src.protos`). They are imported here and
# in tuners.py (`distribute.utils`) and nowhere else; keras-tuner is pinned in
# constraints*.txt, and tests/test_tuning.py runs a real chief with two workers, so a
# change to them fails the suite.
from keras_tuner.src.distribute import oracle_chief  # noqa: E402

__all__ = ["ChiefUnreachableError", "configure", "serve_oracle", "set_rpc_timeout", "wait_for_chief"]

ENV_TUNER_ID = "KERASTUNER_TUNER_ID"
ENV_ORACLE_IP = "KERASTUNER_ORACLE_IP"
ENV_ORACLE_PORT = "KERASTUNER_ORACLE_PORT"
ROLES = ("chief", "worker")
# Workers ping the chief this often while they train; a chief's worker_timeout
# must leave room for a few missed beats.
HEARTBEAT_SECONDS = 2.0
MIN_WORKER_TIMEOUT = 3 * HEARTBEAT_SECONDS


class ChiefUnreachableError(RuntimeError):
    """No tuning chief answered at the configured address in time."""


def configure(role: str, oracle_ip: str, oracle_port: int, tuner_id: str | None = None) -> str:
    """Set keras-tuner's distribution variables for this process; return its tuner id.

    Args:
        role: `"chief"` (runs the oracle server) or `"worker"` (runs trials).
        oracle_ip: address the chief listens on / workers connect to.
        oracle_port: its TCP port (1-65535).
        tuner_id: a worker's id (default `worker-<host>-<pid>`); a worker restarted
            with the same id picks up the trial it was running.
    """
    if role not in ROLES:
        raise ValueError(f"Unknown distributed role {role!r}. Valid: {', '.join(ROLES)}")
    if not oracle_ip:
        raise ValueError("oracle_ip is required in distributed mode (e.g. 127.0.0.1)")
    if not (isinstance(oracle_port, int) and 0 < oracle_port < 65536):
        raise ValueError(f"oracle_port must be in 1..65535, got {oracle_port!r}")
    if role == "chief":
        tuner_id = "chief"
    else:
        tuner_id = tuner_id or f"worker-{socket.gethostname()}-{os.getpid()}"
        if "chief" in tuner_id:
            raise ValueError(f"a worker's tuner_id must not contain 'chief', got {tuner_id!r}")
    os.environ[ENV_TUNER_ID] = tuner_id
    os.environ[ENV_ORACLE_IP] = oracle_ip
    os.environ[ENV_ORACLE_PORT] = str(oracle_port)
    return tuner_id


def wait_for_chief(oracle_ip: str, oracle_port: int, timeout: float) -> None:
    """Return once the chief's gRPC server accepts connections; raise
    `ChiefUnreachableError` after `timeout` seconds otherwise."""
    import grpc

    address = f"{oracle_ip}:{oracle_port}"
    channel = grpc.insecure_channel(address)
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        raise ChiefUnreachableError(
            f"no tuning chief answered at {address} within {timeout:g} s. Start the chief first "
            f"(bnnzoo tune --distributed chief --oracle-ip {oracle_ip} --oracle-port {oracle_port} ...) "
            "or fix --oracle-ip/--oracle-port; raise --connect-timeout if it is still starting."
        ) from None
    finally:
        channel.close()


def set_rpc_timeout(seconds: float) -> None:
    """Bound every worker->chief call (keras-tuner's default is an hour)."""
    from keras_tuner.src.distribute import oracle_client

    oracle_client.TIMEOUT = float(seconds)


class _ChiefServicer(oracle_chief.OracleServicer):
    """keras-tuner's servicer plus per-worker contact times and trial owners."""

    def __init__(self, oracle, on_trial_end: Callable | None = None):
        super().__init__(oracle)
        self.on_trial_end = on_trial_end
        self.last_contact: dict[str, float] = {}  # tuner id -> time.monotonic()
        self.stopped: set[str] = set()  # workers told that the search is over
        self.dropped: set[str] = set()  # workers given up as lost
        self.trial_owner: dict[str, str] = {}  # trial id -> tuner id that finished it

    def _touch(self, tuner_id: str | None) -> None:
        if tuner_id:
            self.last_contact[tuner_id] = time.monotonic()
            self.dropped.discard(tuner_id)

    def _owner(self, trial_id: str) -> str | None:
        for tuner_id, trial in list(self.oracle.ongoing_trials.items()):
            if trial.trial_id == trial_id:
                return tuner_id
        return None

    def CreateTrial(self, request, context):
        from keras_tuner.src import protos

        self._touch(request.tuner_id)
        trial = _create_trial(self.oracle, request.tuner_id, self)
        return protos.get_service().CreateTrialResponse(trial=trial.to_proto())

    def GetTrial(self, request, context):  # also the workers' heartbeat
        self._touch(self._owner(request.trial_id))
        return super().GetTrial(request, context)

    def UpdateTrial(self, request, context):
        self._touch(self._owner(request.trial_id))
        return super().UpdateTrial(request, context)

    def EndTrial(self, request, context):
        trial_id = request.trial.trial_id
        owner = self._owner(trial_id)
        self._touch(owner)
        if owner:
            self.trial_owner[trial_id] = owner
        response = super().EndTrial(request, context)
        if self.on_trial_end is not None:
            self.on_trial_end(self.oracle.get_trial(trial_id), owner)
        return response


@synchronized
def _create_trial(oracle, tuner_id, servicer: _ChiefServicer):
    trial = oracle.create_trial(tuner_id)
    if trial.status != _trial_module.TrialStatus.STOPPED:
        return trial
    if any(tid != tuner_id for tid in oracle.ongoing_trials):
        # Another worker's trial may still come back (if that worker is lost):
        # keep this one polling instead of letting it exit.
        return _trial_module.Trial(oracle.hyperparameters.copy(), trial_id="",
                                   status=_trial_module.TrialStatus.IDLE)
    servicer.stopped.add(tuner_id)
    return trial


@synchronized
def _drop_silent_workers(oracle, servicer: _ChiefServicer, worker_timeout: float, say) -> None:
    now = time.monotonic()
    for tuner_id, seen in list(servicer.last_contact.items()):
        if tuner_id in servicer.stopped or tuner_id in servicer.dropped or now - seen <= worker_timeout:
            continue
        servicer.dropped.add(tuner_id)
        oracle.tuner_ids.discard(tuner_id)
        trial = oracle.ongoing_trials.pop(tuner_id, None)
        if trial is not None:
            oracle._retry_queue.append(trial.trial_id)
            oracle.save()
        say(f"[tune] chief: no word from {tuner_id} for {now - seen:.0f} s, dropped it"
            + (f"; trial {trial.trial_id} goes back to the queue" if trial is not None else ""))


@synchronized
def _search_done(oracle, servicer: _ChiefServicer) -> bool:
    if not servicer.stopped or oracle.ongoing_trials or oracle._retry_queue:
        return False
    return all(t in servicer.stopped or t in servicer.dropped for t in servicer.last_contact)


def serve_oracle(oracle, *, worker_timeout: float = 120.0, poll_seconds: float = 0.5,
                 on_trial_end: Callable | None = None, say: Callable[[str], None] = print):
    """Run `oracle` as the chief's gRPC server until the search is done.

    Listens at `KERASTUNER_ORACLE_IP:KERASTUNER_ORACLE_PORT`. Returns the
    servicer (its `trial_owner` says which worker finished each trial).
    """
    import grpc
    from keras_tuner.src import protos

    if not worker_timeout >= MIN_WORKER_TIMEOUT:
        raise ValueError(f"worker_timeout must be >= {MIN_WORKER_TIMEOUT:g} seconds (workers send a "
                         f"heartbeat every {HEARTBEAT_SECONDS:g} s), got {worker_timeout}")
    address = f"{os.environ[ENV_ORACLE_IP]}:{os.environ[ENV_ORACLE_PORT]}"
    servicer = _ChiefServicer(oracle, on_trial_end)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as err:
        raise RuntimeError(f"the tuning chief cannot listen on {address}: {err}") from None
    if not bound:
        raise RuntimeError(f"the tuning chief cannot listen on {address} (port in use?)")
    server.start()
    say(f"[tune] chief: oracle listening on {address}; start workers with "
        f"--distributed worker --oracle-ip {os.environ[ENV_ORACLE_IP]} --oracle-port "
        f"{os.environ[ENV_ORACLE_PORT]}")
    try:
        while True:
            time.sleep(poll_seconds)
            _drop_silent_workers(oracle, servicer, worker_timeout, say)
            if _search_done(oracle, servicer):
                break
    finally:
        server.stop(grace=1.0)
    oracle.save()
    return servicer
