"""The checks that read the system (sysfs, /dev, udev rules, /etc/group, the thermal zone, the
firmware's throttling word, free space), each run on a temporary tree standing for `/`."""
import os

import pytest

from edge.doctor import device_checks, health_checks, storage_checks
from edge.doctor.edgetpu_want import REQUIRED, UNUSED, WANTED
from edge.doctor.findings import FAIL, OK, WARN


def put(root, relative, text):
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def usb_device(root, name, vendor, product, speed="5000"):
    put(root, f"sys/bus/usb/devices/{name}/idVendor", vendor + "\n")
    put(root, f"sys/bus/usb/devices/{name}/idProduct", product + "\n")
    put(root, f"sys/bus/usb/devices/{name}/speed", speed + "\n")


# --- devices ---------------------------------------------------------------------------------

def test_a_usb_coral_is_found_by_its_ids_before_and_after_its_firmware(tmp_path):
    usb_device(tmp_path, "usb1", "1d6b", "0003")  # a root hub
    usb_device(tmp_path, "2-1", "18d1", "9302")
    usb_device(tmp_path, "2-2", "1a6e", "089a")
    finding, devices = device_checks.check_devices(WANTED, str(tmp_path))
    assert finding.status == OK
    assert [d.ids for d in devices] == ["18d1:9302", "1a6e:089a"]
    assert "USB Coral at 2-1 (18d1:9302, firmware loaded, 5000 Mb/s)" in finding.detail
    assert "1a6e:089a, no firmware yet" in finding.detail


def test_a_usb_coral_on_a_usb_2_port_is_a_warning(tmp_path):
    usb_device(tmp_path, "1-1.3", "18d1", "9302", speed="480")
    finding, _ = device_checks.check_devices(WANTED, str(tmp_path))
    assert finding.status == WARN and "USB 2" in finding.detail and "USB 3 port" in finding.fix


def test_a_pcie_coral_is_found_by_its_device_node(tmp_path):
    put(tmp_path, "dev/apex_0", "")
    finding, devices = device_checks.check_devices(WANTED, str(tmp_path))
    assert finding.status == OK and devices[0].kind == "pcie" and "/dev/apex_0" in finding.detail


def test_a_pcie_coral_without_its_driver_is_named(tmp_path):
    put(tmp_path, "sys/bus/pci/devices/0000:01:00.0/vendor", "0x1ac1\n")
    put(tmp_path, "sys/bus/pci/devices/0000:01:00.0/device", "0x089a\n")
    finding, devices = device_checks.check_devices(WANTED, str(tmp_path))
    assert finding.status == WARN and not devices
    assert "gasket" in finding.detail and "6.12" in finding.fix


@pytest.mark.parametrize("want, status", [(UNUSED, OK), (WANTED, WARN), (REQUIRED, FAIL)])
def test_no_edge_tpu_is_fine_only_when_none_is_wanted(tmp_path, want, status):
    usb_device(tmp_path, "usb1", "1d6b", "0002")
    finding, devices = device_checks.check_devices(want, str(tmp_path))
    assert devices == [] and finding.status == status
    assert "no Edge TPU found" in finding.detail
    if want != UNUSED:
        assert "900 mA" in finding.fix
    else:
        assert "not used" in finding.detail


# --- udev rules ------------------------------------------------------------------------------

INSTALLED_RULE = (
    '# The Coral USB Accelerator\n'
    'SUBSYSTEM=="usb", ATTRS{idVendor}=="1a6e", ATTRS{idProduct}=="089a", MODE="0660", GROUP="plugdev"\n'
    'SUBSYSTEM=="usb", ATTRS{idVendor}=="18d1", ATTRS{idProduct}=="9302", MODE="0660", GROUP="plugdev"\n')


def test_the_usb_rule_is_found_with_its_group(tmp_path):
    put(tmp_path, "lib/udev/rules.d/55-dm.rules", 'KERNEL=="dm-*", GROUP="disk"\n')
    put(tmp_path, "etc/udev/rules.d/65-maskdet-edgetpu.rules", INSTALLED_RULE)
    finding, groups = device_checks.check_udev_rules(WANTED, root=str(tmp_path))
    assert finding.status == OK and groups == ["plugdev"]
    assert finding.detail == "USB: /etc/udev/rules.d/65-maskdet-edgetpu.rules (group plugdev)"


def test_corals_own_rule_in_lib_counts(tmp_path):
    put(tmp_path, "lib/udev/rules.d/60-libedgetpu1-std.rules",
        'SUBSYSTEM=="usb",ATTRS{idVendor}=="1a6e",ATTRS{idProduct}=="089a",GROUP="plugdev"\n'
        'SUBSYSTEM=="usb",ATTRS{idVendor}=="18d1",ATTRS{idProduct}=="9302",GROUP="plugdev"\n')
    finding, groups = device_checks.check_udev_rules(WANTED, root=str(tmp_path))
    assert finding.status == OK and "/lib/udev/rules.d/60-libedgetpu1-std.rules" in finding.detail


def test_a_rule_for_one_id_only_is_incomplete(tmp_path):
    put(tmp_path, "etc/udev/rules.d/99-coral.rules",
        'SUBSYSTEM=="usb", ATTRS{idVendor}=="18d1", ATTRS{idProduct}=="9302", GROUP="plugdev"\n')
    finding, _ = device_checks.check_udev_rules(WANTED, root=str(tmp_path))
    assert finding.status == WARN and "lacks 1a6e:089a" in finding.detail


def test_a_commented_out_rule_does_not_count(tmp_path):
    put(tmp_path, "etc/udev/rules.d/65-maskdet-edgetpu.rules",
        "".join("# " + line + "\n" for line in INSTALLED_RULE.splitlines()))
    finding, groups = device_checks.check_udev_rules(REQUIRED, root=str(tmp_path))
    assert finding.status == FAIL and groups == []
    assert "install.sh --coral" in finding.fix and "replug" in finding.fix


def test_the_pcie_rule_is_the_apex_subsystem(tmp_path):
    finding, _ = device_checks.check_udev_rules(WANTED, pcie=True, root=str(tmp_path))
    assert finding.status == WARN and "apex" in finding.detail
    put(tmp_path, "etc/udev/rules.d/65-apex.rules", 'SUBSYSTEM=="apex", MODE="0660", GROUP="apex"\n')
    finding, groups = device_checks.check_udev_rules(WANTED, pcie=True, root=str(tmp_path))
    assert finding.status == OK and groups == ["apex"]


# --- groups ----------------------------------------------------------------------------------

def system_users(root, group_lines):
    put(root, "etc/passwd", "root:x:0:0:root:/root:/bin/bash\n"
        "maskdet:x:998:998::/var/lib/maskdet:/usr/sbin/nologin\n")
    put(root, "etc/group", "".join(line + "\n" for line in group_lines))


def test_the_service_user_in_plugdev(tmp_path):
    system_users(tmp_path, ["maskdet:x:998:", "plugdev:x:46:pi,maskdet", "video:x:44:maskdet"])
    finding = device_checks.check_groups(WANTED, ["plugdev"], root=str(tmp_path), also=["video"])
    assert finding.status == OK and finding.detail == "maskdet is in plugdev, video"


def test_the_service_user_not_in_plugdev_cannot_open_the_coral(tmp_path):
    system_users(tmp_path, ["maskdet:x:998:", "plugdev:x:46:pi"])
    finding = device_checks.check_groups(WANTED, ["plugdev"], root=str(tmp_path))
    assert finding.status == WARN and "not in plugdev" in finding.detail
    assert finding.fix.startswith("sudo usermod -aG plugdev maskdet")
    assert device_checks.check_groups(REQUIRED, ["plugdev"], root=str(tmp_path)).status == FAIL
    assert device_checks.check_groups(UNUSED, ["plugdev"], root=str(tmp_path)).status == OK


def test_a_missing_apex_group_is_named(tmp_path):
    system_users(tmp_path, ["maskdet:x:998:", "plugdev:x:46:maskdet"])
    finding = device_checks.check_groups(WANTED, ["apex"], root=str(tmp_path))
    assert "no group apex on this system" in finding.detail and "groupadd" in finding.fix


def test_a_primary_group_counts(tmp_path):
    system_users(tmp_path, ["plugdev:x:998:"])  # maskdet's primary gid is 998
    assert device_checks.check_groups(WANTED, ["plugdev"], root=str(tmp_path)).status == OK


def test_a_missing_service_user_is_said(tmp_path):
    put(tmp_path, "etc/passwd", "root:x:0:0:root:/root:/bin/bash\n")
    finding = device_checks.check_groups(UNUSED, ["plugdev"], root=str(tmp_path))
    assert finding.status == WARN and "maskdet does not exist" in finding.detail
    assert "install.sh" in finding.fix


def test_video_and_gpio_are_checked_when_the_config_needs_them(tmp_path):
    system_users(tmp_path, ["maskdet:x:998:", "plugdev:x:46:maskdet", "gpio:x:997:pi"])
    finding = device_checks.check_groups(UNUSED, ["plugdev"], root=str(tmp_path), also=["gpio"])
    assert finding.status == WARN and "not in gpio" in finding.detail


# --- temperature and throttling --------------------------------------------------------------

@pytest.mark.parametrize("millidegrees, status", [("48312", OK), ("74000", WARN), ("82100", FAIL)])
def test_the_cpu_temperature(tmp_path, millidegrees, status):
    put(tmp_path, "sys/class/thermal/thermal_zone0/temp", millidegrees + "\n")
    finding = health_checks.check_temperature(str(tmp_path))
    assert finding.status == status and f"{int(millidegrees) / 1000:.1f} °C" in finding.detail
    if status != OK:
        assert "fan" in finding.fix


def test_no_thermal_zone_is_said(tmp_path):
    finding = health_checks.check_temperature(str(tmp_path))
    assert finding.status == WARN and "not a Raspberry Pi?" in finding.detail


def vcgencmd(tmp_path, output, status=0):
    path = tmp_path / "vcgencmd"
    path.write_text(f"#!/bin/sh\n[ \"$1\" = get_throttled ] || exit 2\necho '{output}'\nexit {status}\n")
    path.chmod(0o755)
    return str(path)


def test_no_throttling(tmp_path):
    finding = health_checks.check_throttling(str(tmp_path), vcgencmd(tmp_path, "throttled=0x0"))
    assert finding.status == OK and "no under-voltage" in finding.detail


def test_under_voltage_now_fails_and_names_the_power_supply(tmp_path):
    finding = health_checks.check_throttling(str(tmp_path), vcgencmd(tmp_path, "throttled=0x50005"))
    assert finding.status == FAIL
    assert "under-voltage, throttled now" in finding.detail
    assert "5 V 3 A" in finding.fix and "900 mA" in finding.fix
    assert finding.data["since_boot"] == ["under-voltage", "throttled"]


def test_throttling_since_boot_only_is_a_warning(tmp_path):
    finding = health_checks.check_throttling(str(tmp_path), vcgencmd(tmp_path, "throttled=0x80000"))
    assert finding.status == WARN and "soft temperature limit since boot" in finding.detail
    assert "fan" in finding.fix


def test_the_firmwares_sysfs_word_when_there_is_no_vcgencmd(tmp_path):
    put(tmp_path, health_checks.THROTTLED_FILE, "50000\n")
    finding = health_checks.check_throttling(str(tmp_path), vcgencmd=str(tmp_path / "absent"))
    assert finding.status == WARN and "under-voltage" in finding.detail


def test_no_way_to_read_throttling_is_said(tmp_path):
    finding = health_checks.check_throttling(str(tmp_path), vcgencmd=str(tmp_path / "absent"))
    assert finding.status == WARN and "not known here" in finding.detail


# --- storage ---------------------------------------------------------------------------------

def test_free_disk_space(tmp_path):
    finding = storage_checks.check_disk(str(tmp_path / "outbox.db"), fail_below=0, warn_below=0,
                                warn_fraction=0)
    assert finding.status == OK and f"at {tmp_path}" in finding.detail
    assert finding.data["free_bytes"] > 0
    low = storage_checks.check_disk(str(tmp_path), fail_below=0, warn_below=1 << 62)
    assert low.status == WARN and "journalctl" in low.fix
    full = storage_checks.check_disk(str(tmp_path), fail_below=1 << 62)
    assert full.status == FAIL and "drops new events" in full.detail


def test_the_outbox_folder(tmp_path):
    assert storage_checks.check_outbox(str(tmp_path / "outbox.db")).status == OK
    memory = storage_checks.check_outbox(":memory:")
    assert memory.status == WARN and "lost" in memory.detail
    (tmp_path / "file").write_text("")
    bad = storage_checks.check_outbox(str(tmp_path / "file" / "outbox.db"))
    assert bad.status == FAIL and "is a file, not a folder" in bad.detail


def test_a_missing_outbox_folder_is_not_created(tmp_path):
    finding = storage_checks.check_outbox(str(tmp_path / "later" / "outbox.db"))
    assert finding.status == WARN and "does not exist yet" in finding.detail
    assert not os.path.exists(tmp_path / "later")
