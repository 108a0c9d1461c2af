"""The contract the tiers share: wire models, the envelope, names, URL rules and where text gets its spaces.
It imports only pydantic.

The gateway validates requests with these models, the engine reads them at its door, and the recogniser names
its model from the same table, so a field, a status envelope or a model name cannot drift between the tiers.
"""
