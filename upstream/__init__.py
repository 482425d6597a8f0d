"""upstream: the slow dependency the receiver calls (aiohttp.web)."""
