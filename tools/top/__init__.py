"""`hpbroker top`: a live dashboard over the broker's /metrics endpoint.

Built as collector (`collector`: scrape, parse, rates) -> frozen `snapshot` -> pure `render` functions;
`app` runs the full-screen loop.
"""
