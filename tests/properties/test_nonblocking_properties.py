"""Non-blocking guarantees: recording never waits on the transport or the worker.

The transport is parked inside send() (or fails, raises, or is slow) while a
thread records under a non-blocking policy. A profile hook on that thread notes
any call into a waiting primitive, ``arecord()`` is driven by hand and must finish
without suspending, and the transport checks that the worker holds none of the
recorder's locks during I/O. No wall-clock threshold is involved, except a
generous bound that only a deadlock reaches. ``flush`` and ``close`` must come
back within their timeouts while the transport hangs.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, strategies as st

from auditkit import Outcome, Policy, SendResult

from ._guarantee_harness import (
    RETURN_BOUND,
    BufferedRig,
    DropModel,
    InMemoryRig,
    Rig,
    RigFactory,
    Spec,
    WaitDetector,
    drive_without_suspending,
    make_event,
    probe_locks,
    run_in_thread,
    spec_lists,
)

RIGS = [
    pytest.param(InMemoryRig, id="in_memory"),
    pytest.param(BufferedRig, id="buffered"),
]
NON_BLOCKING = [Policy.DROP_NEWEST, Policy.DROP_OLDEST]
#: How the transport misbehaves while the records happen.
MODES = ["hang", "slow", "fail", "retry", "raise"]


def _set_mode(rig: Rig, mode: str) -> None:
    transport = rig.transport
    if transport is None:
        return
    transport.probe = lambda: probe_locks(rig.recorder)
    if mode in ("hang", "slow"):
        rig.hold()
        return
    answers: dict[str, SendResult | BaseException] = {
        "fail": SendResult.failed("refused"),
        "retry": SendResult.retry("busy", retry_after=0.001),
        "raise": OSError("connection reset"),
    }
    transport.default = answers[mode]
    transport.open()


def nonblocking_property(make_rig: RigFactory) -> Callable[[], None]:
    """The non-blocking property against recorders that ``make_rig`` builds."""

    @given(
        capacity=st.integers(1, 5),
        policy=st.sampled_from(NON_BLOCKING),
        mode=st.sampled_from(MODES),
        records=spec_lists(),
        use_async=st.lists(st.booleans(), max_size=22),
        release_at=st.integers(0, 20),
    )
    def prop(
        capacity: int,
        policy: Policy,
        mode: str,
        records: list[Spec],
        use_async: list[bool],
        release_at: int,
    ) -> None:
        rig = make_rig(capacity=capacity, policy=policy, batch_size=2)
        try:
            _set_mode(rig, mode)
            transport = rig.transport
            model = DropModel(capacity, policy)

            def record_all() -> tuple[list[Outcome], list[str]]:
                outcomes: list[Outcome] = []
                with WaitDetector() as detector:
                    for seq, spec in enumerate(records):
                        if mode == "slow" and seq == release_at and transport:
                            transport.open()
                        event = make_event(seq, spec)
                        if seq < len(use_async) and use_async[seq]:
                            coro = rig.recorder.arecord(event)
                            outcomes.append(drive_without_suspending(coro))
                        else:
                            outcomes.append(rig.recorder.record(event))
                return outcomes, detector.waits

            finished, result = run_in_thread(record_all, RETURN_BOUND)
            assert finished, "record() blocked while the transport misbehaved"
            outcomes, waits = result
            assert waits == [], f"record() waited: {waits}"
            if mode == "hang" or transport is None:
                want = [model.record(seq, spec) for seq, spec in enumerate(records)]
                assert outcomes == want
            if transport is not None:
                with transport.cond:
                    assert transport.violations == [], transport.violations
        finally:
            rig.dispose()

    return prop


def timeouts_property(
    make_rig: RigFactory, bound: float = RETURN_BOUND
) -> Callable[[], None]:
    """``flush`` and ``close`` return within their timeouts while sends hang."""

    @given(
        records=spec_lists(max_size=8),
        flush_timeout=st.floats(0, 0.05),
        close_timeout=st.floats(0, 0.05),
    )
    def prop(records: list[Spec], flush_timeout: float, close_timeout: float) -> None:
        rig = make_rig(capacity=4, policy=Policy.DROP_NEWEST)
        try:
            rig.hold()

            def record_all() -> None:
                for seq, spec in enumerate(records):
                    rig.recorder.record(make_event(seq, spec))

            finished, _ = run_in_thread(record_all, bound)
            assert finished, "record() blocked while send() hung"
            hangs = rig.transport is not None

            finished, flushed = run_in_thread(
                lambda: rig.recorder.flush(timeout=flush_timeout), bound
            )
            assert finished, "flush() did not honour its timeout"
            assert flushed is not hangs, "flush() reported the wrong result"
            finished, closed = run_in_thread(
                lambda: rig.recorder.close(timeout=close_timeout), bound
            )
            assert finished, "close() did not honour its timeout"
            assert closed is not hangs, "close() reported the wrong result"
            assert rig.recorder.record(make_event(99, Spec("valid"))) is Outcome.CLOSED
        finally:
            rig.dispose()

    return prop


@pytest.mark.parametrize("make_rig", RIGS)
def test_record_never_waits_on_the_transport_or_the_worker(
    make_rig: RigFactory,
) -> None:
    nonblocking_property(make_rig)()


@pytest.mark.parametrize("make_rig", RIGS)
def test_flush_and_close_honour_their_timeouts_while_the_transport_hangs(
    make_rig: RigFactory,
) -> None:
    timeouts_property(make_rig)()
