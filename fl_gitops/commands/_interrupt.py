"""Ctrl-C ends a command once, with exit 130, never as a death by SIGINT; SIGTERM, where
a command asks for it, once, with 143.

Every command runs inside :func:`interrupt_once` (``cli.main``): found first in
``simulate``, whose interpreter takes seconds to finalize with torch loaded, but both
causes below reach any command.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

__all__ = ["interrupt_once", "terminate_once"]


@contextlib.contextmanager
def interrupt_once() -> Iterator[None]:
    """Within the block, the first Ctrl-C raises ``KeyboardInterrupt``; every later one,
    to the end of the process, is ignored; and the interpreter is kept from killing the
    process by SIGINT once ``cli.main`` has answered "interrupted" with 130.

    Two ways an interrupted run used to die by SIGINT (-2 to Python's subprocess) after
    printing "interrupted":

    - A second SIGINT (a user pressing Ctrl-C again, a terminal's signal to the process
      group after a direct one, ``timeout -s INT``, which signals both the command and
      its group). Finalizing with torch loaded takes 1.5 to 2.5 s after "interrupted",
      and once CPython has run its exit handlers it puts SIGINT back to the system
      default. An ignored SIGINT stays ignored through finalization.
    - One SIGINT that landed in code compiled from a string (see
      :func:`_forget_unhandled_interrupt`), under ``python -m``.

    A run that is not interrupted gets its previous handler back; where SIGINT was
    ignored already (a shell's background job), it stays so.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous == signal.SIG_IGN:
        yield
        return
    interrupted = False

    def on_sigint(signum: int, frame: object) -> None:
        nonlocal interrupted
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # before anything can raise
        interrupted = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    except KeyboardInterrupt:
        _forget_unhandled_interrupt()  # cli.main handles it: exit 130
        raise
    finally:
        if not interrupted:
            signal.signal(signal.SIGINT, previous)


def _forget_unhandled_interrupt() -> None:
    """Clear CPython's note that a ``KeyboardInterrupt`` went unhandled.

    CPython 3.11 (``run_eval_code_obj`` in Python/pythonrun.c) notes an interrupt that
    escapes code compiled from a string (``exec``/``eval`` of a string, which
    dataclasses and namedtuple run for every class they make: thousands while torch
    imports) as unhandled, and does not clear the note when the interrupt is caught
    further up. Under ``python -m`` (Modules/main.c's ``Py_RunMain``) the process then
    kills itself by SIGINT after finalizing, whatever exit code it chose; strace shows
    the ``kill(self, SIGINT)`` about a second after the one SIGINT received. That same
    function clears the note each time it starts, so running one string clears it.
    """
    exec("pass")


@contextlib.contextmanager
def terminate_once() -> Iterator[None]:
    """Within the block, SIGTERM raises ``SystemExit(143)`` in the main thread, once.

    It unwinds as Ctrl-C does (``finally`` blocks: a simulation's pool terminating its
    workers, a pass removing its private key copy), then the process exits with 143 and
    no traceback. A second SIGTERM while unwinding is ignored, so the clean-up is not cut
    short: Kubernetes sends one, but a user's ``kill`` twice, or ``timeout`` signalling a
    process and then its group, sends two.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # before anything can raise
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
