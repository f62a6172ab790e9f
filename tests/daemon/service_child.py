"""`maskdet run` in a child process, as the command line runs it, but with gpiozero's MockFactory
for the pins, so that a test can send the child real signals and still see the lights: at exit
it prints one JSON line, {"status": exit status, "pins": {pin: {"state", "ever_on"}}}.

    python -m tests.daemon.service_child CONFIG
"""
import json
import logging
import sys

from gpiozero.pins.mock import MockFactory

from edge.errors import run_reporting
from edge.service.run import run_service

PINS = (17, 27, 22)  # green, red, buzzer in the tests' configs


def main(config_path):
    """Run the service; print the pins' states; return its exit status."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    factory = MockFactory()
    status = run_reporting("maskdet", lambda: run_service(config_path, pin_factory=factory))
    pins = {pin: {"state": bool(factory.pin(pin).state),
                  "ever_on": any(s.state for s in factory.pin(pin).states)} for pin in PINS}
    print(json.dumps({"status": status, "pins": pins}), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
