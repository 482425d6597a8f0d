"""Reference servers the benchmark measures against: not part of the lab, never in its images.

fastapi_proxy and aiohttp_proxy are the smallest proxies a user would write from each
framework's documentation: GET /tasks/{name} calls UPSTREAM_URL + "/work" and answers
upstream's JSON, with no metrics and no logs.
"""
