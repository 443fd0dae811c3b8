"""Offline model resolution: packaged weights by default, user paths or model ids on request."""
