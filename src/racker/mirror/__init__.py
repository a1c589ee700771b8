"""The local mirror of the operating system racker installs (Flatcar), OpenPGP-verified."""
