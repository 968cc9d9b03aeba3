"""Images before an encoder sees them: cheap readability checks and the acquisition perturbations of the
robustness task."""
