"""CPU time of processes and their descendants from /proc, for the per-invoke benchmarks
(cpu_per_invoke.py, cargo_lambda_per_invoke.py)."""
import os


def stat_of(pid):
    """The fields of /proc/PID/stat after the command name, or None once the process is gone."""
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def ticks(pid):
    """User + system CPU time of `pid`, in clock ticks (0 once it is gone)."""
    f = stat_of(pid)
    return int(f[11]) + int(f[12]) if f else 0


def descendants(root):
    """Every live process below `root`."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            f = stat_of(d)
            if f:
                children.setdefault(int(f[1]), []).append(int(d))
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out
