"""The Edge TPU as hardware, and who may open it: the devices (USB Corals by their ids in sysfs,
PCIe / M.2 Corals by /dev/apex_N), the udev rule that opens them to a group, and the service
user's groups (the Coral's, and video / gpio when the config uses a camera or pins). Each reads
files under a root folder standing for `/`."""
import contextlib
import glob
import os
import re
from dataclasses import dataclass
from typing import Optional

from edge.doctor.edgetpu_want import MISSING_STATUS, UNUSED, when_missing
from edge.doctor.findings import OK, WARN, Finding, at, read_text
from edge.doctor.installed_service import SERVICE_USER

# USB ids of the Coral USB Accelerator: before its firmware is loaded, and after.
USB_IDS = {("1a6e", "089a"): "no firmware yet: libedgetpu loads it when it first opens the device",
           ("18d1", "9302"): "firmware loaded"}
PCI_ID = ("0x1ac1", "0x089a")  # the Coral PCIe / M.2 module
RULE_DIRS = ("etc/udev/rules.d", "lib/udev/rules.d", "usr/lib/udev/rules.d")
USB_RULE_FIX = ("sudo systemd/install.sh --coral (writes the rule for 1a6e:089a and 18d1:9302, "
                "GROUP plugdev, MODE 0660), then unplug and replug the Coral")


# --------------------------------------------------------------------------- devices

@dataclass(frozen=True)
class Device:
    """An Edge TPU found on this machine."""

    kind: str          # usb | pcie
    where: str         # the sysfs name (2-1) or the device node (/dev/apex_0)
    ids: str = ""      # 18d1:9302
    note: str = ""
    speed_mbps: Optional[float] = None


def find_devices(root="/"):
    """(Edge TPU devices, PCIe Corals without a /dev/apex node) under `root`: USB ids from
    sys/bus/usb/devices/*/idVendor + idProduct, dev/apex_*, PCI ids from sys/bus/pci/devices."""
    devices = _usb_corals(root)
    nodes = sorted(glob.glob(at(root, "dev/apex_*")))
    devices += [Device("pcie", "/" + os.path.relpath(n, root)) for n in nodes]
    bare_pci = []
    for folder in sorted(glob.glob(at(root, "sys/bus/pci/devices/*"))):
        try:
            ids = tuple(read_text(os.path.join(folder, n)).lower() for n in ("vendor", "device"))
        except OSError:
            continue
        if ids == PCI_ID and not nodes:
            bare_pci.append(os.path.basename(folder))
    return devices, bare_pci


def _usb_corals(root):
    """[Device] of the USB Corals in sys/bus/usb/devices (by idVendor + idProduct)."""
    devices = []
    for folder in sorted(glob.glob(at(root, "sys/bus/usb/devices/*"))):
        try:
            ids = (read_text(os.path.join(folder, "idVendor")).lower(),
                   read_text(os.path.join(folder, "idProduct")).lower())
        except OSError:
            continue
        if ids in USB_IDS:
            try:
                speed = float(read_text(os.path.join(folder, "speed")))
            except (OSError, ValueError):
                speed = None
            devices.append(Device("usb", os.path.basename(folder), ":".join(ids), USB_IDS[ids], speed))
    return devices


def check_devices(want, root="/"):
    """Edge TPU devices: USB Corals by their ids in sysfs, PCIe / M.2 by /dev/apex_N (and a PCIe
    Coral whose driver is missing). Returns (Finding, [Device])."""
    name = "edgetpu device"
    devices, bare_pci = find_devices(root)
    data = {"devices": [d.__dict__ for d in devices]}
    if bare_pci and not devices:
        status = MISSING_STATUS[want] if want != UNUSED else WARN
        return Finding(name, status, f"a PCIe Coral is on the bus ({', '.join(bare_pci)}) but "
                       "there is no /dev/apex_0: the gasket / apex driver is not loaded",
                       "install the gasket driver (gasket-dkms; kernels >= 6.12 need a patched "
                       "build) and reboot; see README, Coral: PCIe", data), devices
    if not devices:
        usb_bus = os.path.isdir(at(root, "sys/bus/usb/devices"))
        where = "" if usb_bus else "; this machine shows no USB bus in /sys"
        status, detail, fix = when_missing(
            want, "no Edge TPU found (no USB device 1a6e:089a or 18d1:9302, no "
            f"/dev/apex_0{where})",
            "plug the USB Accelerator into a USB 3 port (blue) of a Pi with a 3 A supply or a "
            "powered hub: it draws up to 900 mA; for PCIe / M.2, the gasket driver and `lspci`")
        return Finding(name, status, detail, fix, data), devices
    parts, slow = _describe(devices)
    if slow:
        return Finding(name, WARN, "; ".join(parts) + ": on a USB 2 port, slower",
                       "plug it into a USB 3 port (blue), directly, not through a USB 2 hub",
                       data), devices
    return Finding(name, OK, "; ".join(parts), data=data), devices


def _describe(devices):
    """([one phrase per device], [USB Corals on a USB 2 port])."""
    parts, slow = [], []
    for d in devices:
        if d.kind == "usb":
            speed = f", {d.speed_mbps:g} Mb/s" if d.speed_mbps else ""
            parts.append(f"USB Coral at {d.where} ({d.ids}, {d.note}{speed})")
            if d.speed_mbps is not None and d.speed_mbps <= 480:
                slow.append(d.where)
        else:
            parts.append(f"PCIe Coral {d.where}")
    return parts, slow


# --------------------------------------------------------------------------- udev rules

def rule_files(root="/"):
    """{path: text} of the udev rules files under `root`."""
    found = {}
    for folder in RULE_DIRS:
        for path in sorted(glob.glob(at(root, folder, "*.rules"))):
            try:
                with open(path, encoding="utf-8", errors="replace") as handle:
                    found["/" + os.path.relpath(path, root)] = handle.read()
            except OSError:
                continue
    return found


def _rule_group(lines):
    groups = {g for line in lines for g in re.findall(r'GROUP\s*:?=\s*"([^"]+)"', line)}
    return sorted(groups)


def check_udev_rules(want, pcie=False, root="/"):
    """A udev rule that opens the Coral to a group: for USB one naming 1a6e:089a and 18d1:9302,
    for PCIe one for SUBSYSTEM "apex". Returns (Finding, [group names the rules give])."""
    files = rule_files(root)
    return _pcie_rule(want, files) if pcie else _usb_rule(want, files)


def _pcie_rule(want, files):
    """The rule for /dev/apex_* (SUBSYSTEM "apex") among `files`."""
    name = "udev rule"
    hits = {p: [ln for ln in t.splitlines() if "apex" in ln and not ln.lstrip().startswith("#")]
            for p, t in files.items()}
    hits = {p: ln for p, ln in hits.items() if ln}
    if hits:
        groups = _rule_group([ln for lns in hits.values() for ln in lns])
        return Finding(name, OK, f"PCIe: {', '.join(hits)} (group {', '.join(groups) or 'not set'})",
                       data={"files": list(hits), "groups": groups}), groups
    status, detail, fix = when_missing(
        want, 'no udev rule for /dev/apex_* (SUBSYSTEM "apex")', 'sudo systemd/install.sh '
        '--coral=pcie (writes SUBSYSTEM=="apex", MODE="0660", GROUP="apex")')
    return Finding(name, status, detail, fix), []


def _usb_rule_hits(files):
    """{path: ({product ids named}, [the rule's lines naming a Coral vendor])} of `files`."""
    hits = {}
    for path, text in files.items():
        lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
        lowered = [ln.lower() for ln in lines]
        ids = {pid for (vid, pid) in USB_IDS if any(vid in ln and pid in ln for ln in lowered)}
        if ids:
            hits[path] = (ids, [ln for ln in lines if "1a6e" in ln.lower() or "18d1" in ln.lower()])
    return hits


def _usb_rule(want, files):
    """The rule naming the USB Coral's ids, before and after its firmware loads, among `files`."""
    name = "udev rule"
    hits = _usb_rule_hits(files)
    if not hits:
        status, detail, fix = when_missing(
            want, "no udev rule names the Coral's USB ids 1a6e:089a and 18d1:9302: only root may "
            "open it", USB_RULE_FIX)
        return Finding(name, status, detail, fix), []
    covered = set().union(*(ids for ids, _ in hits.values()))
    groups = _rule_group([ln for _, lns in hits.values() for ln in lns])
    text = f"USB: {', '.join(hits)} (group {', '.join(groups) or 'not set'})"
    data = {"files": list(hits), "groups": groups}
    if covered != {"089a", "9302"}:
        missing = "1a6e:089a (before the firmware loads)" if "089a" not in covered else \
            "18d1:9302 (after the firmware loads)"
        status = MISSING_STATUS[want] if want != UNUSED else WARN
        return Finding(name, status, f"{text} lacks {missing}", USB_RULE_FIX, data), groups
    if not groups:
        return Finding(name, WARN if want != UNUSED else OK, f"{text}: no GROUP is given",
                       USB_RULE_FIX, data), groups
    return Finding(name, OK, text, data=data), groups


# --------------------------------------------------------------------------- groups

def _group_table(root):
    """{group: (gid, [members])} and {user: primary gid} read from root/etc/group and passwd."""
    groups, users = {}, {}
    with contextlib.suppress(OSError):
        for line in read_text(at(root, "etc/group")).splitlines():
            parts = line.split(":")
            if len(parts) >= 4:
                groups[parts[0]] = (parts[2], [m for m in parts[3].split(",") if m])
    with contextlib.suppress(OSError):
        for line in read_text(at(root, "etc/passwd")).splitlines():
            parts = line.split(":")
            if len(parts) >= 4:
                users[parts[0]] = parts[3]
    return groups, users


def check_groups(want, needed, user=SERVICE_USER, root="/", also=()):
    """The service user is in the groups the device nodes belong to: `needed` (the Coral's:
    plugdev for USB, apex for PCIe) and `also` (video for a camera, gpio for pins)."""
    name = "groups"
    groups, users = _group_table(root)
    if user not in users:
        return Finding(name, WARN, f"the service user {user} does not exist (checked "
                       f"{at(root, 'etc/passwd')})", "sudo systemd/install.sh creates it")

    def member(group):
        gid, members = groups.get(group, (None, []))
        return user in members or (gid is not None and users[user] == gid)

    missing_coral = [g for g in needed if not member(g)]
    missing_other = [g for g in also if g in groups and not member(g)]
    inside = [g for g in list(needed) + list(also) if member(g)]
    found = f"{user} is in {', '.join(inside)}" if inside else f"{user} is in none of " \
        f"{', '.join(list(needed) + list(also))}"
    if missing_coral:
        return _not_in_coral_groups(name, want, user, found, missing_coral, groups)
    if missing_other:
        return Finding(name, WARN, f"{found}; not in {', '.join(missing_other)}",
                       f"sudo usermod -aG {','.join(missing_other)} {user}")
    return Finding(name, OK, found)


def _not_in_coral_groups(name, want, user, found, missing, groups):
    """The finding when `user` is not in the groups (`missing`) the Coral's device nodes give."""
    status = MISSING_STATUS[want]
    absent = [g for g in missing if g not in groups]
    note = f" (no group {', '.join(absent)} on this system)" if absent else ""
    fix = None if status == OK else f"sudo usermod -aG {','.join(missing)} {user} " \
        f"(install.sh --coral does), then restart maskdet{' (groupadd first)' if absent else ''}"
    detail = f"{found}; not in {', '.join(missing)}{note}: it cannot open the Coral"
    if want == UNUSED:
        detail += " (the Edge TPU is not used)"
    return Finding(name, status, detail, fix)
