"""At most `limit` events per key in a sliding window, over a bounded number of keys (LRU)."""

from __future__ import annotations

from collections import OrderedDict, deque


class WindowLimiter:
    def __init__(self, limit: int, window_s: float = 60.0, max_keys: int = 10_000) -> None:
        self.limit, self.window_s, self.max_keys = limit, window_s, max_keys
        self.recent: OrderedDict[str, deque[float]] = OrderedDict()

    def allow(self, key: str, now: float) -> bool:
        window = self.recent.get(key)
        if window is None:
            window = self.recent[key] = deque()
            if len(self.recent) > self.max_keys:
                self.recent.popitem(last=False)
        self.recent.move_to_end(key)
        while window and now - window[0] >= self.window_s:
            window.popleft()
        if len(window) >= self.limit:
            return False
        window.append(now)
        return True
