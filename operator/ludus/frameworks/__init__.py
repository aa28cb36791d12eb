"""Framework wiring (torchrun's environment) kept apart from the generic builders."""
