"""Training and the models it produces: the one training loop, batched (vmap) training, spectral clipping, the
content-addressed artifact cache, the workspace (a suite's data, the cache and the device as one object), the
reference models (originals and oracles) and the shadow bank.
"""
