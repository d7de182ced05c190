"""Drop guarantees: with the worker held, exactly what the policy keeps is delivered.

For any sequence of records, any capacity and any policy: the events the policy
keeps are delivered once the worker is released, in order, each once; every other
event was reported dropped with the right reason; events with no action and
invalid events never reach the transport and never take buffer space.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from hypothesis import given, strategies as st

from auditkit import DropReason, Event, Policy

from ._guarantee_harness import (
    BufferedRig,
    DropModel,
    InMemoryRig,
    RigFactory,
    Spec,
    check_stats,
    expected_stats,
    make_event,
    seq_of,
    spec_lists,
)

RIGS = [
    pytest.param(InMemoryRig, id="in_memory"),
    pytest.param(BufferedRig, id="buffered"),
]


def drop_property(make_rig: RigFactory) -> Callable[[], None]:
    """The drop property against recorders that ``make_rig`` builds."""

    @given(
        capacity=st.integers(1, 5),
        policy=st.sampled_from(list(Policy)),
        records=spec_lists(),
        batch_size=st.integers(1, 4),
    )
    def prop(
        capacity: int, policy: Policy, records: list[Spec], batch_size: int
    ) -> None:
        drops: list[tuple[int, DropReason]] = []
        guard = threading.Lock()

        def on_drop(event: Event, reason: DropReason) -> None:
            with guard:
                drops.append((seq_of(event), reason))

        rig = make_rig(
            capacity=capacity, policy=policy, on_drop=on_drop, batch_size=batch_size
        )
        try:
            rig.hold()
            model = DropModel(capacity, policy)
            for seq, spec in enumerate(records):
                # timeout=0: under BLOCK a full buffer gives up at once.
                got = rig.recorder.record(make_event(seq, spec), timeout=0)
                want = model.record(seq, spec)
                assert got is want, f"record #{seq} ({spec.kind}): {got} != {want}"
            check_stats(rig.stats(), expected_stats(model, rig, settled=False))

            rig.release()
            assert rig.delivered() == list(model.buffer), "wrong events delivered"
            with guard:
                assert drops == list(model.dropped.items()), "wrong drops reported"
            sent = [seq_of(wire) for wire in rig.sent()]
            kinds = [records[seq].kind if seq >= 0 else "untagged" for seq in sent]
            assert set(kinds) <= {"valid"}, (
                "an event with no action or invalid content reached the transport"
            )
            check_stats(rig.stats(), expected_stats(model, rig, settled=True))
        finally:
            rig.dispose()

    return prop


@pytest.mark.parametrize("make_rig", RIGS)
def test_exactly_the_events_the_policy_keeps_are_delivered_in_order(
    make_rig: RigFactory,
) -> None:
    drop_property(make_rig)()
