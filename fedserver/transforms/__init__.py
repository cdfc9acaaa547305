"""Model transforms applied after aggregation; see :mod:`fedserver.transforms.base`."""
