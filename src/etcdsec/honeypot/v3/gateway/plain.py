"""The gateway's shortcut for the hot calls: Range and Put requests as plain attributes (read from a
simple JSON body without protobuf), and what one sensor remembers of them while serving.

`GatewayMemo` belongs to one sensor (it hangs on its `V3State`): two sensors in one process, with
different personas, never share or overwrite each other's entries.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class PlainRange:
    """A RangeRequest as plain attributes: the gateway's shortcut sets those a simple JSON body names
    (by proto name); every other field keeps its proto3 default, as in the message."""

    key = b""
    range_end = b""
    limit = 0
    revision = 0
    sort_order = 0
    sort_target = 0
    serializable = False
    keys_only = False
    count_only = False
    min_mod_revision = 0
    max_mod_revision = 0
    min_create_revision = 0
    max_create_revision = 0


class PlainPut:
    """A PutRequest as its plain fields (see PlainRange)."""

    key = b""
    value = b""
    lease = 0
    prev_kv = False
    ignore_value = False
    ignore_lease = False


@dataclass
class GatewayMemo:
    """Filled while serving; bounded (routes by max_routes, bodies by gateway.MAX_REMEMBERED)."""

    # Paths (without a query) this sensor's persona serves as a Range (True) or a Put (False).
    routes: dict[str, bool] = field(default_factory=dict)
    max_routes: int = 64  # 0: never learn a route (every call takes the general path)
    # Small bodies -> the plain request they read as: a pure function of the bytes, read once.
    ranges: dict[bytes, PlainRange] = field(default_factory=dict)
    puts: dict[bytes, PlainPut] = field(default_factory=dict)
