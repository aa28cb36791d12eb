"""Pure builders: a TrainingJob in, Kubernetes manifests out. No API calls here."""
