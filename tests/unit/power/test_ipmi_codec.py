"""The IPMI requests and reply decoders, as tables (bytes from IPMI v2.0 section 28)."""

from __future__ import annotations

import pytest

from racker.power import ipmi_codec as c
from racker.power.base import BmcInfo, BootDevice, BootSetting, PowerAction, PowerState


@pytest.mark.parametrize(
    ("action", "byte"),
    [
        (PowerAction.OFF, 0x00),
        (PowerAction.ON, 0x01),
        (PowerAction.CYCLE, 0x02),
        (PowerAction.RESET, 0x03),
        (PowerAction.SOFT, 0x05),
    ],
)
def test_chassis_control(action: PowerAction, byte: int) -> None:
    assert c.chassis_control(action) == c.Request(0x00, 0x02, bytes([byte]))


@pytest.mark.parametrize(
    ("setting", "data"),
    [
        (BootSetting(BootDevice.PXE), "0580040000 00"),
        (BootSetting(BootDevice.DISK), "0580080000 00"),
        (BootSetting(BootDevice.BIOS), "0580180000 00"),
        (BootSetting(BootDevice.PXE, persistent=True), "05c0040000 00"),
        (BootSetting(BootDevice.PXE, efi=True), "05a0040000 00"),
        (BootSetting(BootDevice.DISK, persistent=True, efi=True), "05e0080000 00"),
        (BootSetting(BootDevice.DEFAULT), "0500000000 00"),
    ],
)
def test_set_boot_flags(setting: BootSetting, data: str) -> None:
    assert c.set_boot_flags(setting) == c.Request(0x00, 0x08, bytes.fromhex(data))


def test_boot_flag_timer_request_sets_parameter_3_to_1f() -> None:
    assert c.keep_boot_flags() == c.Request(0x00, 0x08, bytes([0x03, 0x1F]))


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("0105 80 04 000000", BootSetting(BootDevice.PXE)),
        ("0105 c0 08 000000", BootSetting(BootDevice.DISK, persistent=True)),
        ("0105 a0 18 000000", BootSetting(BootDevice.BIOS, efi=True)),
        ("0105 00 04 000000", BootSetting(BootDevice.DEFAULT)),  # valid bit clear
        ("0185 80 04 000000", BootSetting(BootDevice.PXE)),  # bit 7: parameter locked
        ("0105 80 00 000000", BootSetting(BootDevice.DEFAULT)),  # valid, no override
    ],
)
def test_decode_boot_flags(reply: str, expected: BootSetting) -> None:
    assert c.decode_boot_flags(bytes.fromhex(reply.replace(" ", ""))) == expected


@pytest.mark.parametrize(
    "reply",
    ["", "0105", "0103 80 04 000000", "0105 80 3c 000000"],
    ids=["empty", "short", "other-parameter", "unknown-device"],
)
def test_decode_boot_flags_rejects_bad_replies(reply: str) -> None:
    with pytest.raises(c.ReplyError):
        c.decode_boot_flags(bytes.fromhex(reply.replace(" ", "")))


@pytest.mark.parametrize(
    ("reply", "state"),
    [("000000", PowerState.OFF), ("010000", PowerState.ON), ("614000", PowerState.ON)],
)
def test_decode_power_state(reply: str, state: PowerState) -> None:
    assert c.decode_power_state(bytes.fromhex(reply)) is state


def test_decode_power_state_rejects_empty_reply() -> None:
    with pytest.raises(c.ReplyError):
        c.decode_power_state(b"")


def test_decode_device_id_from_ipmi_sim() -> None:
    # What ipmi_sim answers for "mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02".
    reply = bytes.fromhex("000309080 29f911200020f00000000".replace(" ", ""))
    assert c.decode_device_id(reply) == BmcInfo(0, 3, "9.08", "2.0", 0x1291, 0xF02)


def test_decode_device_id_ipmi_15_and_short_reply() -> None:
    assert c.decode_device_id(bytes.fromhex("20 01 81 10 51 00 0a0000 0100".replace(" ", ""))) == (
        BmcInfo(0x20, 1, "1.10", "1.5", 10, 1)
    )
    with pytest.raises(c.ReplyError):
        c.decode_device_id(b"\x00" * 10)


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (0xC1, "command not supported (completion code 0xc1)"),
        (0xD4, "insufficient privilege level (completion code 0xd4)"),
        (0xC0, "node busy (completion code 0xc0)"),
        (0x99, "completion code 0x99"),
    ],
)
def test_describe_code(code: int, text: str) -> None:
    assert c.describe_code(code) == text


def test_request_names() -> None:
    assert c.chassis_status().name == "Get Chassis Status"
    assert c.Request(0x2C, 0x01).name == "netfn 0x2c cmd 0x01"
