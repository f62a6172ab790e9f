"""One line about the machine benchmark numbers come from (for `maskdet bench` and the
monitor's load benchmark; light: the monitor may import it)."""
import os
import platform


def describe_machine():
    """The CPU's model name, its core count, the Python version and the system."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"
