"""``racker bootstrap``: provision every node of the rack through the boot stack.

``machine``, ``plan`` and ``lokomotive`` are pure cores (layer 1); ``orchestrator`` and
``progress`` drive and show a run (layer 4).
"""
