"""The bottom layer: what the gateway and the workers both use, importing nothing above it.

- `protocol`: client and server frames, error and close codes with their advice (imports
  nothing else of ours); `schema`: the JSON Schema served at /ws/v2/schema;
- `events`: ingest event models and their routing attributes; `rooms`: a subscription's
  canonical room and the matching rule;
- `streams`: what travels through Redis Streams (ingest field, typed inbox items);
- `keys`: every Redis key; `registry`: the cluster registry and its Lua (`lua/`);
- `ingest`: the one write path for events; `settings`, `redis`, `loops`: process plumbing.
"""
