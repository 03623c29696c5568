"""Positions with one part per shard, the gateway's whole positions, and seams across shards."""

from __future__ import annotations

import orjson
import pytest

from oddstream.gateway.frames import Frame
from oddstream.gateway.positions import Part, Position, RoomPositions
from oddstream.gateway.resume import Replay, Seam, seam_of, through_seams
from oddstream.shared.protocol import ProtocolError
from oddstream.shared.rooms import parse_room

ROOM = "odds_updates.0123456789abcdef"
TAG = ROOM[-8:]


def part(epoch: str, ms: int, seq: int = 0) -> str:
    return f"{epoch}:{TAG}:{ms}-{seq}"


def frame(shard_part: str, event_id: str = "0:1-0", rooms: tuple[str, ...] = (ROOM,)) -> bytes:
    """A data frame as the commit script writes it: each room's part of its own shard."""
    positions = ",".join(f'"{r}":"{shard_part}"' for r in rooms)
    return (
        b'{"type":"odds_update","status":"success","event_id":"' + event_id.encode()
        + b'","timestamp":"2026-01-01T00:00:00.000Z","rooms":' + orjson.dumps(list(rooms))
        + b',"positions":{' + positions.encode() + b'},"data":{"game_id":"G1"}}'
    )  # fmt: skip


def positions_of(payload: bytes) -> dict[str, str]:
    loaded: dict[str, str] = orjson.loads(payload)["positions"]
    return loaded


def test_a_position_parses_and_renders_back_with_one_part_or_several() -> None:
    for text in (part("e0", 5), f"{part('e0', 5)},{part('e1', 0, 7)},{part('e2', 9, 1)}"):
        assert Position.parse(text).render() == text
    several = Position.parse(f"{part('e0', 5)},-,{part('e2', 9, 1)}")
    assert several.parts == (Part("e0", (5, 0)), None, Part("e2", (9, 1)))


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "-",  # no part names the room
        "garbage",
        f"{part('e0', 5)},e1:ffffffff:1-0",  # parts of two rooms
        f"{part('e0', 5)},,{part('e2', 1)}",
        f"{part('e0', 5)};{part('e1', 1)}",
    ],
)
def test_a_malformed_position_is_an_invalid_position_error(bad: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        Position.parse(bad)
    assert caught.value.code.value == "invalid_position"


def test_merging_keeps_the_later_part_of_each_shard_and_a_new_epochs() -> None:
    ours = Position.parse(f"{part('e0', 5)},{part('e1', 9)},-")
    theirs = Position.parse(f"{part('e0', 7)},{part('e1', 3)},{part('e2', 1)}")
    assert ours.merged(theirs).render() == f"{part('e0', 7)},{part('e1', 9)},{part('e2', 1)}"
    reset = Position.parse(f"{part('e0', 5)},{part('f1', 2)},-")  # shard 1 lost its data
    assert ours.merged(reset).parts[1] == Part("f1", (2, 0))


def test_the_gateway_writes_each_rooms_whole_position_into_a_shards_frame() -> None:
    positions = RoomPositions(3)
    # Before any catch-up told it where the room is, the other shards' parts are unknown.
    early = positions_of(positions.stamp(1, frame(part("e1", 10)), [ROOM]))
    assert early == {ROOM: f"-,{part('e1', 10)},-"}
    # A catch-up's position fills what is unknown, and never lowers a known part.
    positions.seed(ROOM, Position.parse(f"{part('e0', 4)},{part('e1', 99)},{part('e2', 6)}"))
    later = positions_of(positions.stamp(0, frame(part("e0", 5)), [ROOM]))
    assert later == {ROOM: f"{part('e0', 5)},{part('e1', 10)},{part('e2', 6)}"}
    # A frame older than what the room's part is (one on its way during a catch-up) keeps it.
    older = positions_of(positions.stamp(0, frame(part("e0", 3)), [ROOM]))
    assert older[ROOM].split(",")[0] == part("e0", 5)
    # Rooms with no member here keep the worker's part; a frame without positions is as is.
    other = "odds_updates.fedcba9876543210"
    mixed = positions_of(positions.stamp(2, frame(part("e2", 8), rooms=(ROOM, other)), [ROOM]))
    assert mixed == {
        ROOM: f"{part('e0', 5)},{part('e1', 10)},{part('e2', 8)}",
        other: part("e2", 8),
    }
    plain = b'{"type":"system_alert","status":"success","data":{}}'
    assert positions.stamp(0, plain, [ROOM]) == plain
    # A room that left starts again from its next catch-up.
    positions.forget(ROOM)
    assert positions.position(ROOM) is None


def test_a_seam_over_shards_ends_once_every_shards_live_frames_passed_it() -> None:
    spec = parse_room("odds_updates", {})
    room = spec.room_id
    tag = room[-8:]

    def p(epoch: str, ms: int) -> str:
        return f"{epoch}:{tag}:{ms}-0"

    catch_up = f"{p('e0', 10)},{p('e1', 20)},{p('e2', 30)}"
    replay = Replay(catch_up, True, event_ids={b"0:9-0"}, tail=[(10, 0), (20, 0), (30, 0)])
    seams: dict[str, Seam] = {room: seam_of(spec, replay, None, now=0.0)}

    def live(shard: int, whole: str, event_id: str) -> Frame:
        payload = (
            b'{"type":"odds_update","status":"success","event_id":"' + event_id.encode()
            + b'","rooms":["' + room.encode() + b'"],"positions":{"' + room.encode() + b'":"'
            + whole.encode() + b'"},"data":{}}'
        )  # fmt: skip
        return Frame(payload, shard)

    # Replayed already (shard 0, at the tail): dropped. Past shard 1's tail: kept, and its
    # lagging part of shard 0 (this gateway's, behind the catch-up) raised to the catch-up's.
    kept = through_seams(
        [
            (b"", live(0, f"{p('e0', 10)},{p('e1', 20)},{p('e2', 30)}", "0:9-0")),
            (b"", live(1, f"{p('e0', 8)},{p('e1', 21)},{p('e2', 30)}", "1:1-0")),
        ],
        seams,
        now=1.0,
    )
    assert len(kept) == 1
    assert positions_of(kept[0][1].payload)[room] == f"{p('e0', 10)},{p('e1', 21)},{p('e2', 30)}"
    assert kept[0][1].shard == 1
    assert room in seams and seams[room].passed == {1}  # shards 0 and 2 not passed yet
    through_seams([(b"", live(0, f"{p('e0', 11)},{p('e1', 21)},{p('e2', 30)}", "0:2-0"))],
                  seams, now=1.0)  # fmt: skip
    assert seams[room].passed == {0, 1}
    through_seams([(b"", live(2, f"{p('e0', 11)},{p('e1', 21)},{p('e2', 31)}", "2:2-0"))],
                  seams, now=1.0)  # fmt: skip
    assert room not in seams
