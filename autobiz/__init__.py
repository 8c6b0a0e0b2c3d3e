"""AutoBiz: the back office of a print-on-demand shop as Temporal workflows."""

__version__ = "0.1.0"
