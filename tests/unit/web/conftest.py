from __future__ import annotations

from tests.unit.web.standin import ensure_profiles_exports

# racker.web imports the contract names from racker.profiles; attach them if its __init__
# does not re-export them yet (the profiles package is written in parallel).
ensure_profiles_exports()
