"""The embedded local stack: `autobiz dev up|status|down`."""
