"""Differential privacy on the server: secure Gaussian noise and the privacy accountant."""
