"""lps-franka training pipeline (torch). The runtime never imports this package."""
