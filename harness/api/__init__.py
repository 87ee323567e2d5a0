"""What a method author imports: the task a method receives, the training helpers and the building blocks
of unlearning methods (``harness`` re-exports the registration and the task; see docs/write_a_method.md).
"""
