"""The seed's methods: AMUN (and variants), TRW; FastClip smooth training. Importing registers them."""

from methods import amun, trw  # noqa: F401
