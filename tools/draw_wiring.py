#!/usr/bin/env python3
"""Draw docs/wiring.png: the Raspberry Pi 40-pin header and the indicator's circuits (green LED,
red LED, active buzzer through an NPN stage, and the active-low variant), for the pins of a config
file's `gpio` section (systemd/maskdet.example.yaml by default).

    .venv/bin/python tools/draw_wiring.py [--config FILE] [--out docs/wiring.png]

Everything is drawn here with matplotlib; the pin table is the service's own
(`edge.service.indicator.HEADER`), so the drawing and the pin checks cannot disagree.
"""
import argparse
import io
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Circle, FancyBboxPatch, Polygon, Rectangle  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from edge.service.indicator import HEADER, PHYSICAL, bcm_of  # noqa: E402

LED_GROUND, BUZZER_GROUND, SUPPLY_5V, SUPPLY_3V3 = 9, 14, 2, 1
COLOURS = {"green": "#1a9641", "red": "#d7191c", "buzzer": "#e08a00", "GND": "#222222",
           "5V": "#c51b7d", "3V3": "#f46d43", "wire": "#333333", "muted": "#9a9a9a"}
R_LED, VF = 220, {"green": 2.1, "red": 2.0}


def read_gpio(path):
    """{role: (bcm, active_high)} of the config's gpio section (absent outputs left out)."""
    from edge.config import load_config

    gpio = load_config(path).gpio
    out = {}
    for role in ("green", "red", "buzzer"):
        pin = getattr(gpio, role)
        if pin is not None:
            out[role] = (bcm_of(pin.pin), pin.active_high)
    return out


# --- drawing primitives (schematic symbols, current flowing left to right or top to bottom) -----

def wire(ax, xs, ys, colour=COLOURS["wire"], style="-", lw=2.0):
    ax.plot(xs, ys, style, color=colour, lw=lw, solid_capstyle="round", zorder=2)


def dot(ax, x, y):
    ax.add_patch(Circle((x, y), 0.09, color=COLOURS["wire"], zorder=4))


def tag(ax, x, y, text, colour, ha="left", size=10):
    ax.text(x, y, text, ha=ha, va="center", fontsize=size, color="white", fontweight="bold", zorder=5,
            bbox=dict(boxstyle="round,pad=0.3", fc=colour, ec="none"))


def resistor(ax, x, y, value, vertical=False, dashed=False):
    """An IEC resistor (a box) 1.4 long from (x, y) along x (or down along y)."""
    ls = "--" if dashed else "-"
    if vertical:
        ax.add_patch(Rectangle((x - 0.22, y - 1.4), 0.44, 1.4, fill=False, lw=2, ls=ls, zorder=3))
        ax.text(x + 0.4, y - 0.7, value, ha="left", va="center", fontsize=10)
    else:
        ax.add_patch(Rectangle((x, y - 0.22), 1.4, 0.44, fill=False, lw=2, ls=ls, zorder=3))
        ax.text(x + 0.7, y + 0.45, value, ha="center", va="bottom", fontsize=10)


def diode(ax, x, y, colour, length=0.9, light=False, vertical=False, dashed=False):
    """A diode from anode at (x, y) to cathode `length` further right (or further up when
    vertical): triangle and bar; with light=True the two arrows of an LED."""
    ls = "--" if dashed else "-"
    if vertical:
        tri = [(x - 0.35, y), (x + 0.35, y), (x, y + length * 0.8)]
        ax.add_patch(Polygon(tri, closed=True, fc=colour if not dashed else "white", ec=COLOURS["wire"],
                             lw=1.5, ls=ls, zorder=3))
        wire(ax, [x - 0.35, x + 0.35], [y + length * 0.8] * 2, style=ls)
        return
    tri = [(x, y - 0.35), (x, y + 0.35), (x + length * 0.8, y)]
    ax.add_patch(Polygon(tri, closed=True, fc=colour, ec=COLOURS["wire"], lw=1.5, zorder=3))
    wire(ax, [x + length * 0.8] * 2, [y - 0.38, y + 0.38])
    if light:
        for dx in (0.15, 0.45):
            ax.annotate("", xy=(x + dx + 0.45, y + 0.95), xytext=(x + dx, y + 0.45),
                        arrowprops=dict(arrowstyle="->", color=colour, lw=1.5))


def ground(ax, x, y, label, colour=COLOURS["GND"]):
    wire(ax, [x, x], [y, y - 0.35])
    for i, half in enumerate((0.4, 0.26, 0.12)):
        ax.plot([x - half, x + half], [y - 0.35 - 0.15 * i] * 2, color=colour, lw=2, zorder=3)
    tag(ax, x + 0.6, y - 0.5, label, colour, size=9)


def npn(ax, x, y):
    """An NPN transistor whose base lead ends at (x, y); returns (collector, emitter) points."""
    ax.add_patch(Circle((x + 0.75, y), 0.75, fill=False, lw=1.5, zorder=3))
    wire(ax, [x, x + 0.45], [y, y])
    wire(ax, [x + 0.45, x + 0.45], [y - 0.4, y + 0.4], lw=3)
    collector = (x + 1.05, y + 1.2)
    emitter = (x + 1.05, y - 1.2)
    wire(ax, [x + 0.45, x + 1.05, x + 1.05], [y + 0.2, y + 0.6, collector[1]])
    wire(ax, [x + 0.45, x + 1.05, x + 1.05], [y - 0.2, y - 0.6, emitter[1]])
    ax.annotate("", xy=(x + 1.0, y - 0.57), xytext=(x + 0.6, y - 0.32),
                arrowprops=dict(arrowstyle="-|>", color=COLOURS["wire"], lw=1.5, mutation_scale=14))
    return collector, emitter


def buzzer(ax, x, y):
    """An active buzzer: + terminal at (x, y), - terminal at (x, y - 1.4)."""
    wire(ax, [x, x], [y, y - 0.3])
    ax.add_patch(Rectangle((x - 0.5, y - 1.1), 1.0, 0.8, fc="#fde0b6", ec=COLOURS["wire"], lw=1.5, zorder=3))
    ax.add_patch(Polygon([(x - 0.3, y - 0.3), (x + 0.3, y - 0.3), (x + 0.5, y + 0.05), (x - 0.5, y + 0.05)],
                         closed=True, fc="#fde0b6", ec=COLOURS["wire"], lw=1.5, zorder=3))
    wire(ax, [x, x], [y - 1.1, y - 1.4])
    ax.text(x - 0.72, y - 0.25, "+", fontsize=13, fontweight="bold", ha="center", va="center")


# --- the header ---------------------------------------------------------------------------------

def draw_header(ax, used, x0=4.0, top=17.9, step=0.82):
    """The 40-pin header upright (pin 1 at the top left); returns {physical pin: (x, y)}."""
    where = {}
    ax.add_patch(FancyBboxPatch((x0 - 0.55, top - 19 * step - 0.55), 1.9, 19 * step + 1.1,
                                boxstyle="round,pad=0.05", fc="#2f2f2f", ec="none", zorder=1))
    for number, (name, _) in HEADER.items():
        row, col = (number - 1) // 2, (number - 1) % 2
        x, y = x0 + col * 0.8, top - row * step
        where[number] = (x, y)
        label = f"GPIO{name}" if isinstance(name, int) else name
        role = used.get(number)
        if role:
            face = COLOURS[role]
        elif name == "GND":
            face = "#000000"
        elif name in ("5V", "3V3"):
            face = COLOURS[name]
        else:
            face = "#d9b44a"  # gold: an unused pin
        ax.add_patch((Rectangle((x - 0.3, y - 0.3), 0.6, 0.6, fc=face, ec="white", lw=1.2, zorder=3)
                      if number == 1 else Circle((x, y), 0.3, fc=face, ec="white", lw=1.2, zorder=3)))
        ax.text(x, y, str(number), ha="center", va="center", fontsize=7.5, zorder=4,
                color="white" if face != "#d9b44a" else "black", fontweight="bold")
        side, ha = (x - 0.75, "right") if col == 0 else (x + 0.75, "left")
        if role:
            tag(ax, side, y, label, COLOURS[role], ha=ha, size=9)
        elif name in ("GND", "5V", "3V3"):
            ax.text(side, y, label, ha=ha, va="center", fontsize=9, fontweight="bold",
                    color=COLOURS[name] if name != "GND" else COLOURS["GND"])
        else:
            ax.text(side, y, label, ha=ha, va="center", fontsize=8, color=COLOURS["muted"])
    ax.text(x0 + 0.4, top + 0.75, "40-pin header (J8)\nupright, pin 1 at the top", ha="center",
            va="bottom", fontsize=10, fontweight="bold")
    ax.text(x0 + 0.4, top - 19 * step - 0.8, "pin 1 = the square pad, at the end\naway from the USB "
            "ports; even pins\nrun along the board's edge", ha="center", va="top", fontsize=8.5,
            color="#444444")
    return where


# --- the circuits -------------------------------------------------------------------------------

def led_circuit(ax, x, y, role, bcm, active_high):
    colour = COLOURS[role]
    pin = PHYSICAL[bcm]
    current = (3.3 - VF[role]) / R_LED * 1000
    title = f"{role} LED: GPIO{bcm} (pin {pin}), active_high: {'true' if active_high else 'false'}"
    ax.text(x, y + 1.35, title, fontsize=11, fontweight="bold", color=colour)
    if active_high:  # the pin sources the current: GPIO -> R -> LED -> GND
        tag(ax, x, y, f"pin {pin} · GPIO{bcm}", colour)
        wire(ax, [x + 2.6, x + 3.6], [y, y])
        resistor(ax, x + 3.6, y, f"{R_LED} Ω")
        wire(ax, [x + 5.0, x + 6.4], [y, y])
        diode(ax, x + 6.4, y, colour, light=True)
        wire(ax, [x + 7.12, x + 9.6, x + 9.6], [y, y, y - 0.3])
        ground(ax, x + 9.6, y - 0.3, f"pin {LED_GROUND} · GND")
    else:  # the pin sinks the current: 3V3 -> LED -> R -> GPIO
        tag(ax, x, y, f"pin {SUPPLY_3V3} · 3V3", COLOURS["3V3"])
        wire(ax, [x + 2.1, x + 3.2], [y, y])
        diode(ax, x + 3.2, y, colour, light=True)
        wire(ax, [x + 3.92, x + 4.6], [y, y])
        resistor(ax, x + 4.6, y, f"{R_LED} Ω")
        wire(ax, [x + 6.0, x + 7.0], [y, y])
        tag(ax, x + 7.0, y, f"pin {pin} · GPIO{bcm}", colour)
    ax.text(x + 6.0, y - 0.62, "anode (long leg) → cathode (short leg, flat side)", fontsize=8.5,
            ha="center", va="top", color="#444444")
    ax.text(x, y - 1.45, f"(3.3 V − {VF[role]} V) / {R_LED} Ω ≈ {current:.1f} mA   (150-330 Ω: "
            f"{(3.3 - VF[role]) / 330 * 1000:.0f}-{(3.3 - VF[role]) / 150 * 1000:.0f} mA)",
            fontsize=9.5, va="top")


def buzzer_circuit(ax, x, y, bcm):
    colour = COLOURS["buzzer"]
    pin = PHYSICAL[bcm]
    ax.text(x, y + 2.4, f"active buzzer: GPIO{bcm} (pin {pin}) through an NPN stage",
            fontsize=11, fontweight="bold", color=colour)
    bx, by = x + 8.2, y + 0.9  # the buzzer's + terminal
    supply = by + 0.6
    tag(ax, bx - 0.5, supply, f"pin {SUPPLY_5V} · 5V", COLOURS["5V"], ha="right")
    wire(ax, [bx - 0.5, bx, bx], [supply, supply, by])
    buzzer(ax, bx, by)
    ax.text(bx - 0.95, by - 0.7, "active buzzer, 5 V\n(+ to 5 V, ~30 mA)", fontsize=9, va="center",
            ha="right")
    base_y = by - 3.4
    tag(ax, x, base_y, f"pin {pin} · GPIO{bcm}", colour)
    wire(ax, [x + 2.6, x + 3.2], [base_y, base_y])
    resistor(ax, x + 3.2, base_y, "1 kΩ")
    wire(ax, [x + 4.6, bx - 1.05], [base_y, base_y])
    collector, emitter = npn(ax, bx - 1.05, base_y)
    ax.text(bx + 0.9, base_y, "NPN: 2N2222 / BC337\ncollector up, emitter down\n(check the pinout)",
            fontsize=9, va="center")
    wire(ax, [bx, bx], [by - 1.4, collector[1]])
    wire(ax, [bx, bx], [emitter[1], emitter[1] - 0.4])
    ground(ax, bx, emitter[1] - 0.4, f"pin {BUZZER_GROUND} · GND")
    # optional parts, dashed: the base pull-down and the flyback diode
    node = x + 5.6
    dot(ax, node, base_y)
    wire(ax, [node, node], [base_y, base_y - 0.3], style="--", colour=COLOURS["muted"])
    resistor(ax, node, base_y - 0.3, "", vertical=True, dashed=True)
    ax.text(node - 0.4, base_y - 1.0, "10 kΩ\noptional", fontsize=9, ha="right", va="center",
            color="#555555")
    wire(ax, [node, node], [base_y - 1.7, base_y - 2.0], style="--", colour=COLOURS["muted"])
    ground(ax, node, base_y - 2.0, "GND", colour=COLOURS["muted"])
    fx, top, bottom = bx + 1.5, supply - 0.3, by - 1.75
    dot(ax, bx, top)
    dot(ax, bx, bottom)
    wire(ax, [bx, fx, fx], [top, top, by - 0.45], style="--", colour=COLOURS["muted"])
    diode(ax, fx, by - 1.17, "white", length=0.9, vertical=True, dashed=True)
    wire(ax, [fx, fx, bx], [by - 1.17, bottom, bottom], style="--", colour=COLOURS["muted"])
    ax.text(fx + 0.55, by - 0.75, "flyback diode 1N4148,\ncathode (bar) to 5 V: only\nfor a magnetic "
            "buzzer,\nnot needed for a piezo", fontsize=8.5, va="center", color="#555555")
    ax.text(x, base_y - 0.9, "base current:\n(3.3 V − 0.7 V) / 1 kΩ ≈ 2.6 mA;\nthe transistor "
            "switches the\nbuzzer's ~30 mA, more than\na GPIO pin may give", fontsize=9.5, va="top")


def draw(gpio, out_path):
    fig = plt.figure(figsize=(17, 10.6), dpi=100)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(0, 34)
    ax.set_ylim(0, 21.2)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.text(0.5, 20.75, "maskdet: wiring the entrance indicator to a Raspberry Pi", fontsize=16,
            fontweight="bold", va="center")
    ax.text(0.5, 20.1, "pins as in systemd/maskdet.example.yaml (gpio: green, red, buzzer); physical "
            "pin numbers in the circles, BCM names beside them; check with: maskdet test-indicator",
            fontsize=10.5, va="center", color="#333333")
    used = {PHYSICAL[bcm]: role for role, (bcm, _) in gpio.items()}
    used.update({LED_GROUND: "GND", BUZZER_GROUND: "GND"})
    if "buzzer" in gpio:
        used[SUPPLY_5V] = "5V"
    if any(not high for role, (_, high) in gpio.items() if role != "buzzer"):
        used[SUPPLY_3V3] = "3V3"
    draw_header(ax, used, x0=4.2)
    y = 17.2
    for role in ("green", "red"):
        if role in gpio:
            led_circuit(ax, 10.2, y, role, *gpio[role])
            y -= 4.2
    if "buzzer" in gpio:
        bcm, active_high = gpio["buzzer"]
        if not active_high:
            raise SystemExit("draw_wiring.py draws an NPN stage, i.e. an active_high buzzer")
        buzzer_circuit(ax, 10.2, 5.7, bcm)
    # the active-low variant, for reference, on the right
    rx = 24.6
    ax.text(rx, 18.5, "active_high: false (the pin sinks the current)", fontsize=11,
            fontweight="bold", color="#444444")
    tag(ax, rx, 17.2, f"pin {SUPPLY_3V3} · 3V3", COLOURS["3V3"])
    wire(ax, [rx + 2.1, rx + 2.8], [17.2, 17.2])
    diode(ax, rx + 2.8, 17.2, COLOURS["red"], light=True)
    wire(ax, [rx + 3.52, rx + 4.0], [17.2, 17.2])
    resistor(ax, rx + 4.0, 17.2, f"{R_LED} Ω")
    wire(ax, [rx + 5.4, rx + 6.0], [17.2, 17.2])
    tag(ax, rx + 6.0, 17.2, "pin 29 · GPIO5", "#7b3294")
    ax.text(rx, 16.3, "LED anode to 3.3 V (never 5 V), cathode through the\nresistor to the pin: pin "
            "low = LED on, pin high = off.\nAlso for relay boards that switch on a low input.\n"
            "GPIO0-8 are pulled up at power-on (`pinctrl get`\nshows the pulls), so an active-low "
            "output there\nstays off until maskdet starts.", fontsize=9.5, va="top")
    notes = (
        "Resistor for an LED on a 3.3 V GPIO\n"
        "R = (3.3 V − Vf) / I,  I = 5-10 mA\n"
        "  red    Vf ≈ 2.0 V → 130-260 Ω\n"
        "  green  Vf ≈ 2.1-3.0 V → 30-240 Ω\n"
        "220 Ω for both: red 5.9 mA, green 5.5 mA\n"
        "(a 3.0 V green gets ~1.4 mA: still visible)\n"
        "\n"
        "Limits of the Pi's GPIO\n"
        "  ≤ 16 mA per pin (8 mA drive by default)\n"
        "  ≤ 50 mA for all GPIO pins together\n"
        "  here: 5.9 + 5.5 + 2.6 ≈ 14 mA\n"
        "\n"
        "GPIO pins are 3.3 V only: never 5 V into a pin"
    )
    ax.text(rx, 12.4, notes, fontsize=10, va="top", family="DejaVu Sans Mono",
            bbox=dict(boxstyle="round,pad=0.6", fc="#f4f4f4", ec="#bbbbbb"))
    check = (
        "Check after wiring\n"
        "  sudo systemctl stop maskdet\n"
        "  sudo /opt/maskdet/venv/bin/maskdet test-indicator\n"
        "  sudo systemctl start maskdet\n"
        "green 2 s, red 2 s, then the beeps; all off at the end"
    )
    ax.text(rx, 4.2, check, fontsize=10, va="top", family="DejaVu Sans Mono",
            bbox=dict(boxstyle="round,pad=0.6", fc="#eef6ee", ec="#9bc59b"))
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=100, format="png")
    plt.close(fig)
    # a 256-colour palette keeps the anti-aliased lines and text and makes the file a third the size
    from PIL import Image

    Image.open(buffer).convert("RGB").quantize(256).save(out_path, optimize=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=os.path.join(REPO, "systemd", "maskdet.example.yaml"),
                        help="config file whose gpio section is drawn")
    parser.add_argument("--out", default=os.path.join(REPO, "docs", "wiring.png"), help="PNG to write")
    args = parser.parse_args(argv)
    gpio = read_gpio(args.config)
    if not gpio:
        raise SystemExit(f"{args.config}: no gpio pins configured, nothing to draw")
    draw(gpio, args.out)
    print(f"wrote {args.out} ({os.path.getsize(args.out) // 1024} KB) for "
          + ", ".join(f"{role} GPIO{bcm} (pin {PHYSICAL[bcm]})" for role, (bcm, _) in gpio.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
