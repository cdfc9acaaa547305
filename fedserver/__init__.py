"""fedserver: the federated-learning coordinator (rounds, strategies, server-side pruning)."""
