"""dbt-common's behaviour flags, made without reading the stack's source."""

from __future__ import annotations

import sys
from types import FrameType


def name_flag_sources_from_frames() -> None:
    """dbt-common names the module that declares a behaviour flag, when the flag does not
    say, with `inspect.stack()`: the source lines of every frame of the stack are read (and
    each frame's module looked up among all loaded ones) for every flag of every adapter dbt
    makes, once per invocation, whether the flag names its source or not: 8 % of the CPU
    samples of the tests of plans and runs (deep stacks), a few milliseconds of a command
    run from a shallow one. The same name, read from the frames alone: the first module on
    the stack other than dbt-common's flags."""
    from dbt_common import behavior_flags

    flags = behavior_flags.__name__

    def source() -> str:
        frame: FrameType | None = sys._getframe(1)
        while frame is not None:
            name = frame.f_globals.get("__name__")
            if isinstance(name, str) and name != flags:
                return name
            frame = frame.f_back
        return "Unknown"

    behavior_flags.BehaviorFlagRendered._default_source = staticmethod(source)  # type: ignore[method-assign]
