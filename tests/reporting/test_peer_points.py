"""Peer charts' points built once per run for all member readers (sections.peer_points) are,
for every member, the points built for that member alone through visible() and its audience.

The world has members whose counts are small (hidden from peers, never from themselves) and a
peer group, so every branch is taken: the member's point relabelled, added back, or absent.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from qicollab.reporting import sections
from qicollab.reporting.charts.peer_funnel import funnel_point
from qicollab.reporting.privacy import Audience


def _builders(measure, run):
    summary = run.summary(measure.id)
    builders = {"caterpillar": sections._caterpillar_point}
    if summary is not None and summary.payload.funnel is not None:
        stored = summary.payload.funnel
        builders["funnel"] = lambda result, label, own: funnel_point(
            measure, stored, label, result, own
        )
    return builders


def _direct(run, measure, audience, member_id, group, build):
    """The reference: every result the audience may see, labelled through it."""
    member_ids = group.member_ids if group is not None else None
    shown, hidden = sections.visible(
        run, measure, audience, run.results_for(measure.id, member_ids)
    )
    points = [
        build(r, sections._chart_label(run, audience, r.member_id), r.member_id == member_id)
        for r in shown
    ]
    return [p for p in points if p is not None], hidden


def test_a_member_sees_every_other_member_as_the_blinded_summary_does(run_data):
    summary_reader = Audience.every_member(run_data.run.min_cell_size)
    for reader_id in run_data.members:
        audience = Audience.member(reader_id, run_data.run.min_cell_size)
        assert audience.as_peers_see() == summary_reader
        for measure in run_data.measures:
            suppressed = run_data.suppressed(measure)
            for other in run_data.members.values():
                if other.id == reader_id:
                    continue
                assert audience.hides(other.id, suppressed) == summary_reader.hides(
                    other.id, suppressed
                )
                assert audience.short_label(other, other.code) == summary_reader.short_label(
                    other, other.code
                )
    coordinator = Audience.coordinator(run_data.run.min_cell_size)
    assert coordinator.as_peers_see() is coordinator


def test_each_members_points_are_the_points_built_for_it_alone(run_data, rendered):
    run = replace(run_data, peer_points={})
    groups = [None, run.peer_group(rendered.world.group_code)]
    seen = {"relabelled": 0, "added back": 0}
    for measure in run.measures:
        suppressed = run.suppressed(measure)
        for kind, build in _builders(measure, run).items():
            for group in groups:
                for member_id in run.members:
                    audience = Audience.member(member_id, run.run.min_cell_size)
                    points, hidden = sections.peer_points(
                        run, measure, audience, member_id, group, kind=kind, build=build
                    )
                    assert (points, hidden) == _direct(
                        run, measure, audience, member_id, group, build
                    ), (measure.code, kind, group, member_id)
                    own = [p for p in points if p.own]
                    if own:
                        assert own[0].label == "You"
                        seen["added back" if member_id in suppressed else "relabelled"] += 1
    assert run.peer_points  # built once per kind, measure and scope
    assert seen["relabelled"]
    assert seen["added back"]


@pytest.mark.parametrize("reader", ["coordinator", "every_member"])
def test_other_readers_points_are_built_directly(run_data, reader):
    run = replace(run_data, peer_points={})
    audience = getattr(Audience, reader)(run.run.min_cell_size)
    member_id = next(iter(run.members)) if reader == "coordinator" else None
    for measure in run.measures:
        points, hidden = sections.peer_points(
            run,
            measure,
            audience,
            member_id,
            None,
            kind="caterpillar",
            build=sections._caterpillar_point,
        )
        assert (points, hidden) == _direct(
            run, measure, audience, member_id, None, sections._caterpillar_point
        )
    assert run.peer_points == {}
