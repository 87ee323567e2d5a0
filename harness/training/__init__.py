"""Training and the models it produces: the one training loop, batched (vmap) training, spectral
clipping, the content-addressed artifact cache, the reference models (originals and oracles) and the
shadow bank.
"""
