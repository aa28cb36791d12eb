"""The TrainingJob API: models, constants and the CRD generated from them."""
