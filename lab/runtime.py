"""Process settings the services share: the garbage collector's."""

import gc


def tune_gc() -> None:
    """Collect garbage less often, and never rescan what startup made.

    Every request allocates dozens of objects, nearly all freed by reference counting. With
    the default thresholds the cyclic collector runs every few requests and rescans every
    in-flight request's objects (what that costs: docs/performance.md, "Load generators").
    freeze() moves startup's objects out of its sight.
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
