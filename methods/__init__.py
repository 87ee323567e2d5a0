"""The seed's methods: AMUN (and variants), TRW; FastClip smooth training. Importing registers them."""
