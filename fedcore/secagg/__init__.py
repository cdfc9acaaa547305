"""Secure aggregation (SecAgg, Bonawitz et al. 2017; SecAgg+ neighbour graphs, Bell et al.
2020), shared by the coordinator and the client daemon. No gRPC here.

Modules, bottom up: :mod:`~fedcore.secagg.shamir` (t-of-n sharing over GF(2^256 + 297)),
:mod:`~fedcore.secagg.keys` (X25519, HKDF, ChaCha20-Poly1305 share boxes),
:mod:`~fedcore.secagg.ring` (Z_{2^b}, the ChaCha20 mask stream, packing),
:mod:`~fedcore.secagg.fixed_point` (clipping, stochastic rounding, a ring that cannot
wrap), :mod:`~fedcore.secagg.graph` (complete or Harary neighbour graph), and the two
protocol sides :mod:`~fedcore.secagg.client_session` and
:mod:`~fedcore.secagg.server_session`. The wire messages are in
``proto/fedprune/v1/secagg.proto``; docs/privacy.md describes the protocol and its cost.
"""

PROTOCOL = "secagg/1"
