"""One way to wait: until a condition holds or a deadline passes."""
import time


def now() -> float:
    return time.time()


def since(t0: float) -> float:
    return round(time.time() - t0, 1)


def seconds_until(timeout: float, condition, interval: float = 0.1):
    """Seconds (one decimal) until condition() was true, or None after timeout. A condition
    that raises counts as not yet true: a server on its way back refuses connections."""
    t0 = time.time()
    deadline = t0 + timeout
    while True:
        try:
            if condition():
                return round(time.time() - t0, 1)
        except Exception:
            pass
        if time.time() >= deadline:
            return None
        time.sleep(interval)


def fmt(seconds) -> str:
    """A measured duration for a report: '3.2' or 'never'."""
    return "never" if seconds is None else f"{seconds}"
