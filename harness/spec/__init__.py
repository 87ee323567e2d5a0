"""What the benchmark declares, before anything trains: suites (TOML), scenarios and splits, datasets,
model architectures, training recipes, methods' declarations (the method registry) and their search
spaces, hyper-parameter layering, and the scoring rules (headlines, noise floor).
"""
