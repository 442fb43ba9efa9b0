"""``fast_init`` builds the same frozen instances as the dataclass's own ``__init__``."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import InitVar, dataclass, field
from datetime import UTC, datetime

import pytest

from devices.frozen import fast_init
from devices.models import Reading
from ingest.mqtt.delivery import Delivery
from ingest.pipeline import Envelope


def _pair() -> tuple[type, type]:
    """The same frozen slots dataclass twice: as dataclasses makes it, and with fast_init."""

    def make() -> type:
        @dataclass(frozen=True, slots=True)
        class Sample:
            a: int
            b: str = "b"
            c: list[int] = field(default_factory=list)
            d: float = 0.0

            def __post_init__(self) -> None:
                if type(self.d) is not float:
                    object.__setattr__(self, "d", float(self.d))

        return Sample

    return make(), fast_init(make())


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((1,), {}), ((1, "x"), {}), ((1, "x", [2], 3), {}), ((), {"a": 1, "d": 2}), ((1,), {"c": [5]})],
)
def test_builds_what_the_dataclass_builds(args: tuple[object, ...], kwargs: dict[str, object]) -> None:
    plain, fast = _pair()
    want, got = plain(*args, **kwargs), fast(*args, **kwargs)
    assert dataclasses.asdict(got) == dataclasses.asdict(want)
    assert type(got.d) is float  # __post_init__ ran


def test_default_factories_give_each_instance_its_own() -> None:
    _, fast = _pair()
    first, second = fast(1), fast(2)
    first.c.append(1)
    assert second.c == []


def test_the_signature_and_its_errors_are_the_dataclass_ones() -> None:
    plain, fast = _pair()
    assert list(inspect.signature(fast).parameters) == list(inspect.signature(plain).parameters)
    for bad_args, bad_kwargs in [
        ((), {}),
        ((1, "x", [], 0.0, "extra"), {}),
        ((1,), {"e": 1}),
        ((1,), {"a": 2}),
    ]:
        with pytest.raises(TypeError):
            plain(*bad_args, **bad_kwargs)
        with pytest.raises(TypeError):
            fast(*bad_args, **bad_kwargs)


def test_instances_stay_frozen_comparable_and_hashable() -> None:
    at = datetime(2026, 1, 2, tzinfo=UTC)
    reading = Reading("d1", "heart_rate", 70, "/min", at, 70, "/min")
    with pytest.raises(dataclasses.FrozenInstanceError):
        reading.value = 1.0  # type: ignore[misc]
    same = Reading(
        device_id="d1", metric="heart_rate", value=70.0, unit="/min", measured_at=at,
        original_value=70.0, original_unit="/min",
    )  # fmt: skip
    assert reading == same and hash(reading) == hash(same)
    assert type(reading.value) is float and type(reading.original_value) is float
    assert dataclasses.replace(reading, value=71).value == 71.0


def test_the_hot_path_classes_use_it() -> None:
    for cls in (Reading, Envelope, Delivery):
        assert any(name.startswith("_fi_set_") for name in cls.__init__.__code__.co_names), cls


@pytest.mark.parametrize("kind", ["not frozen", "no slots", "keyword only", "init var", "not in init"])
def test_refuses_what_it_would_not_reproduce(kind: str) -> None:
    if kind == "not frozen":

        @dataclass(slots=True)
        class A:
            a: int

        cls: type = A
    elif kind == "no slots":

        @dataclass(frozen=True)
        class B:
            a: int

        cls = B
    elif kind == "keyword only":

        @dataclass(frozen=True, slots=True, kw_only=True)
        class C:
            a: int

        cls = C
    elif kind == "init var":

        @dataclass(frozen=True, slots=True)
        class D:
            a: int
            b: InitVar[int] = 0

        cls = D
    else:

        @dataclass(frozen=True, slots=True)
        class E:
            a: int
            b: int = field(default=0, init=False)

        cls = E
    with pytest.raises(TypeError):
        fast_init(cls)
