from tests.support.sandbox import _sink_server, webhook_sink

__all__ = ["_sink_server", "webhook_sink"]
