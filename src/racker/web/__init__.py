"""The HTTP boot and provisioning server (layer 3): iPXE scripts, Ignition, assets, phone-home."""

from racker.web.keyfile import load_or_create_key
from racker.web.server import BootHttpServer, make_app

__all__ = ["BootHttpServer", "load_or_create_key", "make_app"]
