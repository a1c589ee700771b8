"""The composition root: the one place that turns a loaded rack into running objects."""
