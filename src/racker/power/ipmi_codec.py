"""The IPMI chassis and application commands racker sends (layer 1: pure, bytes only).

racker builds these requests itself instead of calling pyghmi's helpers (``set_power``,
``get_power``), which first probe the vendor ("OEM init") with extra commands and differ by
vendor. Section numbers refer to the IPMI v2.0 rev. 1.1 specification.
"""

from __future__ import annotations

from dataclasses import dataclass

from racker.power.base import BmcInfo, BootDevice, BootSetting, PowerAction, PowerState

NETFN_CHASSIS = 0x00
NETFN_APP = 0x06

CMD_GET_CHASSIS_STATUS = 0x01  # section 28.2
CMD_CHASSIS_CONTROL = 0x02  # section 28.3
CMD_SET_BOOT_OPTIONS = 0x08  # section 28.12
CMD_GET_BOOT_OPTIONS = 0x09  # section 28.13
CMD_GET_DEVICE_ID = 0x01  # section 20.1

# Boot option parameters (table 28-14).
PARAM_BOOT_FLAG_VALID_CLEARING = 3
PARAM_BOOT_FLAGS = 5

# Parameter 3, bits 0-4: do not clear the boot flags on power-button power up, on a
# pushbutton/soft reset, on a watchdog timeout, on the 60 s chassis-control timeout, or on a
# PEF reset. Without bit 3 the BMC forgets a boot device set more than 60 s before the power
# action (section 28.12, "boot flag valid bit clearing").
KEEP_BOOT_FLAGS = 0x1F

# Chassis control data byte 1 (table 28-4).
_CONTROL = {
    PowerAction.OFF: 0x00,
    PowerAction.ON: 0x01,
    PowerAction.CYCLE: 0x02,
    PowerAction.RESET: 0x03,
    PowerAction.SOFT: 0x05,
}

# Boot flags data byte 2, bits 5:2 (table 28-14, parameter 5).
_DEVICE_SELECTOR = {
    BootDevice.DEFAULT: 0x0,
    BootDevice.PXE: 0x1,
    BootDevice.DISK: 0x2,
    BootDevice.BIOS: 0x6,
}
_SELECTOR_DEVICE = {v: k for k, v in _DEVICE_SELECTOR.items()}
# UEFI HTTP boot (BootDevice.HTTP) has no selector: IPMI predates it.
IPMI_DEVICES = frozenset(_DEVICE_SELECTOR)

_FLAG_VALID = 0x80
_FLAG_PERSISTENT = 0x40
_FLAG_EFI = 0x20


@dataclass(frozen=True)
class Request:
    netfn: int
    command: int
    data: bytes = b""

    @property
    def name(self) -> str:
        default = f"netfn {self.netfn:#04x} cmd {self.command:#04x}"
        return _NAMES.get((self.netfn, self.command), default)


_NAMES = {
    (NETFN_CHASSIS, CMD_GET_CHASSIS_STATUS): "Get Chassis Status",
    (NETFN_CHASSIS, CMD_CHASSIS_CONTROL): "Chassis Control",
    (NETFN_CHASSIS, CMD_SET_BOOT_OPTIONS): "Set System Boot Options",
    (NETFN_CHASSIS, CMD_GET_BOOT_OPTIONS): "Get System Boot Options",
    (NETFN_APP, CMD_GET_DEVICE_ID): "Get Device ID",
}


class ReplyError(ValueError):
    """A reply too short or inconsistent to decode (the BMC's fault, not ours)."""


def chassis_status() -> Request:
    return Request(NETFN_CHASSIS, CMD_GET_CHASSIS_STATUS)


def decode_power_state(data: bytes) -> PowerState:
    # Byte 1 "current power state", bit 0: system power is on (table 28-3).
    if len(data) < 1:
        raise ReplyError("Get Chassis Status reply has no data")
    return PowerState.ON if data[0] & 0x01 else PowerState.OFF


def chassis_control(action: PowerAction) -> Request:
    return Request(NETFN_CHASSIS, CMD_CHASSIS_CONTROL, bytes([_CONTROL[action]]))


def keep_boot_flags() -> Request:
    return Request(
        NETFN_CHASSIS,
        CMD_SET_BOOT_OPTIONS,
        bytes([PARAM_BOOT_FLAG_VALID_CLEARING, KEEP_BOOT_FLAGS]),
    )


def set_boot_flags(setting: BootSetting) -> Request:
    if setting.device is BootDevice.DEFAULT:
        # All-zero flags: "no override", let the firmware use its own order.
        flags = bytes(5)
    else:
        byte1 = _FLAG_VALID
        if setting.persistent:
            byte1 |= _FLAG_PERSISTENT
        if setting.efi:
            byte1 |= _FLAG_EFI
        flags = bytes([byte1, _DEVICE_SELECTOR[setting.device] << 2, 0, 0, 0])
    return Request(NETFN_CHASSIS, CMD_SET_BOOT_OPTIONS, bytes([PARAM_BOOT_FLAGS]) + flags)


def get_boot_flags() -> Request:
    # Parameter selector 5, set selector 0, block selector 0.
    return Request(NETFN_CHASSIS, CMD_GET_BOOT_OPTIONS, bytes([PARAM_BOOT_FLAGS, 0, 0]))


def decode_boot_flags(data: bytes) -> BootSetting:
    # Reply: parameter version, parameter valid/selector, then the 5 boot flag bytes.
    if len(data) < 4:
        raise ReplyError(f"Get System Boot Options reply is {len(data)} bytes, expected 7")
    if data[1] & 0x7F != PARAM_BOOT_FLAGS:
        raise ReplyError(f"Get System Boot Options replied for parameter {data[1] & 0x7F}")
    byte1, byte2 = data[2], data[3]
    if not byte1 & _FLAG_VALID:
        # Flags not valid: the BMC will not override the boot device.
        return BootSetting(BootDevice.DEFAULT)
    device = _SELECTOR_DEVICE.get((byte2 >> 2) & 0x0F)
    if device is None:
        raise ReplyError(f"unknown boot device selector {(byte2 >> 2) & 0x0F:#x}")
    return BootSetting(device, bool(byte1 & _FLAG_PERSISTENT), bool(byte1 & _FLAG_EFI))


def device_id() -> Request:
    return Request(NETFN_APP, CMD_GET_DEVICE_ID)


def decode_device_id(data: bytes) -> BmcInfo:
    if len(data) < 11:
        raise ReplyError(f"Get Device ID reply is {len(data)} bytes, expected at least 11")
    ipmi = data[4]  # BCD: bits 3:0 major, bits 7:4 minor (0x02 = 2.0, 0x51 = 1.5)
    return BmcInfo(
        device_id=data[0],
        device_revision=data[1] & 0x0F,
        firmware=f"{data[2] & 0x7F}.{data[3]:02x}",
        ipmi_version=f"{ipmi & 0x0F}.{ipmi >> 4}",
        manufacturer_id=int.from_bytes(data[6:9], "little") & 0x0FFFFF,
        product_id=int.from_bytes(data[9:11], "little"),
    )


# Completion codes (table 5-2) that mean "this BMC does not do that": not worth retrying.
UNSUPPORTED_CODES = {
    0x80: "parameter not supported",
    0xC1: "command not supported",
    0xC9: "parameter out of range",
    0xCC: "invalid data field in request",
}
# The user may log in but lacks the privilege (operator or admin needed for control).
PRIVILEGE_CODES = {0xD4: "insufficient privilege level"}
# Transient conditions: retrying later may work.
TRANSIENT_CODES = {
    0xC0: "node busy",
    0xC3: "timeout while processing command",
    0xCE: "command response could not be provided",
    0xD5: "command not supported in present state",
    0xFF: "unspecified error",
}


def describe_code(code: int) -> str:
    for table in (UNSUPPORTED_CODES, PRIVILEGE_CODES, TRANSIENT_CODES):
        if code in table:
            return f"{table[code]} (completion code {code:#04x})"
    return f"completion code {code:#04x}"
